"""CPU primitives for Numba kernels: atomic loads and stores, spin hints, prefetch.

Numba has no atomics or prefetch of its own; these are LLVM instructions and
intrinsics emitted through :func:`numba.extending.intrinsic`. They compile
into the calling kernel (no call), and kernels using them still cache on disk:
``sched_yield`` is resolved by symbol from libc when the code is loaded.

* :func:`store_release` / :func:`load_acquire`: an int64 array element stored
  with release order / loaded with acquire order, the pair a spin barrier
  needs (everything written before the store is visible after the load).
* :func:`pause`: the x86 ``pause`` spin-wait hint (nothing on other CPUs).
* :func:`sched_yield`: give the core to another runnable thread.
* :func:`cycles`: the CPU's cycle counter on x86 (``llvm.readcyclecounter``,
  the TSC), for measuring work inside a kernel; 0 on other CPUs, where the
  counter may be closed to user code.
* :func:`prefetch`: ask for the cache line of ``arr[idx]`` without waiting
  for it (``llvm.prefetch``, read, keep in all cache levels). A load would
  hold a slot of the out-of-order window until its line arrives; a prefetch
  retires at once, so a loop of them puts many cache misses in flight.

With ``NEUROLNS_DISABLE_JIT=1`` each is a plain Python function with the same
effect on one thread (a prefetch does nothing, ``cycles`` returns 0).
"""
from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from neurolns._jit import _DISABLED

__all__ = ["store_release", "load_acquire", "pause", "sched_yield", "prefetch", "cycles"]

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _element(context, builder, aty, ary, idx):
    """Pointer to ``ary[idx]`` (a 1-d array) in generated code."""
    return cgutils.get_item_pointer(context, builder, aty, context.make_array(aty)(context, builder, ary), [idx])


def _int64_array(arr) -> bool:
    return isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == types.int64


@intrinsic
def store_release(typingctx, arr, idx, val):
    if not _int64_array(arr):
        return None  # typing fails: only int64 arrays (8-byte aligned words)
    sig = types.void(arr, idx, val)

    def codegen(context, builder, signature, args):
        aty, _, vty = signature.args
        a, i, v = args
        ptr = _element(context, builder, aty, a, i)
        builder.store_atomic(context.cast(builder, v, vty, aty.dtype), ptr, "release", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def load_acquire(typingctx, arr, idx):
    if not _int64_array(arr):
        return None
    sig = arr.dtype(arr, idx)

    def codegen(context, builder, signature, args):
        aty, _ = signature.args
        a, i = args
        return builder.load_atomic(_element(context, builder, aty, a, i), "acquire", 8)

    return sig, codegen


def _call(builder, name: str, ret):
    """A call to the argument-less function or LLVM intrinsic ``name`` returning ``ret``."""
    return builder.call(cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, []), name), [])


@intrinsic
def pause(typingctx):
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _X86:
            _call(builder, "llvm.x86.sse2.pause", ir.VoidType())
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def sched_yield(typingctx):
    # libc's sched_yield, resolved by symbol when the code is loaded (also from the disk cache)
    sig = types.void()

    def codegen(context, builder, signature, args):
        _call(builder, "sched_yield", ir.IntType(32))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def prefetch(typingctx, arr, idx):
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aty, _ = signature.args
        a, i = args
        ptr = _element(context, builder, aty, a, i)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0i8")
        # read (0), keep in every cache level (locality 3), data cache (1)
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def cycles(typingctx):
    sig = types.int64()

    def codegen(context, builder, signature, args):
        if not _X86:
            # elsewhere the counter may be closed to user code (AArch64's PMCCNTR_EL0, RISC-V's
            # rdcycle since Linux 6.6): reading it would be an illegal instruction
            return ir.Constant(ir.IntType(64), 0)
        return _call(builder, "llvm.readcyclecounter", ir.IntType(64))

    return sig, codegen


if _DISABLED:  # NEUROLNS_DISABLE_JIT=1: kernels run as Python, so these must too
    import os as _os

    def store_release(arr, idx, val):  # noqa: F811 - the plain-Python twin
        arr[idx] = val

    def load_acquire(arr, idx):  # noqa: F811
        return arr[idx]

    def pause():  # noqa: F811
        pass

    def sched_yield():  # noqa: F811
        _os.sched_yield()

    def prefetch(arr, idx):  # noqa: F811
        pass

    def cycles():  # noqa: F811
        return 0
