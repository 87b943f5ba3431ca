"""The complex-QA tools: KnowledgeQuery (Wikipedia or a local corpus), ParagraphRetrieve (BM25), QA.

    R1 = KnowledgeQuery(Julius Caesar)                               -> the page text, one paragraph a line
    R2 = ParagraphRetrieve(R1, Query: How many kids did Caesar have?) -> the top-k paragraphs of R1
    R3 = QA([R2], Question: How many kids did Julius Caesar have?)    -> answer_fn(question, paragraphs)

Tools are callables ``tool(args: str, env: dict) -> str`` raising ToolError, like the maths tools.
QA's answering backend is handed in (the agent wires a model): nothing here imports lumos.model.
"""
import hashlib
import json
import re
from pathlib import Path

import requests

from lumos import http
from lumos.tools import ToolError, Value
from lumos.tools.bm25 import BM25
from lumos.tools.expr import split_top_level

WIKIPEDIA_API = "https://en.wikipedia.org/w/api.php"
USER_AGENT = "lumos-agent/0.1 (research reimplementation of arXiv 2311.05657)"
_REF = re.compile(r"R\d+")
def _split_context_query(args: str, prefix: str) -> tuple[str, str]:
    """'R1, Query: who ...?' -> ('R1', 'who ...?'); the query may itself contain commas."""
    parts = split_top_level(args)
    if len(parts) < 2 or not parts[0]:
        raise ToolError(f"expected '(context, {prefix}: ...)', got {args[:80]!r}")
    query = re.sub(rf"^\s*(?:{prefix}|Query|Question)\s*:\s*", "", ", ".join(parts[1:]), flags=re.I).strip()
    if not query:
        raise ToolError("empty query")
    return parts[0], query


def _contexts(part: str, env) -> list[str]:
    """'[R2, R3]' / 'R2' / literal text -> the context texts."""
    part = part.strip()
    items = split_top_level(part[1:-1]) if part.startswith("[") and part.endswith("]") else [part]
    texts = []
    for item in items:
        if _REF.fullmatch(item):
            if env is None or item not in env:
                raise ToolError(f"undefined variable {item}")
            texts.append(str(env[item]))
        elif item:
            texts.append(item)
    return texts


_HEADING = re.compile(r"=+[^=]*=+")


def paragraphs_of(texts: list[str]) -> list[str]:
    """Texts -> their non-empty lines (a Wikipedia extract puts one paragraph on each line),
    without the extract's '== Section ==' heading lines."""
    return [p.strip() for t in texts for p in t.split("\n") if p.strip() and not _HEADING.fullmatch(p.strip())]


class ParagraphRetrieve:
    """ParagraphRetrieve(context, Query: ...) -> the `top_k` paragraphs of the context most relevant
    to the query by BM25, best first, one per line."""

    def __init__(self, top_k: int = 3):
        self.top_k = top_k

    def __call__(self, args: str, env=None) -> Value:
        context, query = _split_context_query(args, "Query")
        paras = paragraphs_of(_contexts(context, env))
        if not paras:
            raise ToolError("ParagraphRetrieve: the context has no paragraphs")
        best = BM25(paras).top(query, self.top_k)
        return Value("\n".join(paras[i] for i in best))


class QA:
    """QA([R2, R3], Question: ...) -> answer_fn(question, paragraphs), a short answer string.

    answer_fn(question: str, paragraphs: list[str]) -> str is the pluggable backend; any exception
    it raises becomes a ToolError so one bad generation cannot stop the run.
    """

    def __init__(self, answer_fn):
        self.answer_fn = answer_fn

    def __call__(self, args: str, env=None) -> Value:
        context, question = _split_context_query(args, "Question")
        paras = paragraphs_of(_contexts(context, env))
        try:
            answer = self.answer_fn(question, paras)
        except Exception as err:
            raise ToolError(f"QA backend failed: {type(err).__name__}: {str(err)[:120]}") from None
        answer = " ".join(str(answer or "").split())
        if not answer:
            raise ToolError("QA backend gave an empty answer")
        return Value(answer)


