"""The Lumos execution module: parse the grounder's actions and run them on the tools.

A grounding is one or several actions joined by "; " (also newlines), e.g.

    R1 = Calculator(16 - 3 - 4); R2 = Calculator(R1 * 2)
    R5, R6 = SolveEquation(R2=xy, R3=x/y)
    R2 = ParagraphRetrieve(R1, Query: How many kids did Julius Caesar have?)
    R3 = QA([R2], Question: How many kids did Julius Caesar have?)

The paper's annotation form ``Action 1-1: R1 = Calculator(2 - 0.5) = 1.5`` is accepted too: the label
is dropped and the trailing ``= 1.5`` kept as ``Action.stated``. The text is model output, so every
failure becomes a recorded one-line error: ``Executor.run`` never raises.

Budgets: a model can ask for work without end (``Calculator(((x+1)^32)^32)`` twenty times in one
grounding). Each action runs under a time limit (`action_s`), an example's actions together get
`example_s` seconds of tool time (the agent passes what is left), and a result longer than
`max_result_chars` is not bound. Each is a recorded failure, like any other tool error; every record
carries the seconds it took.
"""
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lumos.tools import ToolError, Value
from lumos.tools.expr import TIME_LIMIT_S, time_limit
from lumos.tools.maths import MATHS_TOOLS

MAX_GROUNDING_CHARS = 100_000
ACTION_S, EXAMPLE_S = 30.0, 120.0  # default budgets of tool time; maths_executor's are tighter
MAX_RESULT_CHARS = 50_000          # a whole Wikipedia page (KnowledgeQuery's own cap) still fits
BUDGET_SPENT = "not run: the example's tool time budget"
_LABEL = re.compile(r"\s*Action\s*\d+(?:\s*-\s*\d+)?\s*:\s*", re.I)
_HEAD = re.compile(r"\s*(?:([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*=\s*)?([A-Za-z_]\w*)\s*\(")
_REF = re.compile(r"\bR\d+\b")


@dataclass
class Action:
    """One parsed action: `outputs = tool(args)`. `error` is set (and the rest may be empty) when the
    text could not be parsed; `stated` is the '= value' an annotation wrote after the call."""
    text: str
    outputs: list[str] = field(default_factory=list)
    tool: str = ""
    args: str = ""
    stated: str | None = None
    error: str | None = None


@dataclass
class ActionRecord:
    """What happened to one action: `result` (the tool's output, ", "-joined when several) or `error`."""
    text: str
    tool: str
    outputs: list[str]
    args: str
    resolved_args: str
    result: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _is_open_quote(text: str, i: int) -> bool:
    """A quote opens a quoted span only when it has a partner later; an apostrophe inside a word
    (Caesar's) never opens one."""
    ch = text[i]
    if ch == "'" and i > 0 and (text[i - 1].isalnum() or text[i - 1] == "'"):
        return False
    return text.find(ch, i + 1) != -1


def _scan(text: str, start: int = 0, stop_at_close: bool = False):
    """Walk `text` tracking brackets and quotes. Yields (i, ch, depth) for every character outside
    quotes; used both to split actions and to find the ')' that closes a call."""
    depth, i, n = 0, start, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'" and _is_open_quote(text, i):
            j = text.find(ch, i + 1)
            i = j + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        yield i, ch, depth
        i += 1


def split_actions(text: str) -> list[str]:
    """Split a grounding at top-level ';' and newlines (never inside brackets or quotes)."""
    pieces, start = [], 0
    for i, ch, depth in _scan(text):
        if ch in ";\n" and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


