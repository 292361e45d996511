"""neurolns.lns."""
