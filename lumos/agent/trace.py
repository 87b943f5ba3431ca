"""The agent's JSONL trace: one line per finished example, appended and flushed at once, resumable.

An interrupted run leaves a file whose last line may be cut in half. `Trace(path)` reads the complete
lines, truncates the torn tail, and remembers the finished ids so that the resumed run skips them:
no example is ever written twice. `summarize(rows)` is the one summary of a trace (run_agent.py prints
it, lumos.report renders it): every example is either correct or has exactly one cause, so the
counts add up to n.

Generated text may hold lone surrogates (half of a UTF-16 pair), which UTF-8 cannot encode: they are
written as JSON's own escape (a backslash, u, 4 hex digits), so every line encodes, json.loads gives
back the very same string, and a rerun resumes over it.
"""
import collections
import json
import os
from pathlib import Path


class Trace:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        good = 0  # byte offset after the last complete, parseable line
        if self.path.exists():
            with open(self.path, "rb") as f:
                for n, line in enumerate(f, 1):
                    if not line.endswith(b"\n"):
                        break  # the torn last line of an interrupted write
                    try:
                        self.rows.append(json.loads(line))
                    except ValueError:
                        raise ValueError(f"{self.path}:{n}: not a JSON trace line; refusing to resume over it") from None
                    good += len(line)
            if good != self.path.stat().st_size:
                with open(self.path, "r+b") as f:
                    f.truncate(good)
        self.done = {r["id"] for r in self.rows}
        self.f = open(self.path, "ab")

    def write(self, row: dict):
        """Append one finished example and flush it to disk."""
        if row["id"] in self.done:
            return
        line = json.dumps(row, ensure_ascii=False, default=str) + "\n"
        # JSON text holds characters only inside strings, where "\\udXXX" is a valid escape
        self.f.write(line.encode("utf-8", errors="backslashreplace"))
        self.f.flush()
        os.fsync(self.f.fileno())
        self.done.add(row["id"])
        self.rows.append(row)

    def close(self):
        if not self.f.closed:
            self.f.close()

    def sort(self, ids: list[str]):
        """Close the trace and rewrite its file with the rows of `ids` first, in that order (dataset
        order), then any other rows as they were. The lines are moved byte for byte, through a temp file
        renamed over the trace, so nothing can be lost."""
        self.close()
        with open(self.path, "rb") as f:
            lines = [line for line in f if line.strip()]
        rank = {i: k for k, i in enumerate(ids)}
        keyed = [(rank.get(r["id"], len(rank)), n) for n, r in enumerate(self.rows)]
        order = [n for _, n in sorted(keyed)]
        if order == sorted(order) or len(lines) != len(self.rows):
            return  # already in order (or the file changed under us: leave it alone)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.writelines(lines[n] for n in order)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.rows = [self.rows[n] for n in order]


def cause(row: dict) -> str:
    """"correct", or why the example is wrong: the agent's failure, else "wrong_answer" (traces written
    before every wrong answer had a cause have failure null there)."""
    if row.get("correct"):
        return "correct"
    return row.get("failure") or "wrong_answer"


def summarize(rows: list[dict]) -> dict:
    """n, correct, accuracy and {cause: count} of finished trace rows; correct + sum(causes) == n."""
    counts = collections.Counter(cause(r) for r in rows)
    n_correct = counts.pop("correct", 0)
    return {"n": len(rows), "correct": n_correct, "accuracy": n_correct / len(rows) if rows else 0.0,
            "failures": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))}
