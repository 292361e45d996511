"""Runnable scenarios (installed as ``neurolns.scenarios``); start them with ``neurolns run NAME``."""