def parse_action(piece: str) -> Action:
    """One action's text -> Action (with `.error` set instead of raising)."""
    text = _LABEL.sub("", piece, count=1) if _LABEL.match(piece) else piece.strip()
    m = _HEAD.match(text)
    if m is None:
        return Action(text=text, error=f"not an action of the form 'R1 = Tool(arguments)': {_short(text)!r}")
    outputs = [o.strip() for o in m.group(1).split(",")] if m.group(1) else []
    open_at = m.end() - 1
    close_at = None
    for i, ch, depth in _scan(text, open_at):
        if depth == 0:
            close_at = i
            break
    if close_at is None:
        return Action(text=text, outputs=outputs, tool=m.group(2), error="unbalanced brackets")
    args = text[open_at + 1:close_at].strip()
    rest = text[close_at + 1:].strip()
    stated = None
    if rest.startswith("="):
        stated = rest[1:].strip().rstrip(".").strip()
    elif rest not in ("", "."):
        return Action(text=text, outputs=outputs, tool=m.group(2), args=args,
                      error=f"unexpected text after the action: {_short(rest)!r}")
    return Action(text=text[:close_at + 1], outputs=outputs, tool=m.group(2), args=args, stated=stated)


def parse_actions(text: str) -> list[Action]:
    """A grounding -> its actions, in order. Never raises: a bad piece is an Action with `.error`."""
    return [parse_action(p) for p in split_actions(text)]


def _short(text: str, n: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 3] + "..."


def _one_line(err) -> str:
    msg = (str(err).splitlines() or [""])[0].strip() or type(err).__name__
    return msg[:300]


class Executor:
    """Runs groundings on a fixed set of tools, binding results into an environment.

    tools: name -> callable(args: str, env: dict) -> str | tuple[str, ...]; raising ToolError on bad input.
    action_s, example_s: seconds of tool time per action and per example; max_result_chars: the
    longest result that is kept.
    """

    def __init__(self, tools: dict, action_s: float = ACTION_S, example_s: float = EXAMPLE_S,
                 max_result_chars: int = MAX_RESULT_CHARS):
        self.tools = dict(tools)
        self.action_s, self.example_s, self.max_result_chars = action_s, example_s, max_result_chars

    # -- the per-episode environment ---------------------------------------------------------------
    # Stateless families (maths, complex QA) need nothing but the R_j bindings. Interactive families
    # (SQL, WebShop, Mind2Web, a live browser) subclass Executor and override these two: `start` opens
    # the episode's session (a database connection, a shop session, a browser page) and returns the
    # env the tools will see, with the session under a capitalised name (e.g. env["Env"]; actions may
    # name it, as in `CLICK(Env, QUERY: ...)`, and the R_j resolver never touches it); `finish` closes
    # it and returns what the task's metric needs beyond the prediction (e.g. {"reward": 0.75}).

    def start(self, example) -> dict:
        """A fresh env (name -> value) for one episode of `example` (.id, .question, .answer, .meta)."""
        return {}

    def finish(self, env: dict) -> dict:
        """Close the episode's session; return its outcome for the metric ({} when there is none)."""
        return {}

    def done(self, env: dict) -> bool:
        """Has the environment ended the episode by itself (a WebShop purchase)? Then the agent stops
        planning, as Lumos's WebShop eval stops at the reward."""
        return False

    def parse(self, grounding: str) -> list[Action]:
        """A grounding -> its actions (`R1 = Tool(args)`; the SQL family parses `R1 = <SQL>` instead)."""
        return parse_actions(grounding)

    def run(self, grounding: str, env: dict, spent_s: float = 0.0) -> list[ActionRecord]:
        """Execute every action of `grounding` in order; results are bound into `env` (name -> Value,
        a str). `spent_s`: tool seconds this example already used (of `example_s`). Returns one
        record per action. Never raises."""
        if not isinstance(grounding, str) or len(grounding) > MAX_GROUNDING_CHARS:
            size = len(grounding) if isinstance(grounding, str) else type(grounding).__name__
            return [ActionRecord(text=_short(str(grounding)), tool="", outputs=[], args="", resolved_args="",
                                 error=f"grounding too long or not text ({size}; limit {MAX_GROUNDING_CHARS} characters)")]
        try:
            actions = self.parse(grounding)
        except Exception as err:      # parse_actions does not raise; belt and braces for "never"
            actions = [Action(text=_short(grounding), error=f"cannot parse: {_one_line(err)}")]
        if not actions:
            return [ActionRecord(text="", tool="", outputs=[], args="", resolved_args="", error="no action found")]
        records = []
        for a in actions:
            records.append(self.run_action(a, env, self.example_s - spent_s))
            spent_s += records[-1].seconds
        return records

    def run_action(self, action: Action, env: dict, time_left: float | None = None) -> ActionRecord:
        rec = ActionRecord(text=action.text, tool=action.tool, outputs=list(action.outputs), args=action.args,
                           resolved_args=action.args)
        limit = self.action_s if time_left is None else min(self.action_s, time_left)
        t0 = time.perf_counter()
        try:
            if action.error:
                rec.error = action.error
            elif limit <= 0:
                rec.error = f"{BUDGET_SPENT} ({self.example_s:g} s) is spent"
            else:
                with time_limit(limit):
                    rec.error = self._execute(action, env, rec)
        except ToolError as err:               # a tool's refusal, or time_limit's "timed out after N s"
            rec.error = _one_line(err)
        except Exception as err:
            rec.error = f"internal error in {action.tool}: {type(err).__name__}: {_one_line(err)}"
        rec.seconds = round(time.perf_counter() - t0, 4)
        if not rec.error and rec.result is not None and len(rec.result) > self.max_result_chars:
            rec.error = f"result too long ({len(rec.result)} characters, limit {self.max_result_chars})"
        if rec.error:
            rec.result = None
            for name in action.outputs:   # a failed R_j must not leave a stale value behind
                env.pop(name, None)
        return rec

    def _execute(self, action: Action, env: dict, rec: ActionRecord) -> str | None:
        """Run one parsed action, filling `rec`; returns an error message or None."""
        tool = self.tools.get(action.tool)
        if tool is None:
            return f"unknown tool {action.tool!r} (available: {', '.join(self.tools)})"
        refs = list(dict.fromkeys(_REF.findall(action.args)))
        missing = [r for r in refs if r not in env]
        if missing:
            return f"undefined variable {', '.join(missing)}"
        rec.resolved_args = _REF.sub(lambda m: _inline(env[m.group()]), action.args)
        try:
            out = tool(action.args, env)
        except ToolError as err:
            return _one_line(err)
        values = list(out) if isinstance(out, tuple) else [out]
        values = [v if isinstance(v, Value) else Value(str(v)) for v in values]
        rec.result = ", ".join(values)
        if len(action.outputs) == len(values):
            for name, v in zip(action.outputs, values):
                env[name] = v
        elif len(action.outputs) == 1:
            env[action.outputs[0]] = Value(rec.result)
        elif action.outputs:
            return f"{action.tool} returned {len(values)} value(s) for {len(action.outputs)} output(s)"
        return None


