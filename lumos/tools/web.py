"""The Lumos web actions CLICK, TYPE, SELECT: parse them, rank the page's elements, act.

The web grounder never sees HTML. It writes which element it means in words, and a ranker picks it:

    R1 = CLICK(Env, QUERY: Enter the site for flight + cruise)
    R3 = TYPE(R2, QUERY: Type Atlanta as the departure location, TEXT: Atlanta)
    R7 = SELECT(R6, QUERY: Set 6 nights as the living period, TEXT: 6 nights)

The first argument names the page the action acts on: `Env` (the page the task starts on) or `R_j`,
the page left behind by action j. A page (an offline Mind2Web step, a live browser tab) is anything
with two methods:

    page.candidates(op: str) -> list[Element]          the elements the action may act on
    page.act(op: str, element: Element, value: str) -> str   do it; a short description of what was done

The tools resolve the page as env["Env"] (the executor's per-episode session), rank its candidates
by QUERY (SELECT also by its TEXT, as Lumos did) and act on the best one. Malformed actions (no QUERY,
TYPE without TEXT, a page reference that is neither Env nor an earlier R_j) raise ToolError: the
executor records them as the action's error.
"""
import re
from dataclasses import dataclass, field

from lumos.tools import ToolError
from lumos.tools.bm25 import BM25

WEB_ACTIONS = ("CLICK", "TYPE", "SELECT")
_PAGE_REF = re.compile(r"\s*(Env|R\d+)\s*(?:,|$)")
_QUERY = re.compile(r"\bQUERY\s*:", re.I)
_TEXT = re.compile(r",\s*TEXT\s*:", re.I)


@dataclass
class Element:
    """One element a web action may act on. `text` is what the ranker reads (tag, salient attributes,
    visible text); `label` its visible text alone; `options` the option texts of a <select>; `typeable`
    whether a live page lets one type into it; `positive` the gold label of an offline Mind2Web step,
    read by nothing but OracleRanker."""
    id: str
    tag: str
    text: str
    label: str = ""
    options: list[str] = field(default_factory=list)
    typeable: bool = False
    positive: bool = False


def _unquote(s: str) -> str:
    s = s.strip()
    return s[1:-1].strip() if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'" else s


def parse_web_args(op: str, args: str) -> tuple[str, str, str]:
    """'R2, QUERY: Type Atlanta ..., TEXT: Atlanta' -> ('R2', 'Type Atlanta ...', 'Atlanta').

    TEXT is the part after the LAST ', TEXT:' (a query may itself say "text"). Raises ToolError on a
    missing page reference, a missing or empty QUERY, and on TEXT missing from TYPE/SELECT or given to CLICK."""
    m = _PAGE_REF.match(args)
    if m is None:
        raise ToolError(f"{op} needs the page it acts on first (Env or R_j), e.g. {op}(Env, QUERY: ...): got {args[:60]!r}")
    ref, rest = m.group(1), args[m.end():]
    q = _QUERY.search(rest)
    if q is None or rest[:q.start()].strip():
        raise ToolError(f"{op} needs 'QUERY: <which element>' after {ref}")
    rest = rest[q.end():]
    texts = list(_TEXT.finditer(rest))
    query, text = (rest[:texts[-1].start()], rest[texts[-1].end():]) if texts else (rest, None)
    query = _unquote(query)
    if not query:
        raise ToolError(f"{op} has an empty QUERY")
    if op == "CLICK" and text is not None:
        raise ToolError("CLICK takes no TEXT (use TYPE or SELECT)")
    if op in ("TYPE", "SELECT"):
        if text is None or not _unquote(text):
            raise ToolError(f"{op} needs a non-empty 'TEXT: <value>' after its QUERY")
        text = _unquote(text)
    return ref, query, text or ""


# ---------------------------------------------------------------------------------------------
# rankers: (query, elements) -> element indices, best first

class BM25Ranker:
    """BM25 over the elements' text (lumos/tools/bm25.py). Ties, which lowercased bag-of-words scoring
    makes common ("Okay" vs "okay"), go to an element whose own text appears verbatim (case and all)
    in the query, the longest such first, then to document order."""

    name = "bm25"

    def __call__(self, query: str, elements: list[Element]) -> list[int]:
        scores = BM25([e.text for e in elements]).scores(query)
        exact = [len(e.label) if _verbatim(e.label, query) else 0 for e in elements]
        return sorted(range(len(elements)), key=lambda i: (-round(scores[i], 9), -exact[i], i))


def _verbatim(label: str, query: str) -> bool:
    """The element's visible text occurs in the query as whole words, case and all."""
    label = label.strip()
    return bool(label) and re.search(r"(?<!\w)" + re.escape(label) + r"(?!\w)", query) is not None


class OracleRanker:
    """Picks a gold (positive) element first: gold replay's ranker, which checks everything but ranking
    (parsing, R_j, operations, values, step bookkeeping, the metrics). Offline Mind2Web only."""

    name = "oracle"

    def __call__(self, query: str, elements: list[Element]) -> list[int]:
        return sorted(range(len(elements)), key=lambda i: (not elements[i].positive, i))


RANKERS = {"bm25": BM25Ranker, "oracle": OracleRanker}


# ---------------------------------------------------------------------------------------------
def web_tools(ranker) -> dict:
    """{'CLICK': tool, 'TYPE': tool, 'SELECT': tool} acting on env['Env'] with `ranker`."""
    def make(op):
        def tool(args: str, env: dict) -> str:
            ref, query, text = parse_web_args(op, args)
            page = env.get("Env")
            if page is None:
                raise ToolError(f"{op}: no page is open (env has no 'Env')")
            if ref != "Env" and ref not in env:
                raise ToolError(f"undefined page reference {ref}")
            elements = page.candidates(op)
            if not elements:
                raise ToolError(f"{op}: the page has no element to act on")
            # Lumos's SELECT query also says which option: "The option contents should be close to '{text}'."
            order = ranker(query + (f" {text}" if op == "SELECT" else ""), elements)
            return page.act(op, elements[order[0]], text)
        tool.__name__ = op
        return tool
    return {op: make(op) for op in WEB_ACTIONS}


def pick_option(options: list[str], value: str) -> int:
    """Index of the option `value` names: exact text first, then case/space-insensitive; ToolError if none
    (SELECT of a missing option)."""
    if value in options:
        return options.index(value)
    norm = [" ".join(o.lower().split()) for o in options]
    want = " ".join(value.lower().split())
    if want in norm:
        return norm.index(want)
    shown = ", ".join(repr(o) for o in options[:8]) + (", ..." if len(options) > 8 else "")
    raise ToolError(f"SELECT: no option {value!r} (options: {shown or 'none'})")
