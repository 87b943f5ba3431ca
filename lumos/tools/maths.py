"""The paper's seven maths actions, executed locally with sympy (the paper's code sent them to the
paid WolframAlpha API and executed only three of them).

Each tool is ``Tool(args: str, env: dict[str, str] | None = None) -> str`` (a ``Value``), or a tuple
of them for ``R5, R6 = SolveEquation(...)``. Arguments go through the restricted parser in
``lumos/tools/expr.py`` — never ``eval``/``exec``/``sympify`` — and each call is bounded in time.

    Calculator(40% * p)                 -> 2p/5
    Define(p)                           -> p
    SetEquation(R2 = R4)                -> 2p/5 = p/4 + 150          (an equation, kept as text)
    SolveEquation(R2 = R4)              -> 1000
    SolveEquation(R2=xy, R3=x/y)        -> (-9/8, -3/5)               (unknowns sorted by name)
    SolveEquation(R2 + R4)              -> the value (no '=' and no unknown: just evaluate)
    SolveInequality(2x + 3 > 7)         -> x > 2
    Count(2^0, 2^1, 2^2)                -> 3
    Code(If R8 > 0, R8, -R8)            -> 64

Code is NOT a Python sandbox: it evaluates the paper's pseudo-code — ``If cond, a, b`` (or
``if cond then a else b``) and plain formulas — through the same restricted grammar, and refuses
anything else with a ToolError. Running model-written Python safely needs a process with no network
and no writable files, which this package cannot guarantee on every machine, so it never runs it.
"""
import functools
import re

import sympy as sp

from lumos.tools import ToolError, Value
from lumos.tools.expr import MAX_ARG_CHARS, as_value, format_value, parse, split_top_level, time_limit

_EQ = re.compile(r"(?<![<>=!])=(?!=)")      # a single '=' (not ==, <=, >=, !=)
_REF = re.compile(r"R\d+")
MAX_UNKNOWNS = 4
MAX_EQUATIONS = 6


def _bounded(fn):
    """Length check, time limit, and any library exception turned into a one-line ToolError."""
    @functools.wraps(fn)
    def tool(args: str, env=None):
        if len(args) > MAX_ARG_CHARS:
            raise ToolError(f"argument too long ({len(args)} characters, limit {MAX_ARG_CHARS})")
        try:
            with time_limit():
                return fn(args.strip(), env)
        except ToolError:
            raise
        except RecursionError:
            raise ToolError("formula nested too deeply") from None
        except Exception as err:      # sympy giving up (NotImplementedError etc.): report, never crash
            msg = (str(err).splitlines() or [""])[0][:120]
            raise ToolError(f"{fn.__name__} failed: {type(err).__name__}: {msg}") from None
    return tool


def _split_equation(item: str):
    """'a = b' -> ('a', 'b'); no single '=' -> None; 'a = b = c' is refused."""
    parts = _EQ.split(item)
    if len(parts) == 1:
        return None
    if len(parts) > 2 or not parts[0].strip() or not parts[1].strip():
        raise ToolError(f"not an equation: {item!r}")
    return parts[0].strip(), parts[1].strip()


def _items(args: str, env) -> list[str]:
    """Top-level comma items; an item that is just R_j holding a set equation is expanded."""
    out = []
    for item in split_top_level(args):
        if _REF.fullmatch(item) and env and item in env and _EQ.search(str(env[item])):
            out.extend(split_top_level(str(env[item])))
        elif item:
            out.append(item)
    return out


@_bounded
def Calculator(args, env=None):
    """Calculate the input formula: numbers, %, powers, comparisons (-> True/False), unknowns."""
    return as_value(parse(args, env))


@_bounded
def Define(args, env=None):
    """Define a variable or a number for later use: Define(p) -> p, Define(x = 5) -> 5."""
    lr = _split_equation(args)
    return as_value(parse(lr[1] if lr else args, env))


