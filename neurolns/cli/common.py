"""Shared pieces of the command line: one-line errors, range-checked options, output folders, progress, Ctrl-C.

A mistake in the command line is a *user error*: the command prints one line on
stderr, ``PROG: error: MESSAGE``, and exits with code 2, before any work
starts. Ctrl-C exits with code 130 after the scenario saved what was finished
and said where. This module imports only the standard library, so that the
scenarios can use it without slowing ``neurolns --help``.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

#: exit code of a user error (the one argparse uses)
EXIT_USAGE = 2
#: exit code after Ctrl-C (128 + SIGINT, what shells report)
EXIT_INTERRUPTED = 130


class UsageError(ValueError):
    """A mistake in the command line; the command prints its message as one line and exits with code 2."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C after the command saved what was finished; the message says what and where."""


class UsageExit(SystemExit):
    """``SystemExit`` with exit code 2 whose text is the error message (so that callers can match on it)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.code = EXIT_USAGE


def usage_exit(prog: str, message: str) -> UsageExit:
    """Print ``PROG: error: MESSAGE`` as one line on stderr; return the exception that exits with code 2.

    Parameters
    ----------
    prog : str
        The command, e.g. ``"neurolns run sysid"``.
    message : str
        What is wrong: the value given and the allowed range.

    Returns
    -------
    UsageExit
        For the caller to raise.
    """
    print(f"{prog}: error: {message} (see {prog} --help)", file=sys.stderr, flush=True)
    return UsageExit(message)


class ArgumentParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose errors are one line on stderr (exit code 2).

    argparse prints the usage block before the error; the usage is one
    ``--help`` away, and one line is what a script or a log needs.
    """

    def error(self, message: str):
        raise usage_exit(self.prog, message)


def _number(text: str, kind: type, lo, hi, what: str):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is out of range; allowed: a finite float{_bounds(lo, hi)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise argparse.ArgumentTypeError(f"{text} is out of range; allowed: {what}{_bounds(lo, hi)}")
    return value


def _bounds(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f" in [{lo:g}, {hi:g}]"
    if lo is not None:
        return f" >= {lo:g}"
    if hi is not None:
        return f" <= {hi:g}"
    return ""


def _ranged(kind: type, what: str, lo, hi):
    def parse(text: str):
        return _number(text, kind, lo, hi, what)

    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value" messages
    return parse


def int_range(lo: int | None = None, hi: int | None = None):
    """An argparse ``type`` accepting an int in ``[lo, hi]``; either inclusive bound may be None.

    A value outside raises :class:`argparse.ArgumentTypeError` naming the value and the allowed range.
    """
    return _ranged(int, "an int", lo, hi)


def float_range(lo: float | None = None, hi: float | None = None):
    """An argparse ``type`` accepting a finite float in ``[lo, hi]``; either inclusive bound may be None.

    NaN, infinities and values outside raise :class:`argparse.ArgumentTypeError` naming the value
    and the allowed range.
    """
    return _ranged(float, "a float", lo, hi)


class OutputDir:
    """An output folder, created and tested for writing before any work starts.

    Parameters
    ----------
    path : str or Path
        The folder.
    flag : str
        The option that named it, for the error message.

    Raises
    ------
    UsageError
        When the folder cannot be created or written to.

    Notes
    -----
    The folders that the check created are remembered, so that a run stopped
    before it wrote anything leaves no empty folder behind
    (:meth:`discard_if_empty`).
    """

    def __init__(self, path, flag: str = "--out"):
        self.path = Path(path)
        self.created: list[Path] = []
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"{flag} {self.path}: exists and is not a folder")
        missing, q = [], self.path
        while not q.exists() and q != q.parent:
            missing.append(q)
            q = q.parent
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{flag} {self.path}: cannot create the folder ({exc.strerror or exc})") from None
        self.created = missing  # deepest first
        try:
            fd, name = tempfile.mkstemp(dir=self.path, prefix=".neurolns-write-test-")
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            self.discard_if_empty()
            raise UsageError(f"{flag} {self.path}: cannot write there ({exc.strerror or exc})") from None

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def discard_if_empty(self) -> bool:
        """Remove the folders the check created, deepest first, while they are empty; True if the output is gone."""
        for d in self.created:
            try:
                d.rmdir()
            except OSError:
                return False
        return not self.path.exists()


def checked(parser: argparse.ArgumentParser, make, *args, flag: str | None = None, **kwargs):
    """``make(*args, **kwargs)``, its refusal turned into the parser's one-line error.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The parser whose ``error`` reports the refusal (exit code 2).
    make : callable
        A constructor or check that raises ValueError, TypeError or KeyError on a bad value.
    *args, **kwargs
        Its arguments.
    flag : str, optional
        The option the value came from, put before the message.

    Returns
    -------
    object
        What ``make`` returned.
    """
    try:
        return make(*args, **kwargs)
    except (ValueError, TypeError, KeyError) as exc:
        parser.error(f"{flag}: {exc}" if flag else str(exc))


def interrupted(out: OutputDir | None, save=None, finished: int = 0, what: str = "run") -> Interrupted:
    """The exception to raise after Ctrl-C: save what is finished, or leave no empty folder.

    Parameters
    ----------
    out : OutputDir or None
        The run's output folder.
    save : callable or None
        Writes the finished part into ``out``; called when ``finished > 0``.
    finished : int
        How many units of work are complete.
    what : str
        The unit, for the message ("run", "stage", ...).

    Returns
    -------
    Interrupted
        Its message says what was written and where; ``neurolns`` prints it and exits with code 130.
    """
    if finished and save is not None and out is not None:
        save()
        return Interrupted(f"interrupted: {finished} finished {what}(s) written to {out.path}/")
    if out is not None and out.discard_if_empty():
        return Interrupted(f"interrupted before any {what} finished; nothing written ({out.path} removed)")
    return Interrupted(f"interrupted before any {what} finished; nothing written")


class Progress:
    """Progress on stderr, one line per step: ``label: [i/n] step (elapsed)``.

    Parameters
    ----------
    label : str
        What runs.
    total : int
        Number of steps.
    enabled : bool
        False prints nothing (``--no-progress``).
    stream : file, optional
        Where to write; stderr by default, so that stdout holds only results.
    """

    def __init__(self, label: str, total: int, enabled: bool = True, stream=None):
        self.label, self.total, self.enabled = label, total, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.t0 = time.perf_counter()

    def step(self, text: str) -> None:
        """Announce the step about to run."""
        if self.enabled:
            self.done += 1
            elapsed = time.perf_counter() - self.t0
            self.stream.write(f"{self.label}: [{self.done}/{self.total}] {text} ({elapsed:.0f} s elapsed)\n")
            self.stream.flush()

    def close(self) -> None:
        """Report the total time."""
        if self.enabled:
            self.stream.write(f"{self.label}: done in {time.perf_counter() - self.t0:.0f} s\n")
            self.stream.flush()
