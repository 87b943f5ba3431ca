"""A restricted expression language for the maths tools: model text -> sympy object, never via eval.

The grounder's text is untrusted, and ``sympy.sympify`` runs ``eval`` on it, so this file tokenizes
with one regular expression and builds sympy objects by recursive descent from the validated tokens.
Only numbers, variables, earlier results ``R_j``, a whitelist of functions and these operators exist:

    condition  := ['not'] comparison (('and'|'or') ...)*
    comparison := sum [('<'|'<='|'>'|'>='|'=='|'!=') sum]
    sum        := term (('+'|'-') term)*
    term       := unary (('*'|'/'|'//'|'%' as modulo) unary | implicit-times power)*
    unary      := ('-'|'+') unary | power
    power      := postfix [('^'|'**') unary]                 (right-associative)
    postfix    := atom ('%' as percent | '!')*
    atom       := number | R_j ['(' args ')'] | name ['(' args ')'] | '(' condition ')'

Written-maths conveniences: ``$`` and units of currency are dropped, ``1,000`` is a thousands
separator, ``x``/``×``/``·`` between numbers and ``of`` mean times, ``÷`` is divide, ``%`` is percent
when no operand follows it (``40% * p``, ``15 / 25%``) and modulo otherwise (``141 % 3``),
``2p/5`` and ``3(4+1)`` are implicit products, ``xy`` (2-3 unknown letters) is ``x*y``, and the
LaTeX of MATH-style annotations (``\\frac{1}{2}``, ``\\sqrt{2}``, ``\\cdot``) is rewritten first.
``Rk(a, b)`` applies the symbolic result ``Rk`` to values: its unknowns, sorted by name, take
``a, b`` (the paper's ``Calculator(R4(R5, R6))``).

Bounded time: inputs over MAX_ARG_CHARS, MAX_TOKENS or MAX_DEPTH nesting are refused before any
work; powers and factorials are size-checked *before* they are computed (``9**9**9**9`` fails in
microseconds); rational results over MAX_DIGITS digits are refused; and ``time_limit`` (SIGALRM,
main thread only) caps what sympy may spend on one action.
"""
import contextlib
import math
import re
import signal
import threading
import time
from fractions import Fraction

import sympy as sp

from lumos.tools import ToolError
from lumos.tools.printing import MAX_DIGITS, as_value, format_value  # noqa: F401  (re-exported for the tools)

MAX_ARG_CHARS = 10_000     # a grounding argument longer than this is not a formula
MAX_TOKENS = 2_000
MAX_DEPTH = 60             # nested brackets / signs
MAX_BITS = int(MAX_DIGITS * 3.33)
MAX_SYMBOLIC_EXP = 32      # x^32 at most: keeps expand() and solve() quick
MAX_FACTORIAL = 1_000      # 1000! has 2568 digits
TIME_LIMIT_S = 2.0

_TOKEN = re.compile(r"""
  (?P<num>\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)? | \d+\.?\d* | \.\d+)
| (?P<ref>R\d+(?![A-Za-z0-9_]))
| (?P<name>[A-Za-z_]+)
| (?P<op>\*\*|//|==|!=|<=|>=|[-+*/^%!()<>,=\[\]])
| (?P<space>\s+)
""", re.X)
_NORMALISE = str.maketrans({"×": "*", "·": "*", "⋅": "*", "∗": "*", "÷": "/", "−": "-", "–": "-",
                            "—": "-", "≤": "<=", "≥": ">=", "≠": "!=", "²": "^2", "³": "^3",
                            "$": "", "€": "", "£": "", "¥": ""})
