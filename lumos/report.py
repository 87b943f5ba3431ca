"""An agent trace as one self-contained HTML page, to read a run without reading JSON.

    python -m lumos.report outputs/gsm8k-iterative-lumos-smollm2-plan-lora-lumos-smollm2-ground-lora.jsonl   # -> ....html
    python run_agent.py --task gsm8k --limit 20      # writes the same report next to its trace

The page holds the run's summary, the wrong answers counted by cause (each count filters the list), and
every example in dataset order: the question, each planner turn (its subgoal), each grounder turn with
its actions and their executed values or errors, and the answer against the gold answer, green when
right and red when wrong. A menu (or a link ending in #CAUSE, e.g. #length) shows one cause only.

One file, nothing external: the style and the few lines of filtering script are inline, and a
Content-Security-Policy forbids the page to load anything. Every string from the trace (questions,
generations, tool results: model output, untrusted) is HTML-escaped; none reaches the script.
"""
import argparse
import html
import json
import re
import sys
from pathlib import Path

from lumos.agent.agent import FAILURES
from lumos.agent.trace import cause, summarize
from lumos.cli import HelpFormatter

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1em; } td, th { padding: .15em .8em; text-align: left; }
#causes tr[data-filter] { cursor: pointer; } #causes tr[data-filter]:hover { background: #eef; }
.ex { border-left: 6px solid; margin: .35em 0; padding: .2em .6em; border-radius: 3px; }
.ex.right { border-color: #2a8a3a; background: #eef8ef; } .ex.wrong { border-color: #c0392b; background: #fcf0ef; }
.ex > summary { cursor: pointer; } .mark { font-weight: bold; } .right .mark { color: #2a8a3a; }
.wrong .mark { color: #c0392b; } .cause { font-family: monospace; color: #555; }
.turn { margin: .3em 0 .3em 1em; } .who { font-weight: bold; display: inline-block; width: 5.5em; }
pre { white-space: pre-wrap; word-break: break-all; margin: .1em 0; font-size: 13px; display: inline; }
.actions td { font-family: monospace; font-size: 13px; vertical-align: top; } .error { color: #c0392b; }
.meta { color: #777; font-size: 12px; } [hidden] { display: none !important; }
"""
SCRIPT = """
const menu = document.getElementById('filter'), shown = document.getElementById('shown');
function apply() {
  const want = menu.value; let n = 0;
  for (const ex of document.querySelectorAll('.ex')) {
    const c = ex.dataset.cause;
    ex.hidden = !(want === '' || want === c || (want === 'wrong' && c !== 'correct'));
    if (!ex.hidden) n++;
  }
  shown.textContent = n + ' shown';
}
menu.addEventListener('change', () => { history.replaceState(null, '', '#' + menu.value); apply(); });
for (const row of document.querySelectorAll('[data-filter]'))
  row.addEventListener('click', () => { menu.value = row.dataset.filter; menu.dispatchEvent(new Event('change')); });
const asked = decodeURIComponent(location.hash.slice(1));
if ([...menu.options].some(o => o.value === asked)) menu.value = asked;
apply();
"""


def esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def dataset_order(rows: list[dict]) -> list[dict]:
    """Rows sorted by their id's trailing row number (`gsm8k-test-12`), the order of the dataset file."""
    def key(r):
        m = re.fullmatch(r"(.*?)(\d+)", str(r.get("id", "")))
        return (m.group(1), int(m.group(2))) if m else (str(r.get("id", "")), -1)
    return sorted(rows, key=key)


def answer(x) -> str:
    return "(none)" if x is None else esc(x)


def render_example(r: dict, open_: bool, scores: tuple = ()) -> str:
    """One example as a <details> block; `scores`: extra score keys to show (HotpotQA's em, f1)."""
    c = cause(r)
    ok = c == "correct"
    out = [f'<details class="ex {"right" if ok else "wrong"}" data-cause="{esc(c)}" id="{esc(r.get("id"))}"'
           f'{" open" if open_ else ""}><summary><span class="mark">{"&#10003;" if ok else "&#10007;"}</span> '
           f'<b>{esc(r.get("id"))}</b> <span class="cause">{esc(c)}</span> &mdash; answer '
           f'<b class="prediction">{answer(r.get("prediction"))}</b>, gold <b class="gold">{esc(r.get("gold"))}</b></summary>',
           f'<p class="question">{esc(r.get("question"))}</p>']
    for s in r.get("steps", []):
        who = s.get("module", "?")
        meta = f'{s.get("n_tokens", 0)} tokens, {s.get("finish_reason", "")}'
        out.append(f'<div class="turn {esc(who)}"><span class="who">{esc(who)}</span><pre>{esc(s.get("generation"))}'
                   f'</pre> <span class="meta">({esc(meta)})</span>')
        acts = s.get("actions") or []
        if acts:
            out.append('<table class="actions">')
            for a in acts:
                value = (f'<span class="error">error: {esc(a.get("error"))}</span>' if a.get("error")
                         else f'= <span class="value">{esc(a.get("result"))}</span>')
                out.append(f'<tr class="action"><td>{esc(a.get("text"))}</td><td>{value}</td></tr>')
            out.append("</table>")
        out.append("</div>")
    score = r.get("score") or {}
    extra = ", ".join(f"{k} {v:.2f}" for k, v in score.items() if k in scores and isinstance(v, (int, float)))
    out.append(f'<p>answer <b>{answer(r.get("prediction"))}</b> vs gold <b>{esc(r.get("gold"))}</b>'
               + (f' ({esc(extra)})' if extra else "") + f' &mdash; {r.get("n_tokens", 0)} tokens generated'
               + (f' &mdash; {esc(FAILURES.get(c, ""))}' if not ok else "") + "</p></details>")
    return "\n".join(out)


def render(rows: list[dict], summary: dict | None = None, failures: dict | None = None) -> str:
    """The whole page. rows: trace rows (any order); summary: run_agent's summary (task, planner, ...)."""
    failures = failures or FAILURES
    rows = dataset_order(rows)
    total = summarize(rows)
    info = dict(summary or {})
    title = f'Lumos trace: {info.get("task", "")} ({info.get("formulation", "")})' if info.get("task") else "Lumos trace"
    facts = [("examples", total["n"]), ("correct", total["correct"]), ("accuracy", f'{total["accuracy"]:.4f}')]
    facts += [(k, v) for k, v in (info.get("metrics") or {}).items() if k != "accuracy"]
    facts += [(k, info[k]) for k in ("planner", "grounder", "tokens_generated", "budgets", "trace") if k in info]
    page = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>", f"<h1>{esc(title)}</h1>",
            '<table id="summary">']
    page += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts]
    page += ["</table>", "<h2>Wrong answers by cause</h2>", '<table id="causes">',
             "<tr><th>cause</th><th>examples</th><th>meaning</th></tr>",
             f'<tr data-filter="correct"><td>correct</td><td>{total["correct"]}</td><td></td></tr>']
    page += [f'<tr data-filter="{esc(c)}" class="cause-row"><td>{esc(c)}</td><td>{k}</td><td>{esc(failures.get(c, ""))}</td></tr>'
             for c, k in total["failures"].items()]
    page += [f'<tr><th>total</th><th>{total["n"]}</th><td></td></tr>', "</table>",
             '<p><label>Show <select id="filter">', f'<option value="">all examples ({total["n"]})</option>',
             f'<option value="wrong">every wrong answer ({total["n"] - total["correct"]})</option>',
             f'<option value="correct">correct ({total["correct"]})</option>']
    page += [f'<option value="{esc(c)}">{esc(c)} ({k})</option>' for c, k in total["failures"].items()]
    page += ['</select></label> <span id="shown"></span> &mdash; click an example to see its plan, actions and results</p>',
             '<div id="examples">']
    scores = tuple(k for k in (info.get("metrics") or {}) if k != "accuracy")
    page += [render_example(r, open_=len(rows) <= 20, scores=scores) for r in rows]
    page += ["</div>", f"<script>{SCRIPT}</script>", "</body></html>", ""]
    return "\n".join(page)


def read_trace(path: str | Path) -> list[dict]:
    """The complete rows of a JSONL trace (a torn last line, from an interrupted run, is skipped)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip() and line.endswith("\n"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    raise ValueError(f"{path}:{n}: not a JSON trace line") from None
    return rows


def write_report(trace: str | Path, rows: list[dict] | None = None, summary: dict | None = None,
                 failures: dict | None = None, out: str | Path | None = None) -> Path:
    """Write the report of `trace` (its rows, unless given) to `out` (default: the trace's name with
    .html) and return its path. The summary defaults to the one run_agent.py saved next to the trace."""
    trace = Path(trace)
    stem = trace.name.removesuffix(".jsonl")
    if rows is None:
        rows = read_trace(trace)
    if summary is None:
        saved = trace.with_name(stem + ".summary.json")
        summary = json.loads(saved.read_text()) if saved.is_file() else {}
    out = Path(out) if out else trace.with_name(stem + ".html")
    # errors="backslashreplace": a lone surrogate in model text shows as \udXXX instead of failing the page
    out.write_text(render(rows, summary, failures), encoding="utf-8", errors="backslashreplace")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lumos.report", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("trace", help="a run_agent.py JSONL trace")
    p.add_argument("--out", help="the HTML file to write (default: TRACE minus .jsonl + .html)")
    a = p.parse_args(argv)
    if not Path(a.trace).is_file():
        p.error(f"{a.trace}: no such file")
    try:
        rows = read_trace(a.trace)
    except (ValueError, UnicodeDecodeError) as e:
        p.error(str(e).splitlines()[0])
    if not rows:
        p.error(f"{a.trace} holds no finished example")
    print(write_report(a.trace, rows, out=a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
