"""Checkpoints of a training run: codes, formats, optimizer state and RNG state.

One ``.npz`` file (a zip archive) holding every array — the parameters' master
copies (float32 values or LNS codes), their scales, the optimizer's state
arrays — and one JSON document ``meta`` with the network's architecture and
formats (:meth:`Sequential.spec`), the rule and its hyperparameters, the epoch,
the history and the state of the shuffling random generator.

Writing is atomic: the file is written next to its destination under a
temporary name, read back and checked (zip CRCs), then moved over the
destination with :func:`os.replace`. A crash or a full disk therefore leaves
the previous checkpoint intact. Reading checks everything before changing
anything: a corrupt file, a file that is not a checkpoint or one made for
another architecture, format, rule or batch size raises :class:`ValueError`
saying what differs.

A file that is intact but holds impossible values is refused too: checkpoints
are validated by value, not only by structure (:func:`check_counter`,
:func:`check_state_finite`, and in the trainer every LNS code against its
format with :func:`neurolns.lns.check_codes`, every scale with
:func:`neurolns.lns.check_scale`, every float weight finite). Each failure is a
:class:`ValueError` naming the field, so training never resumes on garbage.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["save_checkpoint", "read_checkpoint", "CHECKPOINT_VERSION", "to_savable", "from_savable",
           "check_counter", "check_state_finite"]

CHECKPOINT_VERSION = 1
_KIND = "neurolns.sim.checkpoint"


def to_savable(obj, arrays: dict, prefix: str):
    """Split ``obj`` into a JSON skeleton and the arrays it holds (stored in ``arrays``)."""
    if isinstance(obj, np.ndarray):
        key = f"{prefix}{len(arrays)}"
        arrays[key] = obj
        return {"__nd__": key}
    if isinstance(obj, dict):
        bad = [k for k in obj if not isinstance(k, str)]
        if bad:
            raise TypeError(f"state keys must be str, got {bad[:3]}")
        return {k: to_savable(v, arrays, prefix) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return {"__tuple__": [to_savable(v, arrays, prefix) for v in obj]}
    if isinstance(obj, list):
        return [to_savable(v, arrays, prefix) for v in obj]
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint; allowed: arrays, numbers, str, lists, dicts")


def from_savable(obj, arrays):
    """Inverse of :func:`to_savable`; ``arrays`` maps keys to arrays."""
    if isinstance(obj, dict):
        if set(obj) == {"__nd__"}:
            return np.array(arrays[obj["__nd__"]])
        if set(obj) == {"__tuple__"}:
            return tuple(from_savable(v, arrays) for v in obj["__tuple__"])
        return {k: from_savable(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_savable(v, arrays) for v in obj]
    return obj


def check_counter(name: str, value) -> int:
    """A counter read from a checkpoint (epoch, step): a non-negative int, else ``ValueError`` naming it.

    >>> check_counter("epoch", 3)
    3
    >>> check_counter("epoch", -5)
    Traceback (most recent call last):
    ...
    ValueError: checkpoint field epoch=-5 is invalid; allowed: an int >= 0
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"checkpoint field {name}={value!r} is invalid; allowed: an int >= 0")
    return int(value)


def check_state_finite(name: str, obj) -> None:
    """Every float in ``obj`` (nested dicts, lists, tuples, arrays, numbers) is finite.

    Integer entries are counters and sizes, so they must be ``>= 0``. Raises
    ``ValueError`` naming the path of the first bad entry, e.g. ``state[0].v``.

    >>> import numpy as np
    >>> check_state_finite("optimizer", {"t": 2, "state": [{"v": np.array([0.1, np.nan])}]})
    Traceback (most recent call last):
    ...
    ValueError: checkpoint field optimizer.state[0].v holds 1 non-finite value(s) (NaN or ±inf); the first is nan at index (1,); allowed: finite numbers
    """
    from neurolns._finite import check_finite

    if isinstance(obj, dict):
        for k, v in obj.items():
            check_state_finite(f"{name}.{k}", v)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_state_finite(f"{name}[{i}]", v)
    elif isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        check_finite(f"checkpoint field {name}", obj)
    elif isinstance(obj, (float, np.floating)) and not np.isfinite(obj):
        raise ValueError(f"checkpoint field {name}={float(obj)!r} is invalid; allowed: a finite number")
    elif isinstance(obj, (int, np.integer)) and not isinstance(obj, (bool, np.bool_)) and obj < 0:
        raise ValueError(f"checkpoint field {name}={int(obj)!r} is invalid; allowed: an int >= 0")


def save_checkpoint(path, meta: dict, arrays: dict) -> Path:
    """Write ``meta`` (JSON-able) and ``arrays`` to ``path`` atomically.

    Returns the path written. The previous file at ``path`` is replaced only
    once the new one is complete and reads back with valid CRCs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"kind": _KIND, "version": CHECKPOINT_VERSION, **meta}
    blob = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, __meta__=blob, **arrays)
            f.flush()
            os.fsync(f.fileno())
        with zipfile.ZipFile(tmp) as z:
            bad = z.testzip()
        if bad is not None:
            raise OSError(f"checkpoint member {bad} did not read back intact")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_checkpoint(path) -> tuple[dict, dict]:
    """``(meta, arrays)`` of a checkpoint, checked for integrity.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is truncated or corrupt, or not a neurolns checkpoint, or of
        another version.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            if bad is not None:
                raise ValueError(f"member {bad} fails its CRC check")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"checkpoint {path} is corrupt or not a neurolns checkpoint: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("kind") != _KIND:
        raise ValueError(f"{path} is not a neurolns training checkpoint")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {path} has version {meta.get('version')!r}; this neurolns reads "
                         f"version {CHECKPOINT_VERSION}")
    return meta, arrays