_RESERVED = {"and", "or", "not", "if", "then", "else"}
_NOT_NUMBERS = {"nan", "inf", "infinity", "oo"}  # Python/NumPy/sympy spellings of non-finite floats
_CMP = {"<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge, "==": sp.Eq, "!=": sp.Ne}


_LATEX = [(r"\\left|\\right|\\!|\\,", ""), (r"\\cdot|\\times", "*"), (r"\\div", "/"), (r"\\pi", "pi"),
          (r"\\%", "%"), (r"\\sqrt", "sqrt")]
_FRAC = re.compile(r"\\[dt]?frac\s*\{")


def _brace_group(text: str, i: int) -> int:
    """Index just past the '}' closing the '{' at text[i] (or -1)."""
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return j + 1
    return -1


def delatex(text: str) -> str:
    """The bits of LaTeX that MATH-style annotations use: \\frac{a}{b} -> ((a)/(b)), \\sqrt{a}, \\cdot..."""
    if "\\" not in text:
        return text
    for _ in range(100):             # \frac groups, innermost last; bounded like everything else
        m = _FRAC.search(text)
        if m is None:
            break
        a_end = _brace_group(text, m.end() - 1)
        if a_end < 0 or a_end >= len(text) or text[a_end] != "{":
            raise ToolError("malformed \\frac")
        b_end = _brace_group(text, a_end)
        if b_end < 0:
            raise ToolError("malformed \\frac")
        text = f"{text[:m.start()]}(({text[m.end():a_end - 1]})/({text[a_end + 1:b_end - 1]})){text[b_end:]}"
    for pattern, repl in _LATEX:
        text = re.sub(pattern, repl, text)
    return text.replace("{", "(").replace("}", ")")


def tokenize(text: str) -> list[tuple[str, str]]:
    """Text -> [(kind, text)] with kind in num/ref/name/op; raises ToolError on anything else."""
    if len(text) > MAX_ARG_CHARS:
        raise ToolError(f"argument too long ({len(text)} characters, limit {MAX_ARG_CHARS})")
    text = delatex(text).translate(_NORMALISE)
    toks, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ToolError(f"unexpected character {text[pos]!r} at position {pos}")
        pos = m.end()
        if m.lastgroup != "space":
            toks.append((m.lastgroup, m.group()))
        if len(toks) > MAX_TOKENS:
            raise ToolError(f"formula too long (over {MAX_TOKENS} tokens)")
    # 'x' between numbers is times ("3 x 4"), 'of' is times ("25% of 80")
    for i, (kind, t) in enumerate(toks):
        if kind == "name" and t in ("x", "X") and 0 < i < len(toks) - 1:
            prev, nxt = toks[i - 1], toks[i + 1]
            if (prev[0] == "num" or prev[1] == ")") and nxt[0] == "num":
                toks[i] = ("op", "*")
        elif kind == "name" and t.lower() == "of":
            toks[i] = ("op", "*")
    return toks


def split_top_level(text: str, seps: str = ",") -> list[str]:
    """Split at any character of `seps` that is outside (), [], {} — '2^0, max(1, 2)' -> 2 parts."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch in seps and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


# ---------------------------------------------------------------------------------------------
# size-checked constructors: every operation that can blow up goes through one of these

def _is_truth(e) -> bool:
    # (sp.Symbol is itself a sympy Boolean, so test the concrete truth-valued classes)
    return isinstance(e, (sp.logic.boolalg.BooleanAtom, sp.logic.boolalg.BooleanFunction, sp.core.relational.Relational))


def _bits(r) -> int:
    return max(abs(int(r.p)).bit_length(), int(r.q).bit_length())


def _check(e):
    if isinstance(e, sp.Rational) and _bits(e) > MAX_BITS:
        raise ToolError(f"result too large (over {MAX_DIGITS} digits)")
    if e.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise ToolError("division by zero, or an undefined or infinite result")
    return e


def _pow(b, e):
    if e.is_Rational:
        if b.is_number:
            if b == 0 and e < 0:
                raise ToolError("division by zero")
            if b.is_Rational and b not in (0, 1, -1):
                est_digits = float(abs(e)) * _bits(b) / 3.32
                if est_digits > MAX_DIGITS:
                    raise ToolError(f"result too large (about {est_digits:.3g} digits)")
            elif not b.is_Rational and abs(float(e)) > 10_000:
                raise ToolError("exponent too large")
        elif abs(e) > MAX_SYMBOLIC_EXP:
            raise ToolError(f"exponent {e} too large for a symbolic base (limit {MAX_SYMBOLIC_EXP})")
    elif e.is_number:   # irrational exponent: bound the magnitude numerically
        if not b.is_number or abs(float(e.evalf(15))) * max(1.0, math.log10(abs(float(b.evalf(15))) + 1)) > MAX_DIGITS:
            raise ToolError("exponent too large")
    return _check(sp.Pow(b, e))


def _factorial(n):
    if not (n.is_Integer and 0 <= n <= MAX_FACTORIAL):
        raise ToolError(f"factorial needs an integer from 0 to {MAX_FACTORIAL}, got {format_value(n)}")
    return sp.factorial(n)


def _comb(n, k):
    if not (n.is_Integer and k.is_Integer and 0 <= n <= 10 * MAX_FACTORIAL):
        raise ToolError("comb needs integers n, k with 0 <= n <= 10000")
    return sp.binomial(n, k)


def _round(x, n=sp.Integer(0)):
    if not (x.is_number and x.is_real and n.is_Integer and abs(n) <= 50):
        raise ToolError("round needs a real number and an integer number of places")
    scale = sp.Integer(10) ** n   # half-up, the way people round (Python rounds half-even)
    return sp.floor(x * scale + sp.Rational(1, 2)) / scale


def _log(x, base=None):
    return sp.log(x) if base is None else sp.log(x, base)


def _gcd(*xs):
    return sp.gcd(list(xs)) if len(xs) > 2 else sp.gcd(*xs)


def _lcm(*xs):
    return sp.lcm(list(xs)) if len(xs) > 2 else sp.lcm(*xs)


# name -> (min args, max args or None, constructor)
FUNCTIONS = {
    "sqrt": (1, 1, sp.sqrt), "cbrt": (1, 1, sp.cbrt), "abs": (1, 1, sp.Abs), "round": (1, 2, _round),
    "min": (1, None, sp.Min), "max": (1, None, sp.Max), "floor": (1, 1, sp.floor), "int": (1, 1, sp.floor),
    "ceil": (1, 1, sp.ceiling), "ceiling": (1, 1, sp.ceiling), "gcd": (2, None, _gcd), "lcm": (2, None, _lcm),
    "factorial": (1, 1, _factorial), "comb": (2, 2, _comb), "choose": (2, 2, _comb), "binomial": (2, 2, _comb),
    "log": (1, 2, _log), "ln": (1, 1, sp.log), "exp": (1, 1, sp.exp), "sum": (1, None, lambda *a: sp.Add(*a)),
    "mod": (2, 2, sp.Mod), "sin": (1, 1, sp.sin), "cos": (1, 1, sp.cos), "tan": (1, 1, sp.tan),
}


def substitute(expr, mapping: dict):
    """expr with symbols replaced, rebuilt through the checked constructors (sympy's own subs would
    happily compute 2^(10^9) once n := 10^9 lands in 2^n)."""
    if isinstance(expr, sp.Symbol):
        return mapping.get(expr, expr)
    if not expr.args or not (expr.free_symbols & set(mapping)):
        return expr
    args = [substitute(a, mapping) for a in expr.args]
    if isinstance(expr, sp.Pow):
        return _pow(*args)
    if isinstance(expr, sp.factorial):
        return _factorial(*args)
    if isinstance(expr, sp.binomial):
        return _comb(*args)
    if isinstance(expr, sp.Mul):
        out = sp.Integer(1)
        for a in args:
            out = _check(out * a)
        return out
    return _check(expr.func(*args))


# ---------------------------------------------------------------------------------------------

class _Parser:
    def __init__(self, toks, env):
        self.toks, self.i, self.env, self.depth = toks, 0, env, 0

    def peek(self, k=0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else ("end", "")

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, op):
        tok = self.take()
        if tok != ("op", op):
            raise ToolError(f"expected {op!r}, found {tok[1] or 'end of formula'!r}")

    def starts_operand(self, tok):
        return tok[0] in ("num", "ref") or tok == ("op", "(") or (tok[0] == "name" and tok[1].lower() not in _RESERVED)

    def nest(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ToolError(f"formula nested too deeply (over {MAX_DEPTH} levels)")

    def parse(self):
        e = self.condition()
        if self.peek()[0] != "end":
            t = self.peek()[1]
            if t == "=":
                raise ToolError("'=' makes an equation: use SetEquation/SolveEquation, or '==' to compare")
            raise ToolError(f"unexpected {t!r}")
        return e

    def condition(self):
        e = self.negation()
        while self.peek()[0] == "name" and self.peek()[1].lower() in ("and", "or"):
            op = self.take()[1].lower()
            rhs = self.negation()
            e = sp.And(e, rhs) if op == "and" else sp.Or(e, rhs)
        return e

    def negation(self):
        if self.peek()[0] == "name" and self.peek()[1].lower() == "not":
            self.take()
            self.nest()
            e = sp.Not(self.negation())
            self.depth -= 1
            return e
        return self.comparison()

    def comparison(self):
        e = self.sum()
        if self.peek()[0] == "op" and self.peek()[1] in _CMP:
            op = self.take()[1]
            e = _CMP[op](e, self.sum())
        return e

    def sum(self):
        e = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            rhs = self.term()
            e = _check(e + rhs if op == "+" else e - rhs)
        return e

    def term(self):
        e = self.unary()
        while True:
            tok = self.peek()
            if tok in (("op", "*"), ("op", "/"), ("op", "//"), ("op", "%")):
                self.take()
                rhs = self.unary()
                if tok[1] == "*":
                    e = _check(e * rhs)
                elif rhs == 0:
                    raise ToolError("division by zero")
                else:
                    e = _check(e / rhs if tok[1] == "/" else sp.floor(e / rhs) if tok[1] == "//" else sp.Mod(e, rhs))
            elif tok[0] != "num" and self.starts_operand(tok):   # 2p, 3(4+1), (a)(b)
                e = _check(e * self.power())
            else:
                return e

    def unary(self):
        if self.peek() in (("op", "-"), ("op", "+")):
            sign = self.take()[1]
            self.nest()
            e = self.unary()
            self.depth -= 1
            return -e if sign == "-" else e
        return self.power()

    def power(self):
        base = self.postfix()
        if self.peek() in (("op", "^"), ("op", "**")):
            self.take()
            self.nest()
            exp = self.unary()
            self.depth -= 1
            if _is_truth(base) or _is_truth(exp):
                raise ToolError("cannot raise a truth value to a power")
            return _pow(base, exp)
        return base

    def postfix(self):
        e = self.atom()
        while True:
            if self.peek() == ("op", "%") and not self.starts_operand(self.peek(1)):
                self.take()
                e = e / 100
            elif self.peek() == ("op", "!"):
                self.take()
                e = _factorial(e)
            else:
                return e

    def arglist(self):
        """After a '(' : comma-separated conditions up to the matching ')'."""
        self.nest()
        args = [self.condition()]
        while self.peek() == ("op", ","):
            self.take()
            args.append(self.condition())
        self.expect(")")
        self.depth -= 1
        return args

    def atom(self):
        kind, t = self.take()
        if kind == "num":
            f = Fraction(t.replace(",", ""))
            return sp.Rational(f.numerator, f.denominator)
        if kind == "ref":
            value = resolve_ref(t, self.env)
            if self.peek() == ("op", "(") and value.free_symbols:    # Rk(a, b): apply Rk
                self.take()
                args = self.arglist()
                syms = sorted(value.free_symbols, key=lambda s: s.name)
                if len(args) != len(syms):
                    raise ToolError(f"{t} has {len(syms)} unknown(s) ({', '.join(s.name for s in syms)}) "
                                    f"but got {len(args)} value(s)")
                return substitute(value, dict(zip(syms, args)))
            return value
        if kind == "name":
            low = t.lower()
            if low in FUNCTIONS and self.peek() == ("op", "("):
                self.take()
                lo, hi, fn = FUNCTIONS[low]
                args = self.arglist()
                if len(args) < lo or (hi is not None and len(args) > hi):
                    raise ToolError(f"{low}() takes {lo if lo == hi else f'{lo} or more'} argument(s), got {len(args)}")
                return _check(fn(*args))
            if low == "pi":
                return sp.pi
            if low in ("true", "false"):
                return sp.true if low == "true" else sp.false
            if low in _RESERVED:
                raise ToolError(f"unexpected {t!r}")
            if low in _NOT_NUMBERS:   # would read as the product n*a*n: refuse it, deliberately
                raise ToolError(f"{t!r} is not a number the maths tools compute with (no NaN or infinity)")
            if len(t) > 1 and self.peek() == ("op", "("):
                raise ToolError(f"unknown function {t!r} (known: {', '.join(FUNCTIONS)})")
            if len(t) <= 3 and t.isalpha() and len(t) > 1:      # xy -> x*y (the paper's notation)
                return sp.Mul(*[sp.Symbol(c) for c in t])
            return sp.Symbol(t)
        if (kind, t) == ("op", "("):
            self.nest()
            e = self.condition()
            self.expect(")")
            self.depth -= 1
            return e
        raise ToolError(f"unexpected {t!r}" if t else "formula ends too early")


def resolve_ref(name: str, env) -> sp.Basic:
    """The exact value of an earlier result R_j (a Value's .exact, else its text parsed back)."""
    if env is None or name not in env:
        raise ToolError(f"undefined variable {name}")
    v = env[name]
    exact = getattr(v, "exact", None)
    if exact is not None:
        return exact
    text = str(v)
    try:
        return parse(text, env=None)
    except ToolError:
        short = text if len(text) <= 40 else text[:37] + "..."
        raise ToolError(f"{name} is not a number or formula: {short!r}") from None


def parse(text: str, env=None) -> sp.Basic:
    """Formula text -> sympy object. R_j are looked up in `env`; raises ToolError (one line)."""
    toks = tokenize(text)
    if not toks:
        raise ToolError("empty formula")
    try:
        return _Parser(toks, env).parse()
    except RecursionError:
        raise ToolError("formula nested too deeply") from None
    except (TypeError, ValueError, ZeroDivisionError, AttributeError) as err:   # sympy refusing a type mix
        raise ToolError(f"cannot compute: {str(err).splitlines()[0][:120] if str(err) else type(err).__name__}") from None


class _Timeout(BaseException):
    """Raised by the alarm; a BaseException so that sympy's internal `except Exception` can't eat it.
    It never leaves time_limit, which turns it into a ToolError."""


@contextlib.contextmanager
def time_limit(seconds: float = TIME_LIMIT_S):
    """Raise ToolError if the block runs past `seconds` (SIGALRM: Unix main thread only; elsewhere
    the static size limits above are the only bound). Limits nest: an inner block gets at most what
    the enclosing one has left (the executor's per-action budget around a maths tool's own limit),
    and the enclosing timer is re-armed with its remainder on the way out."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return
    armed = True

    def on_alarm(signum, frame):
        if armed:
            raise _Timeout()

    start = time.monotonic()
    old = signal.signal(signal.SIGALRM, on_alarm)
    outer_left = signal.setitimer(signal.ITIMER_REAL, 0)[0]
    mine = min(seconds, outer_left) if outer_left > 0 else seconds
    signal.setitimer(signal.ITIMER_REAL, max(mine, 1e-6))
    try:
        try:
            yield
        finally:
            armed = False      # from here on a late alarm does nothing; before, it lands in the outer try
    except _Timeout:
        raise ToolError(f"timed out after {mine:.3g} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if outer_left > 0:
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - start), 1e-6))
