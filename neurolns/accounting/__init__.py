"""neurolns.accounting."""
