"""neurolns.sim."""