class KnowledgeQuery:
    """KnowledgeQuery(topic) -> the plain text of the best-matching page, one paragraph a line.

    Online (default): the MediaWiki API at `api_url` — list=search for the title, then prop=extracts
    (plain text) for the page — with a `timeout` per request, `retries` on timeouts, connection
    errors, 429 and 5xx (exponential backoff from `backoff` seconds), and an on-disk JSON cache in
    `cache_dir` so a rerun makes no requests. Offline: `corpus_dir` holds `*.txt` files (title = file
    name) and/or `*.jsonl` rows {"title", "text"}; an exact title wins, else BM25 over title + text.
    """

    def __init__(self, api_url: str = WIKIPEDIA_API, corpus_dir=None, cache_dir=None, timeout: float = 10.0,
                 retries: int = 3, backoff: float = 0.5, max_chars: int = 50_000):
        self.api_url, self.timeout, self.retries, self.backoff = api_url, timeout, retries, backoff
        self.max_chars = max_chars
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.corpus = self._load_corpus(Path(corpus_dir)) if corpus_dir else None
        self.n_requests = 0      # HTTP requests actually sent (the cache makes reruns free)
        self.last_title = None   # the page the last call returned

    def __call__(self, args: str, env=None) -> Value:
        query = " ".join(args.split()).strip("\"'")
        if not query:
            raise ToolError("KnowledgeQuery needs a topic")
        title, text = self._offline(query) if self.corpus is not None else self._online(query)
        self.last_title = title
        return Value(text[: self.max_chars])

    # -- offline ------------------------------------------------------------------------------
    @staticmethod
    def _load_corpus(root: Path) -> list[tuple[str, str]]:
        if not root.is_dir():
            raise ValueError(f"corpus directory not found: {root}")
        docs = [(p.stem, p.read_text(encoding="utf-8")) for p in sorted(root.glob("*.txt"))]
        for p in sorted(root.glob("*.jsonl")):
            for n, line in enumerate(p.read_text(encoding="utf-8").split("\n"), 1):
                if line.strip():
                    row = json.loads(line)
                    if "title" not in row or "text" not in row:
                        raise ValueError(f"{p}:{n}: a corpus row needs 'title' and 'text'")
                    docs.append((row["title"], row["text"]))
        return docs

    def _offline(self, query: str) -> tuple[str, str]:
        for title, text in self.corpus:
            if title.lower() == query.lower():
                return title, text
        if not self.corpus:
            raise ToolError("the local corpus is empty")
        bm25 = BM25([f"{t}\n{t}\n{x}" for t, x in self.corpus])     # the title counts double
        i = bm25.top(query, 1)[0]
        if bm25.scores(query)[i] <= 0:
            raise ToolError(f"no page found for {query!r} in the local corpus")
        return self.corpus[i]

    # -- online -------------------------------------------------------------------------------
    def _online(self, query: str) -> tuple[str, str]:
        hits = self._get({"action": "query", "list": "search", "srsearch": query, "srlimit": 1,
                          "format": "json"}).get("query", {}).get("search", [])
        if not hits:
            raise ToolError(f"no Wikipedia page found for {query!r}")
        title = hits[0]["title"]
        pages = self._get({"action": "query", "prop": "extracts", "explaintext": 1, "redirects": 1,
                           "titles": title, "format": "json"}).get("query", {}).get("pages", {})
        for page in pages.values():
            if page.get("extract"):
                return page.get("title", title), page["extract"]
        raise ToolError(f"Wikipedia page {title!r} has no text")

    def _get(self, params: dict) -> dict:
        key = hashlib.sha256(json.dumps([self.api_url, params], sort_keys=True).encode()).hexdigest()
        path = self.cache_dir / f"{key}.json" if self.cache_dir else None
        if path is not None and path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
        try:  # retries timeouts, connection errors, 429 and 5xx with exponential backoff
            resp = http.request("GET", self.api_url, session=self.session, params=params, timeout=self.timeout,
                                retries=self.retries, backoff=self.backoff, before=self._count_request)
        except http.HTTPRetryError as e:
            raise ToolError(f"Wikipedia unreachable after {e.attempts} tries ({e.cause})") from None
        if resp.status_code != 200:
            raise ToolError(f"Wikipedia request failed: HTTP {resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            raise ToolError("Wikipedia answered with invalid JSON") from None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            tmp.replace(path)      # atomic: a crash never leaves half a cache file
        return data

    def _count_request(self):
        self.n_requests += 1
