"""The Lumos dataset format: one conversation per jsonl line.

A row is exactly what the released `ai2lumos/lumos_*` Hugging Face datasets hold:

    {"dataset": "gsm8k", "id": "gsm8k-train-0",
     "messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}, ...]}

Roles alternate user, assistant, user, ... starting with the user and ending with the assistant
(the trainer puts its loss on the assistant turns). Every content is a non-empty string.
`read_conversations` checks all of this and names each bad row as `path:line: reason`.
"""
import json
import os
import sys
from pathlib import Path

REQUIRED_KEYS = ("dataset", "id", "messages")


def validate_row(row) -> str | None:
    """Return why `row` is not a valid Lumos conversation, or None when it is."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    missing = [k for k in REQUIRED_KEYS if k not in row]
    if missing:
        return "missing key(s) " + ", ".join(repr(k) for k in missing)
    if not isinstance(row["id"], str) or not row["id"]:
        return "'id' must be a non-empty string"
    msgs = row["messages"]
    if not isinstance(msgs, list) or not msgs:
        return "'messages' must be a non-empty list"
    for i, m in enumerate(msgs):
        want = "user" if i % 2 == 0 else "assistant"
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            return f"message {i} must be an object with 'role' and 'content'"
        if m["role"] != want:
            return f"message {i} has role {m['role']!r}, expected {want!r} (roles alternate, user first)"
        if not isinstance(m["content"], str) or not m["content"].strip():
            return f"message {i} ({m['role']}) has empty content"
    if msgs[-1]["role"] != "assistant":
        return "last message must be from the assistant"
    return None


def read_conversations(path, strict: bool = True) -> list[dict]:
    """Read and validate a Lumos jsonl file.

    strict=True: raise one ValueError listing every bad row as `path:line: reason`.
    strict=False: skip bad rows, report each on stderr, return the good ones.
    Blank lines are ignored.
    """
    rows, problems = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})")
                continue
            why = validate_row(row)
            if why:
                problems.append(f"{path}:{lineno}: {why}")
            else:
                rows.append(row)
    if problems and strict:
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ValueError(f"{len(problems)} bad row(s):\n" + "\n".join(problems[:20]) + more)
    for p in problems:
        print(f"skipped {p}", file=sys.stderr)
    return rows


def write_jsonl(path, rows, append: bool = False) -> int:
    """Write rows (dicts) one JSON object per line; returns the number written.

    The file is written to a temporary name and renamed, so a crash never leaves half a file,
    unless append=True (used by resumable pipelines that flush row by row).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if append:
        with open(path, "a", encoding="utf-8") as f:
            n = 0
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
            f.flush()
        return n
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n
