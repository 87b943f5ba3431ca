"""How well-formed an agent run's traces are: the numbers of checkpoints/README.md's results table.

    python scripts/trace_stats.py outputs/gsm8k-iterative-*.jsonl

Per trace (run_agent.py --out), over all its examples:
  accuracy          correct / examples
  plans well-formed examples whose every planner generation parsed and ended by itself (not cut at
                    --max-new-tokens), with subgoals numbered 1, 2, ... in order (Lumos-I: the k-th
                    generation is "Subgoal k: ..." and the last one the stop sentence; Lumos-O: one line
                    "Subgoal 1: ...; Subgoal 2: ...")
  stopped           Lumos-I: examples whose planner said "Yes, I will stop planning."
  groundings ok     grounder calls whose actions all parsed and executed (no tool error, no unknown R_j)
  examples/min      from the run's .summary.json (this session's wall time)
Examples the gold backend has no annotation for (failure no_gold) never reach the models: they are
counted as examples (wrong) but not as plans or groundings.
"""
import json
import re
import sys
from pathlib import Path

from lumos import prompts
from lumos.agent.planner import parse_plan_onetime, parse_plan_step


def plan_ok(plans: list[dict], onetime: bool) -> bool:
    if not plans or any(s["finish_reason"] == "length" for s in plans):
        return False
    if onetime:
        subgoals = parse_plan_onetime(plans[0]["generation"])
        return bool(subgoals) and all(s.startswith(f"Subgoal {k}:") for k, s in enumerate(subgoals, 1))
    *subs, last = plans
    if parse_plan_step(last["generation"]).kind != "stop":
        return False
    for k, s in enumerate(subs, 1):
        step = parse_plan_step(s["generation"])
        if step.kind != "subgoal" or not re.match(rf"Subgoal {k}:", step.subgoal):
            return False
    return True


def stats(path: Path) -> dict:
    rows = [json.loads(line) for line in open(path) if line.strip()]
    onetime = "-onetime-" in path.name
    summary_path = path.with_name(path.name.removesuffix(".jsonl") + ".summary.json")
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    onetime = summary.get("formulation", "onetime" if onetime else "iterative") == "onetime"
    reached = [r for r in rows if r["failure"] != "no_gold"]
    gold_planner = summary.get("planner") == "gold"
    plans = [plan_ok([s for s in r["steps"] if s["module"] == "planner"], onetime) for r in reached]
    grounds = [s for r in reached for s in r["steps"] if s["module"] == "grounder"]
    ok = [bool(s.get("actions")) and all(a.get("error") is None for a in s["actions"]) for s in grounds]
    stopped = [any(parse_plan_step(s["generation"]).kind == "stop" for s in r["steps"] if s["module"] == "planner")
               for r in reached]
    n = len(rows)
    return {"trace": str(path), "examples": n, "accuracy": sum(r["correct"] for r in rows) / max(n, 1),
            "reached_models": len(reached),
            "plans_well_formed": None if gold_planner else sum(plans) / max(len(plans), 1),
            "stopped": None if onetime or gold_planner else sum(stopped) / max(len(stopped), 1),
            "grounder_calls": len(grounds), "groundings_ok": sum(ok) / max(len(ok), 1),
            "examples_per_minute": (summary.get("this_session") or {}).get("examples_per_minute")}


def main(argv):
    if not argv:
        sys.exit(__doc__)
    for p in argv:
        s = stats(Path(p))
        pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
        print(f"{s['trace']}: {s['examples']} examples, accuracy {pct(s['accuracy'])}, plans well-formed "
              f"{pct(s['plans_well_formed'])}, stopped {pct(s['stopped'])}, groundings ok {pct(s['groundings_ok'])} "
              f"of {s['grounder_calls']}, {s['examples_per_minute']} examples/min")
        print(json.dumps(s))


if __name__ == "__main__":
    main(sys.argv[1:])
