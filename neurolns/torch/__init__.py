"""neurolns.torch."""
