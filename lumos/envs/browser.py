"""A headless Chromium driven by Selenium: the live page the web tools act on.

    b = Browser()                                  # /usr/bin/chromium through /usr/bin/chromedriver, headless
    b.get("file:///.../click-button.html")
    els = b.elements(root="#wrap", skip=("#query",))   # -> [Element(id="3", tag="button", text="button no", ...)]
    b.click(els[0]); b.type(el, "Kasey"); b.select(el, "Angola"); b.screenshot("step1.png"); b.close()

Selenium is pointed at the system chromedriver (Debian `chromium-driver`), so it never asks the network
for a driver; Chromium starts with a fresh profile and its background networking, component updates,
sync and QUIC off. Pages are acted on, not trusted: everything the agent can do is click, type into
and select in elements this module itself listed; a failed action raises ToolError with one line.
"""
import os
import shutil
import tempfile
from pathlib import Path

from lumos.tools import ToolError
from lumos.tools.web import Element, pick_option

CHROMIUM = os.environ.get("LUMOS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LUMOS_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")
TYPEABLE_INPUTS = {"", "text", "password", "search", "email", "tel", "url", "number", "date"}

# Lists the visible elements under `root` (minus `skip`), numbering each once with data-lumos-id.
_LIST_JS = """
const root = document.querySelector(arguments[0]) || document.body;
const skip = arguments[1].flatMap(s => Array.from(document.querySelectorAll(s)));
window.__lumosNext = window.__lumosNext || 0;
const out = [];
for (const el of root.querySelectorAll('*')) {
  if (['SCRIPT', 'STYLE', 'BR', 'OPTION', 'HEAD'].includes(el.tagName)) continue;
  if (skip.some(s => s === el || s.contains(el))) continue;
  const r = el.getBoundingClientRect(), st = getComputedStyle(el);
  if (r.width === 0 || r.height === 0 || st.visibility === 'hidden' || st.display === 'none') continue;
  if (!el.dataset.lumosId) el.dataset.lumosId = String(++window.__lumosNext);
  const attrs = [];
  for (const a of ['role', 'type', 'alt', 'aria-label', 'title', 'name', 'placeholder', 'id']) {
    const v = el.getAttribute(a); if (v) attrs.push(v);
  }
  out.push({id: el.dataset.lumosId, tag: el.tagName.toLowerCase(), attrs: attrs,
            type: (el.getAttribute('type') || '').toLowerCase(), editable: el.isContentEditable,
            text: (el.innerText || '').replace(/\\s+/g, ' ').trim().slice(0, 500),
            options: el.tagName === 'SELECT' ? Array.from(el.options).map(o => o.text.trim()) : []});
}
return out;
"""


def missing() -> str | None:
    """Why a browser cannot start here (one line), or None when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    for path, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).is_file():
            return f"{path} not found (apt-get install {pkg}, or set LUMOS_CHROMIUM / LUMOS_CHROMEDRIVER)"
    return None


class Browser:
    """One headless Chromium window of `width` x `height` pixels with a profile of its own."""

    def __init__(self, width: int = 500, height: int = 400, timeout: float = 10.0):
        why = missing()
        if why:
            raise RuntimeError(why)
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.profile = tempfile.mkdtemp(prefix="lumos-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for f in FLAGS + (f"--user-data-dir={self.profile}", f"--window-size={width},{height}"):
            opts.add_argument(f)
        try:
            self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
        except Exception as err:   # e.g. a chromedriver that does not match the browser
            shutil.rmtree(self.profile, ignore_errors=True)
            first = (getattr(err, "msg", None) or str(err) or type(err).__name__).splitlines()[0]
            raise RuntimeError(f"cannot start {CHROMIUM} through {CHROMEDRIVER}: {first[:200]}") from None
        self.driver.set_page_load_timeout(timeout)
        self.driver.set_script_timeout(timeout)

    def get(self, url: str):
        self.driver.get(url)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def elements(self, root: str = "body", skip: tuple = ()) -> list[Element]:
        """The visible elements under the CSS selector `root`, except those inside `skip` selectors, in
        document order. text = tag, attributes (role, type, alt, aria-label, title, name, placeholder,
        id) and visible text, as the ranker reads it."""
        out = []
        for d in self.js(_LIST_JS, root, list(skip)) or []:
            words = [d["tag"]] + d["attrs"] + ([d["text"]] if d["text"] else [])
            typeable = d["editable"] or d["tag"] == "textarea" or (d["tag"] == "input" and d["type"] in TYPEABLE_INPUTS)
            out.append(Element(id=d["id"], tag=d["tag"], text=" ".join(" ".join(words).split()[:100]),
                               label=d["text"][:200], options=d["options"], typeable=typeable))
        return out

    def _find(self, el: Element):
        from selenium.webdriver.common.by import By
        found = self.driver.find_elements(By.CSS_SELECTOR, f'[data-lumos-id="{int(el.id)}"]')
        if not found:
            raise ToolError(f"the {el.tag} element is no longer on the page")
        return found[0]

    def click(self, el: Element):
        self._do("click", el, lambda e: e.click())

    def type(self, el: Element, text: str):
        def typing(e):
            e.clear()
            e.send_keys(text)
        self._do("type into", el, typing)

    def select(self, el: Element, value: str) -> str:
        from selenium.webdriver.support.ui import Select
        e = self._find(el)
        if e.tag_name.lower() != "select":
            raise ToolError(f"SELECT: the chosen element is a {e.tag_name.lower()}, not a selection box")
        options = [o.text.strip() for o in Select(e).options]
        i = pick_option(options, value)
        self._do("select in", el, lambda x: Select(x).select_by_index(i))
        return options[i]

    def _do(self, what: str, el: Element, fn):
        from selenium.common.exceptions import WebDriverException
        try:
            fn(self._find(el))
        except WebDriverException as err:
            first = (getattr(err, "msg", None) or str(err) or type(err).__name__).splitlines()[0]
            raise ToolError(f"cannot {what} the {el.tag}: {type(err).__name__}: {first[:200]}") from None

    def screenshot(self, path) -> str:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return str(path)

    def close(self):
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


class BrowserPool:
    """Browsers reused across episodes: `take()` a free one (starting one if none is free), `give()` it
    back, `close()` them all. As many browsers run as episodes are in flight at once."""

    def __init__(self, **browser_kwargs):
        self.kwargs, self.free, self.all = browser_kwargs, [], []

    def take(self) -> Browser:
        if not self.free:
            self.all.append(Browser(**self.kwargs))
            self.free.append(self.all[-1])
        return self.free.pop()

    def give(self, browser: Browser):
        self.free.append(browser)

    def close(self):
        for b in self.all:
            try:
                b.close()
            except Exception:   # a browser that already died: nothing left to close
                pass
        self.all, self.free = [], []
