"""The logarithmic number system: codec, exact products, adders and dot products.

>>> import numpy as np
>>> from neurolns import LNS8
>>> from neurolns import lns
>>> a = lns.encode(np.array([0.75, -2.0, 5.0]), LNS8)
>>> (a * a).decode().round(3)
array([ 0.595,  4.   , 26.909])
"""

from neurolns.lns.checks import check_codes, check_scale
from neurolns.lns.array import LNSArray, load, save
from neurolns.lns.codec import (
    as_rng,
    choose_scale,
    decode,
    decode_codes,
    encode,
    encode_codes,
    quantize,
)
from neurolns.lns.multiply import div, mul
from neurolns.lns.add import (
    AddMode,
    add,
    add_codes,
    add_error_bound,
    correction_tables,
    default_table_size,
    sub,
)
from neurolns.lns.dot import (
    Accumulator,
    AccumulatorStats,
    MatmulMode,
    SumMode,
    dot,
    matmul,
    sum,
)

__all__ = [
    "check_codes",
    "check_scale",
    "LNSArray",
    "encode",
    "decode",
    "encode_codes",
    "decode_codes",
    "choose_scale",
    "quantize",
    "as_rng",
    "mul",
    "div",
    "save",
    "load",
    "AddMode",
    "add",
    "sub",
    "add_codes",
    "add_error_bound",
    "correction_tables",
    "default_table_size",
    "MatmulMode",
    "SumMode",
    "Accumulator",
    "AccumulatorStats",
    "matmul",
    "dot",
    "sum",
]
