"""neurolns.learning."""
