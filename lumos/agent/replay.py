"""Gold replay: execute annotated actions end to end (executor + scoring) and count what reproduces.

    python -m lumos.agent.replay data/gold/gsm8k_train.jsonl [--limit N] [--failures out.jsonl]

Each row (docs/architecture.md) is {"id", "question", "answer", "subgoals", "actions", "results"}
with one action string per subgoal ("R1 = Calculator(16 - 3 - 4)", possibly several joined by
"; "). The actions run in order in one environment; the prediction is the last successful result
(executor.final_answer) and is scored against `answer` with the task's metric. A row fails with the
first executor error, else as a wrong answer; failures are printed grouped by cause.
"""
import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from lumos.agent.executor import final_answer, maths_executor
from lumos.agent.tasks import TASKS, numbers_match, parse_number, score


def error_cause(msg: str) -> str:
    """Group errors by their shape: 'undefined variable R7' and '... R12' are one cause."""
    msg = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", msg)
    msg = re.sub(r"\bR\d+\b", "Rk", msg)
    return re.sub(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", "N", msg)


def replay_row(row: dict, executor=None) -> dict:
    """Run one gold row. Returns {"id", "correct", "prediction", "answer", "cause", "detail",
    "mismatched_subgoals"} where cause is None for a reproduced row."""
    executor = executor or maths_executor()
    task = row.get("task") or str(row.get("id", "gsm8k")).split("-")[0]
    task = task if task in TASKS else "gsm8k"
    env, executed, cause, detail, mismatched = {}, [], None, "", []
    for k, grounding in enumerate(row["actions"]):
        if isinstance(grounding, list):           # tolerate [[action, ...], ...] as well
            grounding = "; ".join(grounding)
        records = executor.run(grounding, env)
        executed += records
        bad = next((r for r in records if r.error), None)
        if bad is not None and cause is None:
            cause, detail = f"error: {error_cause(bad.error)}", f"subgoal {k + 1}: {bad.text} -> {bad.error}"
        value = records[-1].result if records and records[-1].error is None else None
        gold_results = row.get("results") or []
        if k < len(gold_results) and value is not None:
            g, p = parse_number(gold_results[k]), parse_number(value)
            if not (numbers_match(p, g) if g is not None else str(value) == str(gold_results[k])):
                mismatched.append(k + 1)
    prediction = final_answer(executed)
    correct = cause is None and score(task, prediction, row["answer"])["correct"]   # an error fails the row
    if not correct and cause is None:
        cause = "wrong answer" + (" (an intermediate result differs from the gold)" if mismatched else "")
        detail = f"predicted {prediction!r}, gold {row['answer']!r}"
    return {"id": row.get("id"), "correct": correct, "prediction": prediction, "answer": row["answer"],
            "cause": None if correct else cause, "detail": detail, "mismatched_subgoals": mismatched}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", type=Path, help="gold jsonl, e.g. data/gold/gsm8k_train.jsonl (made by data/prepare.py)")
    ap.add_argument("--limit", type=int, default=None, help="replay only the first N rows")
    ap.add_argument("--show", type=int, default=3, help="examples printed per failure cause (default 3)")
    ap.add_argument("--failures", type=Path, default=None, help="write every failed row's result here (jsonl)")
    args = ap.parse_args(argv)
    if not args.path.exists():
        print(f"error: {args.path} not found (make it with: python data/prepare.py)", file=sys.stderr)
        return 2
    from tqdm import tqdm
    rows = []      # split at "\n" only: str.splitlines() would also split inside a row at U+2028, U+0085...
    for n, line in enumerate(args.path.read_text(encoding="utf-8").split("\n"), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                print(f"error: {args.path}:{n}: {err}", file=sys.stderr)
                return 2
    rows = rows[: args.limit] if args.limit is not None else rows
    executor = maths_executor()
    outcomes = [replay_row(r, executor) for r in tqdm(rows, desc="replay", unit="row", file=sys.stderr)]
    n_ok = sum(o["correct"] for o in outcomes)
    n_mismatch = sum(bool(o["mismatched_subgoals"]) for o in outcomes)
    print(f"{args.path}: {n_ok}/{len(outcomes)} rows reproduce the gold answer "
          f"({100 * n_ok / max(1, len(outcomes)):.2f}%); {n_mismatch} rows have an intermediate result that "
          f"differs from the annotated one")
    groups = defaultdict(list)
    for o in outcomes:
        if not o["correct"]:
            groups[o["cause"]].append(o)
    for cause, items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        print(f"\n{len(items):6d}  {cause}")
        for o in items[: args.show]:
            print(f"        {o['id']}: {o['detail']}")
    if args.failures:
        with args.failures.open("w", encoding="utf-8") as f:
            for o in outcomes:
                if not o["correct"]:
                    f.write(json.dumps(o) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