def _inline(value: str) -> str:
    """How an earlier result reads inside resolved_args: bracketed when it is a compound formula."""
    text = _short(value, 200)
    return f"({text})" if re.search(r"[\s+\-*/^=<>,]", text.lstrip("-")) or text.startswith("-") else text


def final_answer(records: list[ActionRecord]) -> str | None:
    """THE final-answer rule, for every task family: an example's prediction is the last successful
    result among all its executed actions, in order (maths: the last computed value; complex QA: the last
    QA/Calculator answer; the paper took the highest R_k, the same thing). None when no action succeeded."""
    for rec in reversed(records):
        if rec.error is None and rec.result is not None:
            return rec.result
    return None


class PageExecutor(Executor):
    """The web families: CLICK / TYPE / SELECT (lumos/tools/web.py) on a page opened per episode.

    open_page(example) -> page (a recorded Mind2Web task, a browser tab); close_page(page) -> the outcome
    the metric needs (the recorded predictions, a MiniWoB reward). ranker(query, elements) -> order.
    shutdown(): releases what the pages share (the browsers) when the run ends; see close()."""

    def __init__(self, open_page, close_page, ranker, shutdown=None):
        from lumos.tools.web import web_tools
        super().__init__(web_tools(ranker))
        self.open_page, self.close_page, self.shutdown = open_page, close_page, shutdown

    def start(self, example) -> dict:
        return {"Env": self.open_page(example)}

    def finish(self, env: dict) -> dict:
        return self.close_page(env["Env"])

    def close(self):
        if self.shutdown is not None:
            self.shutdown()


