"""Network definitions used by the scenarios (installed as ``neurolns.models``)."""
