"""Results printed the way a person writes them: 18, 2.5, 0.333333, True, 2p/5, n^2 - 4n + 4.

Integers in full; terminating fractions as exact decimals (1/1024 -> 0.0009765625); repeating
ones rounded half-up to 6 decimals (the exact value travels on in ``Value.exact``); formulas
expanded, with ``**`` as ``^`` and no ``*`` between a number and a letter (the paper's ``2p/5``).
"""
import re
from fractions import Fraction
from functools import lru_cache

import sympy as sp

from lumos.tools import ToolError, Value

MAX_DIGITS = 3_000         # the largest exact number (numerator or denominator) computed or printed


@lru_cache(maxsize=65536)
def format_number(x: Fraction) -> str:
    """The one number printer (tool results, and the GSM8K converter's results, which must match them):
    24 (never 24.0), 2.5, -0.125, 0.0009765625 (a terminating decimal of at most 12 places, exactly),
    3.333333 (else rounded half-up to 6 places, trailing zeros dropped), 3.33333e-07 (a nonzero value that
    would round to 0 keeps 6 significant digits), 0 (never -0)."""
    p, q = x.numerator, x.denominator
    sign, p = ("-" if p < 0 else ""), abs(p)
    if q == 1:
        return sign + str(p)
    rest, k2, k5 = q, 0, 0
    while rest % 2 == 0:
        rest, k2 = rest // 2, k2 + 1
    while rest % 5 == 0:
        rest, k5 = rest // 5, k5 + 1
    k = max(k2, k5)
    if rest == 1 and k <= 12:              # terminating decimal: print it exactly
        digits = p * 10 ** k // q
    else:                                   # 1/3 -> 0.333333 (6 decimals, half-up)
        k, digits = 6, (2 * p * 10 ** 6 + q) // (2 * q)
        if digits == 0:
            small = p / q                   # exact ints -> the nearest float; 0.0 only below 1e-308
            return sign + f"{small:.6g}" if small else "0"
    s = str(digits).rjust(k + 1, "0")
    s = (s[:-k] + "." + s[-k:]).rstrip("0").rstrip(".")
    return "0" if s == "0" else sign + s


def format_value(e) -> str:
    """A sympy result as a person writes it: 18, 2.5, 0.333333, True, 2p/5, n^2 - 4n + 4."""
    if isinstance(e, sp.logic.boolalg.BooleanAtom):
        return "True" if e else "False"
    if e.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise ToolError("division by zero or infinite result")
    if e.is_number:
        if e.is_Rational:
            return format_number(Fraction(int(e.p), int(e.q)))
        v = e.evalf(30)
        if not v.is_real:
            if abs(sp.im(v)) > 1e-12 * max(1, abs(sp.re(v))):
                raise ToolError(f"complex result {sp.sstr(e.evalf(6))}")
            v = sp.re(v)
        if abs(v) > sp.Integer(10) ** MAX_DIGITS:
            raise ToolError(f"result too large (over {MAX_DIGITS} digits)")
        f = Fraction(str(sp.Float(v, 30)))  # exact decimal of the 30-digit float, then rounded
        return format_number(f)
    if isinstance(e, sp.Expr) and sp.count_ops(e) < 200:
        e = sp.expand(e)
    s = sp.sstr(e).replace("**", "^")
    return re.sub(r"(\d)\*(?=[A-Za-z(])", r"\1", s)      # 2*p/5 -> 2p/5


def as_value(e) -> Value:
    """A sympy result -> Value (display text + the exact object)."""
    return Value(format_value(e), exact=e)