def mind2web_executor(ranker=None) -> PageExecutor:
    """Offline Mind2Web: each episode replays its example's recorded steps (example.meta["steps"]);
    the outcome is {"steps": the prediction of every step acted on}. Default ranker: BM25."""
    from lumos.envs.mind2web import RecordedPage
    from lumos.tools.web import BM25Ranker
    return PageExecutor(lambda ex: RecordedPage(ex.meta["steps"]), lambda page: {"steps": page.predictions},
                        ranker or BM25Ranker())


def miniwob_executor(shots_dir=None, max_ms: int | None = None, ranker=None) -> PageExecutor:
    """Live MiniWoB++ pages in headless Chromium (lumos/envs/miniwob.py): each episode opens
    example.meta["task"] with example.meta["seed"] in a pooled browser and writes the page's instruction
    into example.question; the outcome is MiniWoB's reward ({"done", "reward", ...}). shots_dir: a
    screenshot per step into shots_dir/<example id>/. Call .close() to quit the browsers."""
    from lumos.envs.browser import BrowserPool
    from lumos.envs.miniwob import MiniWoBPage
    from lumos.tools.web import BM25Ranker
    pool = BrowserPool()

    def open_page(ex):
        browser = pool.take()
        shots = Path(shots_dir) / re.sub(r"[^\w.-]", "_", ex.id) if shots_dir else None
        try:
            page = MiniWoBPage(browser, ex.meta["task"], ex.meta["seed"], shots=shots, max_ms=max_ms)
        except Exception as err:   # the environment, not the model, failed: one line for the user
            pool.give(browser)
            raise RuntimeError(f"cannot open MiniWoB++ {ex.meta['task']} (seed {ex.meta['seed']}): "
                               f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}") from None
        ex.question = page.utterance
        return page

    def close_page(page):
        try:
            return page.result()
        finally:
            pool.give(page.browser)

    return PageExecutor(open_page, close_page, ranker or BM25Ranker(), shutdown=pool.close)


class ShopExecutor(Executor):
    """WebShop: Search / FeatureRetrieve / Pick / Click (lumos/tools/shop.py) on one shop session per
    episode. `transport`: lumos.envs.webshop.browser.InProcess(shop) or OverHTTP(url). The session id
    ends in "fixed_<goal index>" (WebShop's convention) after a unique prefix, so episodes of the same
    goal never share a session. The page's instruction becomes the example's question."""

    def __init__(self, transport):
        from lumos.tools.shop import SHOP_TOOLS
        super().__init__(SHOP_TOOLS)
        self.transport, self.n = transport, 0
        self.prefix = os.urandom(4).hex()

    def start(self, example) -> dict:
        from lumos.envs.webshop.browser import Browser
        self.n += 1
        browser = Browser(self.transport, f"lumos{self.prefix}{self.n}-fixed_{example.meta['goal_index']}")
        browser.reset()
        example.question = browser.instruction or example.question
        return {"Env": browser}

    def done(self, env: dict) -> bool:
        return bool(env["Env"].done)

    def finish(self, env: dict) -> dict:
        b = env["Env"]
        return {"done": b.done, "reward": b.reward if b.done else 0.0, "url": b.url}


def shop_executor(data_dir=None, url: str | None = None) -> ShopExecutor:
    """The embedded shop on `data_dir` (default data/webshop, generated on first use), or the WebShop
    server at `url` (WebShop's own, or `python -m lumos.envs.webshop.server`)."""
    from lumos.envs.webshop.browser import InProcess, OverHTTP
    if url:
        return ShopExecutor(OverHTTP(url))
    from lumos.envs.webshop.generate import ensure_default_data
    from lumos.envs.webshop.shop import Shop
    return ShopExecutor(InProcess(Shop.load(data_dir or ensure_default_data())))


