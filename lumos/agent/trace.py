"""The agent's JSONL trace: one line per finished example, appended and flushed at once, resumable.

An interrupted run leaves a file whose last line may be cut in half. `Trace(path)` reads the complete
lines, truncates the torn tail, and remembers the finished ids so that the resumed run skips them:
no example is ever written twice.
"""
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
        self.f = open(self.path, "a")

    def write(self, row: dict):
        """Append one finished example and flush it to disk."""
        if row["id"] in self.done:
            return
        self.f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())
        self.done.add(row["id"])
        self.rows.append(row)

    def close(self):
        self.f.close()
