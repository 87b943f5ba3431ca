"""One shopping session as WebShop's text environment sees it: `search[...]` / `click[...]` -> text.

    b = Browser(InProcess(Shop.load("data/webshop")), "fixed_3")       # the embedded shop
    b = Browser(OverHTTP("http://127.0.0.1:3000"), "fixed_3")          # WebShop's server, or ours
    obs = b.reset()                                 # 'WebShop [SEP] Instruction: [SEP] i need ... [SEP] Search'
    obs, reward, done, info = b.step("search[green tea]")
    b.clickables                                    # ['back to search', 'next >', 'b0a1b2c3d4', ...]
    b.step("click[b0a1b2c3d4]"); b.step("click[jasmine]"); b.step("click[buy now]")   # -> reward, done

Semantics of WebShop's WebAgentTextEnv.step: the argument is lowercased; `search[q]` searches from any
page; `click[x]` needs x among the page's clickables (and not 'search'). Anything else changes nothing
and returns reward 0 — here with info["error"] saying why, so the agent's tools can record it. A
button is followed by submitting its form (POST), a result by its link, an option by its data-url,
exactly what a browser does on WebShop's pages, and both transports get the same HTML, so the embedded
environment and a server behave alike. After Buy Now the session is over: every action is refused.
"""
import re
from urllib.parse import urlsplit

from lumos.envs.webshop import pages

_ACTION = re.compile(r"(.+?)\[(.*)\]\s*$", re.S)
MAX_QUERY = 2000          # characters of a search query
MAX_REDIRECTS = 5


class ShopError(RuntimeError):
    """The shop cannot be reached or answered nonsense: one line."""


class InProcess:
    """Requests go straight to a Shop object (no sockets)."""

    def __init__(self, shop):
        self.shop = shop

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, str, str]:
        r = self.shop.handle(method, path, form)
        return r.status, r.html, r.location


class OverHTTP:
    """Requests go to a WebShop server (WebShop's own Flask app, or lumos.envs.webshop.server)."""

    def __init__(self, base_url: str, timeout: float = 30.0):
        import requests
        self.base = base_url.rstrip("/")
        self.timeout, self.http = timeout, requests.Session()

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, str, str]:
        from lumos import http
        try:
            r = http.request(method, self.base + path, session=self.http, data=form, allow_redirects=False,
                             timeout=self.timeout, retries=2, backoff=0.5)
        except http.HTTPRetryError as err:
            raise ShopError(f"WebShop server {self.base}: {err.cause} after {err.attempts} attempts") from None
        return r.status_code, r.text, r.headers.get("Location", "")


class Browser:
    def __init__(self, transport, session_id: str):
        self.t, self.sid = transport, session_id
        self.url, self.page = "", pages.Page()
        self.done, self.reward = False, None

    # -- what the agent sees ----------------------------------------------------------------------
    @property
    def observation(self) -> str:
        return self.page.observation

    @property
    def clickables(self) -> list[str]:
        return list(self.page.clickables)

    @property
    def instruction(self) -> str:
        return self.page.instruction

    # -- navigation -------------------------------------------------------------------------------
    def _go(self, method: str, path: str, form: dict | None = None) -> str | None:
        """Load a page, following redirects. Returns an error line, or None when the page loaded."""
        for _ in range(MAX_REDIRECTS):
            status, text, location = self.t.request(method, path, form)
            if status in (301, 302, 303, 307, 308) and location:
                parts = urlsplit(location)
                method, path, form = "GET", parts.path + (f"?{parts.query}" if parts.query else ""), None
                continue
            if status != 200:
                return f"the shop answered HTTP {status} for {path[:120]}"
            self.url, self.page = path, pages.parse(text)
            return None
        return "too many redirects"

    def reset(self) -> str:
        """Open the session's search page (this creates the session and fixes its goal)."""
        self.done, self.reward = False, None
        err = self._go("GET", pages.index_url(self.sid))
        if err:
            raise ShopError(err)
        return self.observation

    def step(self, action: str) -> tuple[str, float, bool, dict]:
        """One WebShop action -> (observation, reward, done, info); info["error"] when nothing happened."""
        err = self._act(action)
        if err:
            return self.observation, 0.0, self.done, {"error": err}
        return self.observation, (self.reward or 0.0) if self.done else 0.0, self.done, {}

    def _act(self, action) -> str | None:
        if self.done:
            return "the session is over (Buy Now was clicked)"
        m = _ACTION.match(action) if isinstance(action, str) else None
        if m is None:
            return f"not a WebShop action (search[...] or click[...]): {str(action)[:60]!r}"
        name, arg = m.group(1).strip().lower(), m.group(2).strip().lower()
        if name == "search":
            if not arg:
                return "empty search query"
            if len(arg) > MAX_QUERY:
                return f"search query of {len(arg)} characters (limit {MAX_QUERY})"
            if not self.page.search_url and not self.url:
                return "no page is open (reset first)"
            return self._go("POST", pages.index_url(self.sid), {"search_query": arg})
        if name != "click":
            return f"unknown action {name[:30]!r} (search or click)"
        target = self.page.clickables.get(arg)
        if target is None or arg == "search":
            shown = ", ".join(list(self.page.clickables)[:12])
            return f"{arg[:80]!r} is not clickable on this page (clickable: {shown or 'nothing'})"
        err = self._go("POST" if target.kind == "button" else "GET", target.url)
        if err is None and self.page.reward is not None:
            self.done, self.reward = True, self.page.reward
        return err
