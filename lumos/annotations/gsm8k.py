"""Deterministic GSM8K -> Lumos converter (no LLM).

GSM8K solutions mark every calculation as `<<expr=value>>`:

    Natalia sold 48/2 = <<48/2=24>>24 clips in May.
    Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.
    #### 72

becomes

    Subgoal 1: Calculate how many clips Natalia sold in May.          R1 = Calculator(48 / 2)    -> 24
    Subgoal 2: Calculate how many clips Natalia sold altogether ...   R2 = Calculator(48 + R1)   -> 72

Rules (each tested in tests/test_gsm8k_convert.py):
- a solution *sentence* holding at least one mark is a subgoal; its marks are its actions, numbered
  R1, R2, ... across the whole solution. Sentences without marks only give context.
- an operand whose value equals an earlier result (exactly, or as the solution wrote it, e.g. 3.33
  for 10/3) is written as that result's name. When several earlier results share the value, the
  latest wins; an earlier result also wins over the same number written in the question (the
  solution chains its own results, and the two are numerically identical, so replay is unaffected).
- a mark without an operator (`<<6=6>>`) is not a calculation and gives no action; a mark whose
  expression repeats an earlier action exactly gives no new action either.
- a subgoal must not state its own value (unless the question or an earlier result holds that
  number): such examples are dropped rather than teach the planner to guess results.
- operands are normalised as in the paper ('.5' -> '0.5', '144.00' -> '144'), operators spaced.
- the example is dropped, with a reason, when: there is no mark; a mark is not plain arithmetic; a
  mark does not evaluate to its written value (rounding to the written decimals is allowed); or the
  exact replay of the actions does not end on the `####` answer.
"""
import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

from lumos.annotations.arith import ArithError, evaluate, parse_number
from lumos.annotations.subgoal_text import subgoal_text
from lumos.tools.printing import format_number   # the tools' printer: a gold result reads as the executor prints it

MARK = re.compile(r"<<([^<>]*)>>")
TOKEN = re.compile(r"\s*(\*\*|\d+\.?\d*|\.\d+|[-+*/()])")
NUMBER = re.compile(r"\d[\d,]*\.?\d*|\.\d+")


