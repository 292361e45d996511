"""neurolns.sysid."""