class SQLExecutor(Executor):
    """InterCode-SQL: `R_j = <SQL>` actions (lumos/tools/sql.py) on the episode's database, opened read-only
    from example.meta["db"] on the backend `url` ('sqlite' or mysql://user:pass@host:port). At finish the
    gold SQL (example.answer) runs on the same database and InterCode's reward compares the rows of the
    episode's last SELECT with it: the outcome is {"reward", "corrupt_gold", "query", "n_rows", ...}."""

    def __init__(self, url: str = "sqlite", time_limit: float | None = None):
        from lumos.envs.sql import TIME_LIMIT
        super().__init__({})
        self.url, self.time_limit = url, time_limit or TIME_LIMIT

    def parse(self, grounding: str) -> list[Action]:
        from lumos.tools.sql import parse_sql_action
        actions = []
        for piece in split_actions(grounding):
            try:
                outputs, kind, sql = parse_sql_action(piece)
                actions.append(Action(text=piece, outputs=outputs, tool=kind, args=sql))
            except ToolError as err:
                actions.append(Action(text=piece, error=str(err)))
        return actions

    def _execute(self, action: Action, env: dict, rec: ActionRecord) -> str | None:
        try:
            value = env["Env"].act(action.tool, action.args)
        except ToolError as err:
            return _one_line(err)
        rec.result = value
        for name in action.outputs:
            env[name] = Value(value)
        return None

    def start(self, example) -> dict:
        from lumos.envs.sql import SQLError, open_database
        from lumos.tools.sql import SQLSession
        try:
            db = open_database(example.meta["db"], self.url, self.time_limit)
        except SQLError as err:     # no server, no such database: the run cannot go on
            raise RuntimeError(f"cannot open database {example.meta['db']!r} on {self.url}: {err}") from None
        return {"Env": SQLSession(db), "Gold": (example.answer, example.meta.get("hardness"))}

    def finish(self, env: dict) -> dict:
        from lumos.agent.tasks.intercode_sql import intercode_reward
        from lumos.envs.sql import SQLError
        session, (gold_sql, hardness) = env["Env"], env["Gold"]
        try:
            gold_rows, corrupt = session.db.execute(gold_sql).rows, False
        except SQLError:           # InterCode compares with an empty gold result then
            gold_rows, corrupt = [], True
        reward = intercode_reward(session.last_rows, gold_rows)
        session.close()
        return {"reward": reward, "corrupt_gold": corrupt, "hardness": hardness, "query": session.last_query,
                "n_rows": None if session.last_rows is None else len(session.last_rows), "gold_n_rows": len(gold_rows)}


def maths_executor() -> Executor:
    """Calculator, SetEquation, SolveEquation, Define, Count, SolveInequality, Code — all local. Each
    tool stops itself after expr.TIME_LIMIT_S (2 s); a whole example gets 10 s and results of 2,000
    characters (a gold maths result has at most a few dozen)."""
    return Executor(MATHS_TOOLS, action_s=TIME_LIMIT_S, example_s=10.0, max_result_chars=2_000)


def qa_executor(answer_fn, knowledge=None, top_k: int = 3) -> Executor:
    """KnowledgeQuery, ParagraphRetrieve, QA, Calculator, Code (the complex-QA action list).

    answer_fn(question: str, paragraphs: list[str]) -> str answers QA actions (the agent wires a model);
    knowledge: a lumos.tools.qa.KnowledgeQuery (HTTP Wikipedia or a local corpus); default: Wikipedia
    with its cache in $LUMOS_CACHE/wikipedia (default ~/.cache/lumos/wikipedia).
    """
    from lumos.tools.qa import QA, KnowledgeQuery, ParagraphRetrieve
    if knowledge is None:   # Wikipedia, cached on disk so that a rerun sends no request
        from lumos.envs import cache_root
        knowledge = KnowledgeQuery(cache_dir=cache_root() / "wikipedia")
    return Executor({"KnowledgeQuery": knowledge,
                     "ParagraphRetrieve": ParagraphRetrieve(top_k=top_k), "QA": QA(answer_fn),
                     "Calculator": MATHS_TOOLS["Calculator"], "Code": MATHS_TOOLS["Code"]})
