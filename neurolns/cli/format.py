"""``neurolns format``: show an LNS format's range, resolution and a few encoded values."""
from __future__ import annotations

from neurolns.cli.common import UsageError

DEFAULT_VALUES = "3.0,0.1,-1.0,0.0,1e-9,1e9"


def register(sub) -> None:
    p = sub.add_parser(
        "format",
        help="show an LNS format: range, resolution, encoded values",
        description="Show an LNS format (value = sign * scale * 2**((|c| - bias)/gamma)): its exponent range, "
        "largest/smallest magnitude, dynamic range, resolution, and how a few values encode at scale 1.",
    )
    p.add_argument("--bits", type=int, default=8, help="total bits including the sign (2..32; default 8)")
    p.add_argument("--gamma", type=int, default=8, help="base factor, a power of two (default 8: base 2**(1/8))")
    p.add_argument("--bias", type=int, default=None, help="exponent bias (default 2**(bits-2))")
    p.add_argument("--underflow", choices=["zero", "saturate"], default="zero", help="tiny values: flush or saturate")
    p.add_argument("--values", default=DEFAULT_VALUES, help=f"comma-separated values to encode (default {DEFAULT_VALUES})")
    p.set_defaults(handler=run)


def _parse_values(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--values must be comma-separated numbers, got {text!r}") from None
    # NaN has no LNS code (the codec refuses it); infinities saturate like any value beyond the range
    if any(v != v for v in values):
        raise UsageError(f"--values {text!r} holds NaN; allowed: numbers, ±inf saturate")
    if not values:
        raise UsageError(f"--values {text!r} holds no number; allowed: comma-separated numbers")
    return values


def run(args, extra) -> int:
    import warnings

    import numpy as np

    from neurolns import LNSFormat
    from neurolns.lns import encode

    values = np.array(_parse_values(args.values))
    try:
        fmt = LNSFormat(bits=args.bits, gamma=args.gamma, bias=args.bias, underflow=args.underflow)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    # encode before printing anything, so that a refused value leaves no half-written table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = encode(values, fmt, scale=1.0)
    print(f"{fmt}")
    print(f"  value          = sign(c) * scale * 2**((|c| - {fmt.bias}) / {fmt.gamma}),  c = 0 is exact zero")
    print(f"  code dtype     = {fmt.code_dtype}  (codes ±1..±{fmt.max_code})")
    print(f"  exponent range = [{fmt.e_min}, {fmt.e_max}]  ({(fmt.e_max - fmt.e_min) / fmt.gamma:g} octaves)")
    print(f"  largest        = {fmt.max_magnitude:.6g} * scale")
    print(f"  smallest       = {fmt.min_magnitude:.6g} * scale")
    print(f"  dynamic range  = {fmt.dynamic_range_db:.2f} dB")
    print(f"  resolution     = {fmt.resolution:.6g}  (2**(1/{fmt.gamma}) - 1; nearest rounding is within half of it in log2)")
    print()
    decoded = a.decode()
    words = fmt.to_word(a.codes)
    print(f"  {'value':>12s} {'code':>8s} {'exponent':>9s} {'word':>{fmt.bits + 2}s} {'decoded':>14s} {'rel. error':>11s}")
    for v, c, e, w, d in zip(values, a.codes, a.exponents, words, decoded):
        exp = f"{e:d}" if c != 0 else "zero"
        # a saturated infinity has no finite relative error: nan, without numpy's warning
        rel = abs(d - v) / abs(v) if v != 0 and np.isfinite(v) else (0.0 if v == 0 else float("nan"))
        print(f"  {v:>12.6g} {int(c):>8d} {exp:>9s} {format(int(w), f'0{fmt.bits}b'):>{fmt.bits + 2}s} {d:>14.6g} {rel:>11.3g}")
    print("\n  (values beyond the range saturate; below it they flush to zero or saturate per --underflow)")
    return 0