@_bounded
def SetEquation(args, env=None):
    """Set up equation(s) to be solved: the sides are computed, the '=' kept ('a = b, c = d')."""
    eqs = []
    for item in _items(args, env):
        lr = _split_equation(item)
        if lr is None:
            raise ToolError(f"SetEquation needs 'left = right', got {item!r}")
        eqs.append(f"{format_value(parse(lr[0], env))} = {format_value(parse(lr[1], env))}")
    if not eqs:
        raise ToolError("SetEquation got no equation")
    return Value(", ".join(eqs))


@_bounded
def SolveEquation(args, env=None):
    """Solve equation(s) for their unknowns (sorted by name), or evaluate a formula with none.

    Real solutions only; when there are several and some are all-positive, the positive ones win
    (word problems count and measure). Items that are a bare unknown name the unknowns to solve
    for; items like `x > 0` filter the solutions. One unknown with several solutions -> "a, b".
    """
    eqs, targets, constraints, had_eq = [], [], [], False
    items = _items(args, env)
    for item in items:
        lr = _split_equation(item)
        if lr:
            had_eq = True
            eqs.append(parse(lr[0], env) - parse(lr[1], env))
            continue
        e = parse(item, env)
        if isinstance(e, sp.Symbol) and len(items) > 1:
            targets.append(e)
        elif isinstance(e, (sp.core.relational.Relational, sp.logic.boolalg.BooleanFunction)) and not isinstance(e, sp.Eq):
            constraints.append(e)
        elif isinstance(e, sp.Eq):
            had_eq = True
            eqs.append(e.lhs - e.rhs)
        else:
            eqs.append(e)
    if not eqs:
        raise ToolError("SolveEquation got no equation")
    if not had_eq and len(eqs) == 1 and not eqs[0].free_symbols:
        return as_value(eqs[0])          # the paper's SolveEquation(R2 + R4): just a value
    every = sorted(set().union(*(e.free_symbols for e in eqs)) | set(targets), key=lambda s: s.name)
    unknowns = targets or every     # solve for every unknown; report the asked-for ones
    if not unknowns:
        if all(sp.simplify(e) == 0 for e in eqs):
            return Value("True", exact=sp.true)
        raise ToolError("the equation has no unknown and does not hold")
    if len(every) > MAX_UNKNOWNS or len(eqs) > MAX_EQUATIONS:
        raise ToolError(f"too many unknowns/equations (limits {MAX_UNKNOWNS}/{MAX_EQUATIONS})")
    # (one equation goes in bare: given a list, sympy drops CRootOf roots such as those of x^5 - x + 1)
    sols = sp.solve(eqs[0] if len(eqs) == 1 else eqs, every, dict=True)
    names = ", ".join(u.name for u in unknowns)
    if not sols:
        raise ToolError(f"no solution for {names}")
    for s in sols:
        missing = [u.name for u in unknowns if u not in s or s[u].free_symbols]
        if missing:
            raise ToolError(f"cannot determine {', '.join(missing)}: fewer independent equations than unknowns")
    real = [s for s in sols if all(s[u].is_real for u in unknowns)]
    real = [s for s in real if all(c.subs(s) == sp.true for c in constraints)]
    if not real:
        raise ToolError(f"no real solution for {names}" + (" meeting the conditions" if constraints else ""))
    positive = [s for s in real if all(s[u] > 0 for u in unknowns)]
    if positive:
        real = positive
    distinct = list({tuple(s[u] for u in unknowns): s for s in real}.values())
    if len(distinct) > 1:
        if len(unknowns) == 1:
            vals = sorted((s[unknowns[0]] for s in distinct), key=lambda v: float(v))
            return Value(", ".join(format_value(v) for v in vals))
        raise ToolError(f"{len(distinct)} solutions for {names}; add a condition such as x > 0")
    real = distinct
    values = tuple(as_value(real[0][u]) for u in unknowns)
    return values[0] if len(values) == 1 else values


