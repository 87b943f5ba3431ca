"""The shop: catalogue + search engine + sessions, answering WebShop's routes with WebShop's pages.

    shop = Shop.load("data/webshop")
    r = shop.handle("GET", "/fixed_3")                                   # session for goal 3: the search page
    r = shop.handle("POST", "/fixed_3", {"search_query": "green tea"})   # -> Response(303, location=results URL)
    shop.handle("GET", r.location).html                                  # the results page

`handle` is the whole web application, with no HTTP in it: lumos/envs/webshop/server.py serves it on
127.0.0.1 and browser.py calls it in-process, so the embedded environment and the HTTP one are the same
code. As in WebShop, a session id containing "fixed" ends in the goal index (`fixed_3`,
`run1-ep7-fixed_3`); any other new id draws a goal at random by goal weight (all 1). Only the goal and
the purchase live in the session; every page's state is in its URL, as in WebShop.

Search is BM25 (lumos/tools/bm25.py, Lucene's k1=0.9, b=0.4 as WebShop's pyserini index) over each
product's lowercased title + description + first bullet point + option text, the document WebShop
indexes; the top 50 hits with a positive score, 10 per page. WebShop's Lucene analyser also stems
English words; ours does not.
"""
import ast
import random
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from lumos.envs.webshop import pages
from lumos.envs.webshop.catalogue import Catalogue, load_catalogue
from lumos.envs.webshop.reward import get_reward
from lumos.tools.bm25 import BM25

MAX_SEGMENT = 4000        # characters of one URL segment we are willing to parse
MAX_SESSIONS = 100_000    # oldest sessions are forgotten past this


@dataclass
class Response:
    status: int
    html: str = ""
    location: str = ""      # for 303 redirects


def document(p: dict) -> str:
    """The text WebShop indexes for a product (search_engine/convert_product_file_format.py)."""
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in p["options"].items())
    return " ".join([p["Title"], p["Description"], p["BulletPoints"][0] if p["BulletPoints"] else "", option_text]).lower()


def parse_literal(text: str, kind: type):
    """A URL's keywords (list of str) or options (dict str -> str), written by str(). ast.literal_eval
    only reads literals (it never runs code); the size cap and the type check below keep it to these two
    shapes. Returns None for anything else."""
    if len(text) > MAX_SEGMENT:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if kind is list and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    if kind is dict and isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return value
    return None


def parse_keywords(text: str) -> list[str] | None:
    """WebShop's keywords segment: a str() list, or plain words joined by '+' or spaces."""
    if text.startswith("["):
        return parse_literal(text, list)
    return [w for w in re.split(r"[+ ]", text) if w] if len(text) <= MAX_SEGMENT else None


class Shop:
    def __init__(self, catalogue: Catalogue, seed: int = 233):
        self.cat = catalogue
        self.index = BM25([document(p) for p in catalogue.products], k1=0.9, b=0.4)
        self.sessions: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.rng = random.Random(seed)

    @classmethod
    def load(cls, data_dir: str | Path, num_products: int | None = None) -> "Shop":
        return cls(load_catalogue(data_dir, num_products))

    # -- sessions -------------------------------------------------------------------------------
    def session(self, sid: str, create: bool = False) -> dict | None:
        """The session `sid` ({goal, done, reward, ...}); created (goal chosen) when `create`.
        None for an unknown id, or a 'fixed' id whose goal index does not exist."""
        with self.lock:
            s = self.sessions.get(sid)
            if s is not None or not create:
                return s
            goals = self.cat.goals
            if not goals:
                return None
            if "fixed" in sid:
                tail = sid.rsplit("_", 1)[-1]
                if not tail.isdigit() or int(tail) >= len(goals):
                    return None
                goal = goals[int(tail)]
            else:
                goal = self.rng.choice(goals)
            if len(self.sessions) >= MAX_SESSIONS:
                self.sessions.pop(next(iter(self.sessions)))
            s = self.sessions[sid] = {"goal": goal, "done": False, "reward": None, "asin": None, "options": None}
            return s

    # -- search ---------------------------------------------------------------------------------
    def search(self, keywords: list[str]) -> list[dict]:
        """The top 50 products for `keywords` (BM25 score > 0), best first."""
        scores = self.index.scores(" ".join(keywords))
        hits = sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: (-scores[i], i))
        return [self.cat.products[i] for i in hits[:pages.SEARCH_RETURN_N]]

    # -- the web application --------------------------------------------------------------------
    def handle(self, method: str, path: str, form: dict | None = None) -> Response:
        """Answer one request: WebShop's routes (pages.py). Never raises: bad URLs are 400/404."""
        try:
            return self._route(method.upper(), path, form or {})
        except Exception as err:   # a page must never take the server down
            return Response(500, pages._page(f"<p>internal error: {pages.e(type(err).__name__)}</p>"))

    def _route(self, method: str, path: str, form: dict) -> Response:
        parts = [unquote(p) for p in path.split("?", 1)[0].strip("/").split("/")]
        if parts == [""]:
            return Response(303, location=pages.index_url("abc"))
        route, args = (parts[0], parts[1:]) if len(parts) > 1 else ("index", parts)
        shapes = {"index": 1, "search_results": 3, "item_page": 5, "item_sub_page": 6, "done": 3}
        if route not in shapes or len(args) != shapes[route]:
            return _error(404, f"no such page: {path[:200]}")
        sid = args[0]
        s = self.session(sid, create=route == "index")
        if s is None:
            return _error(404, f"unknown session {sid[:100]!r} (open /{sid[:100]} first; 'fixed_N' needs N < {len(self.cat.goals)})")
        instruction = s["goal"]["instruction_text"]
        if route == "index":
            query = form.get("search_query")
            if method == "POST" and query is not None:
                keywords = str(query).lower().split(" ")
                return Response(303, location=pages.results_url(sid, keywords, 1))
            return Response(200, pages.render_search(sid, instruction))
        if route == "search_results":
            keywords, page = parse_keywords(args[1]), _page_number(args[2])
            if keywords is None or page is None:
                return _error(400, "bad keywords or page number")
            top = self.search(keywords)
            shown = top[(page - 1) * pages.PRODUCT_WINDOW: page * pages.PRODUCT_WINDOW]
            return Response(200, pages.render_results(sid, instruction, keywords, page, shown, len(top)))
        asin = args[1]
        product = self.cat.by_asin.get(asin)
        options = parse_literal(args[-1], dict)
        if product is None or options is None:
            return _error(404 if product is None else 400, f"unknown product {asin[:20]!r}" if product is None else "bad options")
        if route == "done":
            price = self.cat.prices[asin]
            reward, info = get_reward(product, s["goal"], price, options)
            with self.lock:
                s.update(done=True, reward=reward, asin=asin, options=dict(options))
            return Response(200, pages.render_done(sid, asin, options, reward, info))
        keywords, page = parse_keywords(args[2]), _page_number(args[3])
        if keywords is None or page is None:
            return _error(400, "bad keywords or page number")
        if route == "item_page":
            return Response(200, pages.render_item(sid, instruction, product, keywords, page, options))
        if args[4] not in pages.SUB_PAGES:
            return _error(404, f"no sub page {args[4][:30]!r}")
        return Response(200, pages.render_sub_page(sid, instruction, product, keywords, page, args[4], options))


def _page_number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and 0 < len(text) <= 6 and int(text) >= 1 else None


def _error(status: int, msg: str) -> Response:
    return Response(status, pages._page(f"<p>{pages.e(msg)}</p>"))