class Unconvertible(ValueError):
    """Raised with a short `reason` (the drop-count key) when an example cannot be converted faithfully."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class Annotation:
    """One converted example: one entry per subgoal in `subgoals`, `actions`, `results`."""
    question: str
    answer: str
    subgoals: list[str] = field(default_factory=list)
    actions: list[list[str]] = field(default_factory=list)
    results: list[str] = field(default_factory=list)


def split_solution(answer_field: str) -> tuple[list[str], str]:
    """GSM8K `answer` -> (solution sentences, the #### answer text)."""
    if "####" not in answer_field:
        raise Unconvertible("no #### answer")
    body, final = answer_field.rsplit("####", 1)
    sentences = []
    for line in body.split("\n"):
        # split after . ! ? followed by a space and a capital/digit/$, but never inside a <<mark>>
        parts = re.split(r"(?<=[.!?])\s+(?=[A-Z$])(?![^<]*>>)", line.strip())
        sentences += [p.strip() for p in parts if p.strip()]
    return sentences, final.strip()


# A calculation the solution wrote out but did not mark, e.g. "2*120 = 240 oysters" or the
# "40-16 = <<24=24>>24" of a mark that only restates its value. Numbers may carry $ and commas;
# 'x' is a times sign only between numbers. Anything with letters (algebra, units) is left alone.
_NUM = r"\$?(?:\d[\d,]*(?:\.\d+)?|\.\d+)"
_OP = r"\s*(?:[-+*/×−]|x(?=\s*[\d$(.]))\s*"
_UNIT = r"(?:\s?[a-z]{2,}\b){0,2}(?:/[a-z]{2,}\b)?%?"   # '46*7kg', '480 zombies / 2', '$5400/week', '100%'
_TERM = rf"(?>\(*\s*{_NUM}{_UNIT}\s*\)*)"      # atomic: no backtracking into a term
_VISIBLE = rf"(?<![\w.*/+\-×−)=])({_TERM}(?:{_OP}{_TERM})+)\s*=\s*"
VISIBLE_EQ = re.compile(_VISIBLE + r"\$?(\d[\d,]*(?:\.\d+)?)(?![\d,]*\.?\d|\s*[-+*/×−(]|\s*<<)")
VISIBLE_BARE_MARK = re.compile(_VISIBLE + r"\$?<<\s*(" + _NUM + r")\s*=\s*(" + _NUM + r")\s*>>")


def _visible_to_expr(text: str, percent: str = "/100") -> str | None:
    """'$2,000 x 3' -> '2000*3' when it is plain balanced arithmetic, else None.

    `percent` replaces '%': '/100' (20% of it) or '' (the x 100% of a percentage answer)."""
    e = re.sub(r"(?<=[\d\s)])x(?=\s*[\d$(.])", "*", text).replace("×", "*").replace("−", "-")
    e = re.sub(r"/[a-z]{2,}", "", e.replace("$", "").replace(",", ""))
    e = re.sub(r"\s?[a-z]{2,}", "", e).replace("%", percent)
    e = re.sub(r"(\d)\s*\(", r"\1*(", e)     # implicit product '2(180+30)'
    while e.count("(") > e.count(")") and e.lstrip().startswith("("):
        e = e.lstrip()[1:]
    while e.count(")") > e.count("(") and e.rstrip().endswith(")"):
        e = e.rstrip()[:-1]
    try:
        evaluate(e)
    except ArithError:
        return None
    return e.strip()


def _checked_expr(visible: str, value: str) -> str | None:
    """The written calculation as an expression, if it evaluates to `value` (with '%' read either way)."""
    for percent in ("/100", ""):
        e = _visible_to_expr(visible, percent)
        if e is not None and _close(evaluate(e), parse_number(value), value):
            return e
    return None


def add_missing_marks(sentence: str) -> str:
    """Mark calculations the solution wrote without <<>>, when they evaluate to their stated value.

    'so 2*120 = 240 oysters' -> 'so 2*120 = <<2*120=240>>240 oysters';
    '40-16 = <<24=24>>24'    -> '40-16 = <<40-16=24>>24'.
    """
    def bare(m):                              # '<<24=24>>' after a written '40-16 = '
        value = m.group(3).lstrip("$").replace(",", "")
        e = _checked_expr(m.group(1), value) if parse_number(m.group(2).lstrip("$")) == parse_number(value) else None
        return m.group(0) if e is None else m.group(0)[:m.group(0).index("<<")] + f"<<{e}={value}>>"

    def visible(m):                           # '2*120 = 240' with no mark at all
        value = m.group(2).replace(",", "")
        e = _checked_expr(m.group(1), value)
        if e is None:
            return m.group(0)
        start = m.group(0).rindex(m.group(2))
        return m.group(0)[:start] + f"<<{e}={value}>>" + m.group(0)[start:]

    parts = re.split(r"(<<[^<>]*>>)", VISIBLE_BARE_MARK.sub(bare, sentence))
    # only unmarked stretches are searched for visible equations
    return "".join(p if p.startswith("<<") else VISIBLE_EQ.sub(visible, p) for p in parts)


def tokenize(expr: str) -> list[str]:
    """'2-.5' -> ['2', '-', '.5']; raises Unconvertible on anything that is not plain arithmetic."""
    expr = expr.strip()
    toks, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise Unconvertible("non-arithmetic mark", expr)
        toks.append(m.group(1))
        pos = m.end()
        while pos < len(expr) and expr[pos].isspace():
            pos += 1
    return toks


@lru_cache(maxsize=65536)
def normalise_number(tok: str) -> str:
    """'.5' -> '0.5', '144.00' -> '144', '05' -> '5', '2.50' -> '2.5'."""
    return format_number(parse_number(tok))


def render(toks: list[str]) -> str:
    """Tokens -> the paper's spacing: '2 - 0.5', 'R1 * (3 + 4)', '-2 + R1'."""
    out, prev = [], None
    for t in toks:
        unary = t in "+-" and (prev is None or prev in "+-*/(" or prev == "**")
        if t in ("+", "-", "*", "/", "**") and not unary:
            out.append(f" {t} ")
        else:
            out.append(t)
        prev = t
    return "".join(out).replace("( ", "(").replace(" )", ")")


def name_results(toks: list[str], env: dict[str, Fraction], written: dict[str, Fraction],
                 question_numbers: set[Fraction]) -> list[str]:
    """Write operands that are earlier results as R_j; every other number normalised.

    A value equal to earlier results R_a < R_b is written as the latest, R_b. When the same value
    occurs several times in one calculation (e.g. '2 x $2' with R4 = 2 and a 2 in the question),
    the distinct results that hold it are given out from the right, latest first, and once they
    are used up the remaining occurrences stay literal if the question has that number (the
    question's 2 meals), else reuse the latest result ('R1 * R1' for a square of a result).
    The denominator of a unit fraction '1/4' always stays a number: it is 'a quarter', not 1 / R_j.
    """
    out = list(toks)
    used: dict[Fraction, list[str]] = {}
    for i in reversed(range(len(toks))):
        if not NUMBER.fullmatch(toks[i]):
            continue
        v = parse_number(toks[i])
        if i >= 2 and toks[i - 1] == "/" and toks[i - 2] == "1" and (i < 3 or toks[i - 3] != "/"):
            out[i] = normalise_number(toks[i])                # '1/4' is a fraction, not 1 / R_j
            continue
        holders = [r for r in reversed(list(env)) if env[r] == v or written[r] == v]
        taken = used.setdefault(v, [])
        free = [r for r in holders if r not in taken]
        if free:
            out[i] = free[0]
            taken.append(free[0])
        elif holders and v not in question_numbers:
            out[i] = holders[0]
        else:
            out[i] = normalise_number(toks[i])
    return out


def convert(question: str, answer_field: str) -> Annotation:
    """One GSM8K row -> Annotation, or raise Unconvertible(reason)."""
    sentences, final_text = split_solution(answer_field)
    try:
        final = parse_number(final_text)
    except ArithError:
        raise Unconvertible("non-numeric #### answer", final_text) from None
    if not MARK.search(answer_field):
        raise Unconvertible("no <<>> marks")      # checked on the raw solution: see the tests

    ann = Annotation(question=question, answer=final_text.replace(",", ""))
    question_numbers = {parse_number(n) for n in NUMBER.findall(question) if n.strip(",.")}
    env: dict[str, Fraction] = {}          # R_k -> exact value
    written: dict[str, Fraction] = {}      # R_k -> value as the solution wrote it
    seen_exprs: set[str] = set()
    k = 0
    for sent in sentences:
        sent = add_missing_marks(sent)
        marks = list(MARK.finditer(sent))
        acts, last_value = [], None
        for m in marks:
            if "=" not in m.group(1):
                raise Unconvertible("mark without '='", m.group(1))
            expr, value_text = m.group(1).rsplit("=", 1)
            try:
                value = parse_number(value_text)
            except ArithError:
                raise Unconvertible("non-numeric mark value", value_text) from None
            toks = tokenize(expr)
            try:
                exact = evaluate(render([normalise_number(t) if NUMBER.fullmatch(t) else t for t in toks]))
            except ArithError as e:
                raise Unconvertible("non-arithmetic mark", f"{expr} ({e})") from None
            if not _close(exact, value, value_text):
                raise Unconvertible("mark value wrong", f"{expr} = {value_text}, but it is {format_number(exact)}")
            if not any(t in "+-*/" or t == "**" for t in toks[1:]):
                continue                               # '<<6=6>>': a restated number, not a calculation
            formula = render(name_results(toks, env, written, question_numbers))
            if formula in seen_exprs:
                continue                               # the same calculation restated: no new action
            seen_exprs.add(formula)
            try:
                got = evaluate(formula, env)
            except ArithError as e:
                raise Unconvertible("non-arithmetic mark", f"{formula} ({e})") from None
            k += 1
            env[f"R{k}"], written[f"R{k}"] = got, value
            acts.append(f"R{k} = Calculator({formula})")
            last_value = got
        if acts:
            ann.actions.append(acts)
            ann.results.append(format_number(last_value))
            # the planner has seen the question's numbers and earlier results, but not this value
            known = question_numbers | {env[f"R{j}"] for j in range(1, k + 1 - len(acts))}
            hide = [] if last_value in known else [format_number(last_value)]
            text = subgoal_text(sent, question, hide)
            if text is None:
                raise Unconvertible("subgoal text gives the value away", sent)
            ann.subgoals.append(f"Subgoal {len(ann.subgoals) + 1}: {text}")
    if not ann.actions:
        raise Unconvertible("no calculation marks")
    last = env[f"R{k}"]
    if last != final:
        if final in env.values():
            raise Unconvertible("answer not the last result", f"last {format_number(last)}, answer {final_text}")
        raise Unconvertible("answer not among results", f"last {format_number(last)}, answer {final_text}")
    return ann


def _close(exact: Fraction, value: Fraction, value_text: str) -> bool:
    """exact == value, or value is exact rounded to the decimals the solution wrote."""
    if exact == value:
        return True
    t = value_text.strip()
    decimals = len(t.split(".", 1)[1]) if "." in t else 0
    return decimals > 0 and abs(exact - value) <= Fraction(1, 2 * 10 ** decimals)
