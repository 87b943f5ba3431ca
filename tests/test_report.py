"""The HTML trace report: one self-contained page, model text escaped, examples in dataset order with
their cause, and a real browser (headless Chromium) renders one element per trace row, filters by cause
and colours right green and wrong red."""
import json
import os
import re
import shutil
import subprocess

import pytest

from lumos.report import main, render

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EVIL = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def _row(i: int, failure: str | None, correct: bool = False, **kw) -> dict:
    steps = [{"module": "planner", "prompt": "p", "generation": f"Subgoal 1: Count item {i}.", "n_tokens": 7,
              "finish_reason": "eos"},
             {"module": "grounder", "prompt": "p", "generation": f"R1 = Calculator({i} + 1)", "n_tokens": 6,
              "finish_reason": "eos", "actions": [{"text": f"R1 = Calculator({i} + 1)", "tool": "Calculator",
                                                   "result": str(i + 1), "error": None}]}]
    row = {"id": f"gsm8k-test-{i}", "question": f"What is {i} + 1?", "gold": str(i + 1) if correct else "0",
           "prediction": str(i + 1), "correct": correct, "score": {"correct": correct}, "failure": failure,
           "subgoals": [steps[0]["generation"]], "n_tokens": 13, "steps": steps}
    row.update(kw)
    return row


def _trace_rows() -> list[dict]:
    """12 rows out of dataset order: 4 right, 8 wrong with 4 causes (one an old-style null failure)."""
    rows = [_row(i, None, correct=True) for i in (10, 2, 7, 0)]
    rows += [_row(i, "wrong_answer") for i in (11, 3)] + [_row(1, None)]  # null failure, wrong: wrong_answer
    rows += [_row(i, "length") for i in (5, 9, 4)]
    rows += [_row(6, "execution_error", question=EVIL, prediction=None, steps=[
        {"module": "grounder", "generation": EVIL, "n_tokens": 3, "finish_reason": "eos",
         "actions": [{"text": EVIL, "result": None, "error": "undefined variable </table><b>"}]}])]
    rows += [_row(8, "repetition", prediction="\udcff lone surrogate")]
    return rows


def test_page_is_self_contained_escaped_and_in_dataset_order():
    page = render(_trace_rows(), {"task": "gsm8k", "formulation": "iterative", "metrics": {"accuracy": 1 / 3}})
    assert EVIL not in page and "<img" not in page and page.count("<script>") == 1
    assert html_escaped(EVIL) in page and "undefined variable &lt;/table&gt;&lt;b&gt;" in page
    assert not re.search(r"<[^>]*\b(src|href)\s*=", page) and "Content-Security-Policy" in page and "default-src 'none'" in page
    ids = re.findall(r'<details class="ex [a-z]+" data-cause="[a-z_]+" id="gsm8k-test-(\d+)"', page)
    assert ids == [str(i) for i in range(12)]  # 2 before 10: by row number, not as text
    causes = dict(re.findall(r'<tr data-filter="([a-z_]+)"[^>]*><td>[a-z_]+</td><td>(\d+)</td>', page))
    assert causes == {"correct": "4", "wrong_answer": "3", "length": "3", "execution_error": "1", "repetition": "1"}
    assert sum(map(int, causes.values())) == 12


def html_escaped(s: str) -> str:
    import html
    return html.escape(s, quote=True)


@pytest.fixture
def report(tmp_path):
    trace = tmp_path / "run.jsonl"
    with open(trace, "w", encoding="utf-8", errors="surrogatepass") as f:
        for r in _trace_rows():
            f.write(json.dumps(r) + "\n")  # ensure_ascii: the lone surrogate travels as \udcff
    (tmp_path / "run.summary.json").write_text(json.dumps({"task": "gsm8k", "formulation": "iterative",
                                                            "planner": "P", "grounder": "G"}))
    assert main([str(trace)]) == 0
    return tmp_path / "run.html"


def chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=3000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium; .ci/run does)")
def test_chromium_renders_one_element_per_row_filters_and_colours(report, tmp_path):
    n = len(_trace_rows())
    dom = chromium(tmp_path, "--dump-dom", report.as_uri()).stdout
    assert len(re.findall(r'<details class="ex (right|wrong)"', dom)) == n
    assert f"{n} shown" in dom  # the script ran: nothing filtered
    assert "\\udcff lone surrogate" in dom  # written as an escape, not dropped, page still whole
    dom = chromium(tmp_path, "--dump-dom", report.as_uri() + "#length").stdout  # a link to one cause
    blocks = re.findall(r'<details class="ex [a-z]+" data-cause="([a-z_]+)"([^>]*)>', dom)
    assert len(blocks) == n and {c for c, attrs in blocks if 'hidden=""' not in attrs} == {"length"}
    assert "3 shown" in dom
    dom = chromium(tmp_path, "--dump-dom", report.as_uri() + "#wrong").stdout
    assert "8 shown" in dom

    shot = tmp_path / "report.png"
    r = chromium(tmp_path, "--window-size=1100,1400", f"--screenshot={shot}", report.as_uri())
    assert shot.is_file() and shot.stat().st_size > 10_000, r.stderr[-2000:]
    import matplotlib.image
    px = (matplotlib.image.imread(shot)[..., :3] * 255).round().astype(int).reshape(-1, 3).tolist()
    colours = {tuple(p) for p in px}
    assert (0x2a, 0x8a, 0x3a) in colours and (0xc0, 0x39, 0x2b) in colours  # right and wrong borders


def test_report_cli_refuses_what_is_not_a_trace(tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "bad.jsonl").write_text("garbage\n")
    for name, why in (("missing.jsonl", "no such file"), ("empty.jsonl", "holds no finished example"),
                      ("bad.jsonl", "bad.jsonl:1: not a JSON trace line")):
        with pytest.raises(SystemExit) as e:
            main([str(tmp_path / name)])
        assert e.value.code == 2 and capsys.readouterr().err.strip().splitlines()[-1].endswith(why)
    assert not list(tmp_path.glob("*.html"))
