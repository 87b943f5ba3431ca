"""A tiny exact arithmetic evaluator for GSM8K calculation marks (never `eval`).

Only numbers, R_k names bound in `env`, + - * / ** and parentheses are allowed; values are
`fractions.Fraction`, so `1/3 * 3 == 1` exactly. Used by the converter to check that each
`<<expr=value>>` really evaluates to its value and that the action chain reproduces the answer.
Values are printed by lumos.tools.printing.format_number, the tools' own printer.
"""
import ast
import re
from fractions import Fraction
from functools import lru_cache

MAX_EXPONENT = 64          # a GSM8K power is small; anything larger is refused, not computed
MAX_LEN = 500


class ArithError(ValueError):
    pass


_BIN = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b}


def evaluate(expr: str, env: dict[str, Fraction] | None = None) -> Fraction:
    """Exact value of `expr`, e.g. evaluate("R1 * 2", {"R1": Fraction(9)}) == 18."""
    if len(expr) > MAX_LEN:
        raise ArithError("expression too long")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        raise ArithError(f"not an arithmetic expression: {expr!r}") from None
    return _eval(tree.body, env or {})


def _eval(node, env):
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(repr(node.value))          # repr keeps 0.1 as 1/10, not the binary float
    if isinstance(node, ast.Name) and re.fullmatch(r"R\d+", node.id):
        if node.id not in env:
            raise ArithError(f"{node.id} is not defined")
        return env[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand, env)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left, env), _eval(node.right, env)
        if isinstance(node.op, ast.Pow):
            if b.denominator != 1 or abs(b) > MAX_EXPONENT:
                raise ArithError("only small whole exponents are supported")
            if a == 0 and b < 0:
                raise ArithError("division by zero")
            return a ** int(b)
        if type(node.op) in _BIN:
            if isinstance(node.op, ast.Div) and b == 0:
                raise ArithError("division by zero")
            return _BIN[type(node.op)](a, b)
    raise ArithError(f"unsupported syntax: {ast.dump(node)[:60]}")


@lru_cache(maxsize=65536)
def parse_number(text: str) -> Fraction:
    """'1,000' / '.5' / '144.00' / '-3' -> exact Fraction."""
    t = text.replace(",", "").strip()
    if not re.fullmatch(r"-?(\d+\.?\d*|\.\d+)", t):
        raise ArithError(f"not a number: {text!r}")
    return Fraction(t)
