"""`import neurolns` stays light, and imports go downward only (design.md layering).

Run in fresh interpreters so that other tests' imports do not hide a violation.
"""
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import neurolns

HEAVY = ("torch", "brian2", "matplotlib", "numba", "sklearn", "mnist1d")


def _probe(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_neurolns_imports_no_heavy_dependency():
    """`import neurolns` imports neither torch, brian2, matplotlib nor even numba."""
    loaded = _probe(f"import json, sys, neurolns; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert loaded == []


def _library_modules():
    root = Path(neurolns.__file__).parent
    for info in pkgutil.walk_packages([str(root)], prefix="neurolns."):
        name = info.name
        # the bridge may import torch; the CLI dispatches to everything
        if name.startswith(("neurolns.torch", "neurolns.cli", "neurolns.models", "neurolns.scenarios")):
            continue
        yield name


def test_library_below_the_bridge_never_imports_torch_or_brian2_and_compiles_nothing():
    """Every module outside neurolns.torch imports without torch/brian2, and importing
    compiles no Numba kernel (kernels compile lazily, on first call)."""
    mods = sorted(_library_modules())
    code = f"""
import importlib, json, sys
mods = {mods!r}
for m in mods:
    importlib.import_module(m)
compiled = []
try:
    from numba.core.registry import CPUDispatcher
    import gc
    compiled = [repr(o) for o in gc.get_objects() if isinstance(o, CPUDispatcher) and o.signatures]
except ImportError:
    pass
print(json.dumps({{"torch": "torch" in sys.modules, "brian2": "brian2" in sys.modules, "compiled": compiled}}))
"""
    result = _probe(code)
    assert result == {"torch": False, "brian2": False, "compiled": []}
