"""The CPU primitives of neurolns._cpu, compiled and as plain Python (NEUROLNS_DISABLE_JIT=1).

Invariants: a release store is seen by an acquire load of the same word; the
cycle counter does not go backwards and advances over work; prefetch, pause
and sched_yield change no data. The barrier built on them is tested across
threads in tests/spiking/test_threaded.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np

from neurolns import _cpu
from neurolns._jit import jit


@jit
def _roundtrip(words, data):
    t0 = _cpu.cycles()
    for k in range(words.shape[0]):
        _cpu.store_release(words, k, 3 * k + 1)
        _cpu.prefetch(data, k)
        _cpu.pause()
    total = 0
    for k in range(words.shape[0]):
        total += _cpu.load_acquire(words, k)
    _cpu.sched_yield()
    return total, _cpu.cycles() - t0


def test_compiled_primitives():
    """Release stores read back by acquire loads; prefetch leaves data unchanged; the counter advances."""
    words = np.zeros(64, dtype=np.int64)
    data = np.arange(64.0)
    total, elapsed = _roundtrip(words, data)
    np.testing.assert_array_equal(words, 3 * np.arange(64) + 1)
    assert total == int((3 * np.arange(64) + 1).sum())
    np.testing.assert_array_equal(data, np.arange(64.0))  # prefetch reads nothing into the data
    assert elapsed >= 0


def test_primitives_and_threads_without_jit():
    """With the JIT off the primitives are Python, and a threaded network runs on one thread."""
    code = textwrap.dedent("""
        import numpy as np
        from neurolns import _cpu
        from neurolns.sim.spiking import LIFParams, Network, NeuronGroup, Synapses, fixed_probability
        a = np.zeros(8, dtype=np.int64)
        _cpu.store_release(a, 3, 5)
        assert _cpu.load_acquire(a, 3) == 5
        _cpu.prefetch(a, 1); _cpu.pause(); _cpu.sched_yield()
        assert _cpu.cycles() == 0
        g = NeuronGroup(40, LIFParams(v_rest_mV=-49.0), v0_mV=np.linspace(-60, -50, 40))
        net = Network(Synapses(g, g, fixed_probability(40, 40, 0.1, seed=0), weight=0.5), threads=2)
        print(net.run(0.002, progress=False).threads)
    """)
    env = dict(os.environ, NEUROLNS_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "1"
