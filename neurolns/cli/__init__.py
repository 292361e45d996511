"""The ``neurolns`` command."""
from neurolns.cli.main import main

__all__ = ["main"]