def _format_set(s, x) -> str:
    """A solution set of one unknown as a person writes it: 'x > 2', '1 <= x < 3', 'x < 0 or x > 1'."""
    n = x.name
    if isinstance(s, sp.Union):
        return " or ".join(_format_set(a, x) for a in s.args)
    if s == sp.S.EmptySet:
        return "no solution"
    if s == sp.S.Reals:
        return "all real numbers"
    if isinstance(s, sp.FiniteSet):
        return f"{n} = " + ", ".join(format_value(v) for v in s)
    if isinstance(s, sp.Interval):
        a, b = s.start, s.end
        lo = "" if a == -sp.oo else f"{format_value(a)} {'<' if s.left_open else '<='} "
        hi = "" if b == sp.oo else f" {'<' if s.right_open else '<='} {format_value(b)}"
        if lo and not hi:       # 'x > 2' reads better than '2 < x'
            return f"{n} {'>' if s.left_open else '>='} {format_value(a)}"
        return f"{lo}{n}{hi}"
    return sp.sstr(s)


@_bounded
def SolveInequality(args, env=None):
    """Solve inequality (or inequalities) in one unknown: SolveInequality(2x + 3 > 7) -> x > 2."""
    conds = [parse(item, env) for item in _items(args, env)]
    if not conds:
        raise ToolError("SolveInequality got no inequality")
    for c in conds:
        if not isinstance(c, (sp.core.relational.Relational, sp.logic.boolalg.Boolean)) or isinstance(c, sp.Symbol):
            raise ToolError(f"not an inequality: {format_value(c)}")
    syms = sorted(set().union(*(c.free_symbols for c in conds)), key=lambda s: s.name)
    if not syms:
        return Value("True" if all(c == sp.true for c in conds) else "False")
    if len(syms) > 1:
        raise ToolError(f"SolveInequality handles one unknown, got {', '.join(s.name for s in syms)}")
    x = syms[0]
    solution = sp.reduce_inequalities(conds, [x])
    return Value(_format_set(solution.as_set() if not isinstance(solution, sp.Set) else solution, x))


@_bounded
def Count(args, env=None):
    """Count the elements of a list: Count(2^0, 2^1, 2^2) -> 3; Count([a, b]); Count(R3) where
    R3 holds a comma-separated list."""
    text = args
    if _REF.fullmatch(text):
        if not env or text not in env:
            raise ToolError(f"undefined variable {text}")
        text = str(env[text]).strip()
    if len(text) >= 2 and text[0] + text[-1] in ("[]", "{}", "()") and len(split_top_level(text[1:-1], ";")) == 1 \
            and split_top_level(text) == [text]:
        text = text[1:-1]
    n = len([i for i in split_top_level(text) if i])
    return Value(str(n), exact=sp.Integer(n))


_IF_COMMAS = re.compile(r"\s*if\s+(.*)", re.I | re.S)
_IF_THEN = re.compile(r"(.*?)\s+then\s+(.*?)\s+else\s+(.*)", re.I | re.S)


@_bounded
def Code(args, env=None):
    """The paper's pseudo-code only: 'If cond, a, b' / 'if cond then a else b' / a formula.
    Arbitrary Python is refused (see the module docstring), never run."""
    m = _IF_COMMAS.fullmatch(args)
    if m:
        parts = split_top_level(m.group(1))
        if len(parts) != 3:
            tt = _IF_THEN.fullmatch(m.group(1))
            if not tt:
                raise ToolError("Code: write the conditional as 'If condition, value-if-true, value-if-false'")
            parts = [p.strip() for p in tt.groups()]
        cond = parse(parts[0], env)
        if not isinstance(cond, sp.logic.boolalg.BooleanAtom):
            raise ToolError(f"Code: the condition {format_value(cond)!r} is neither True nor False")
        return as_value(parse(parts[1] if cond else parts[2], env))
    try:
        return as_value(parse(args, env))
    except ToolError as err:
        raise ToolError(f"Code runs only pseudo-code ('If cond, a, b') or a formula, never Python ({err})") from None


MATHS_TOOLS = {"Calculator": Calculator, "SetEquation": SetEquation, "SolveEquation": SolveEquation,
               "Define": Define, "Count": Count, "SolveInequality": SolveInequality, "Code": Code}
