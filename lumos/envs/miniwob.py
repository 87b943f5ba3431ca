"""MiniWoB++ task pages in a live headless browser: a page for the web tools, and MiniWoB's own reward.

The `miniwob` package (PyPI, MIT) ships the task pages: html/miniwob/<task>.html with core/core.js.
We use those files and the reward their JavaScript computes, but drive the browser ourselves: open the
page, seed its random generator (`Math.seedrandom(seed)`, as miniwob's own environment does), start the
episode (`core.startEpisodeReal()`), read the instruction (`core.getUtterance()`), act, and finally read
`WOB_DONE_GLOBAL` / `WOB_RAW_REWARD_GLOBAL` (1.0 = solved; MiniWoB's time-scaled reward is kept too).

    page = MiniWoBPage(browser, "click-button", seed=3, shots="outputs/shots/ep0")
    page.utterance                  # 'Click on the "no" button.'
    page.act("CLICK", page.candidates("CLICK")[2], "")     # what the CLICK tool does after ranking
    page.result()                   # {"done": True, "reward": 1.0, "env_reward": 0.93, "reason": None}
"""
import importlib.util
import time
from pathlib import Path

from lumos.tools import ToolError
from lumos.tools.web import Element


def task_dir() -> Path:
    """html/miniwob of the installed miniwob package (found without importing it: we need only its files)."""
    spec = importlib.util.find_spec("miniwob")
    if spec is None or not spec.origin:
        raise RuntimeError("the miniwob package is not installed (pip install miniwob): it ships the task pages")
    return Path(spec.origin).parent / "html" / "miniwob"


class MiniWoBPage:
    """One MiniWoB++ episode of `task` with `seed` in `browser`. Candidates are the visible elements of
    the task area (#wrap) without the instruction itself (#query); TYPE sees only text fields and SELECT
    only selection boxes, since a real page allows nothing else. `shots`: a directory that receives a
    screenshot after the page opens (step_00.png) and after every action (step_01.png, ...).
    `max_ms` overrides the page's episode time limit (MiniWoB: 10 s; None keeps it)."""

    def __init__(self, browser, task: str, seed: int, shots: str | Path | None = None, max_ms: int | None = None):
        path = task_dir() / f"{task}.html"
        if not path.is_file():
            raise ValueError(f"no MiniWoB++ task {task!r} in {path.parent}")
        self.browser, self.task, self.seed, self.shots, self.n_actions = browser, task, seed, shots, 0
        browser.get(path.as_uri())
        for _ in range(100):           # core.startEpisode() builds the sync cover once the page has loaded
            if browser.js("return !!document.getElementById('sync-task-cover');"):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{task}: the MiniWoB page did not load")
        if max_ms is not None:
            browser.js("core.EPISODE_MAX_TIME = arguments[0];", int(max_ms))
        browser.js("Math.seedrandom(arguments[0]); core.startEpisodeReal();", int(seed))
        for _ in range(100):
            if browser.js("return WOB_TASK_READY;"):
                break
            time.sleep(0.05)
        self.utterance = browser.js("return core.getUtterance();")
        if isinstance(self.utterance, dict):          # a few tasks return {utterance, fields}
            self.utterance = self.utterance.get("utterance", "")
        self.screenshots = []
        self._shoot()

    def candidates(self, op: str) -> list[Element]:
        els = self.browser.elements("#wrap", ("#query",))
        if op == "TYPE":
            els = [e for e in els if e.typeable]
        elif op == "SELECT":
            els = [e for e in els if e.tag == "select"]
        return els

    def act(self, op: str, element: Element, value: str) -> str:
        if op == "CLICK":
            self.browser.click(element)
        elif op == "TYPE":
            self.browser.type(element, value)
        elif op == "SELECT":
            value = self.browser.select(element, value)
        else:
            raise ToolError(f"unknown web operation {op}")
        self.n_actions += 1
        self._shoot()
        what = f"[{element.tag}] {element.label or element.text}"[:100]
        return f"{op} {what}" + (f" -> {value}" if value else "")

    def _shoot(self):
        if self.shots is not None:
            self.screenshots.append(self.browser.screenshot(Path(self.shots) / f"step_{self.n_actions:02d}.png"))

    def result(self) -> dict:
        """MiniWoB's verdict: done, raw reward (1.0 = solved, -1 = failed, 0 = not finished), the
        time-scaled reward and the page's reason."""
        m = self.browser.js("return {done: WOB_DONE_GLOBAL, raw: WOB_RAW_REWARD_GLOBAL, "
                            "env: WOB_REWARD_GLOBAL, reason: WOB_REWARD_REASON};")
        done = bool(m["done"])
        return {"done": done, "reward": float(m["raw"]) if done else 0.0,
                "env_reward": float(m["env"]) if done else 0.0, "reason": m.get("reason"),
                "screenshots": self.screenshots}
