"""The whole agent with the gold backend on GSM8K: converted test solutions, replayed through the
planner/grounder prompts, executed by the tools and scored, give the right answers."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

import run_agent  # noqa: E402

# GSM8K test answers of the first questions (the '#### value' of data/gsm8k/test.jsonl rows 0-4)
FIRST = {"gsm8k-test-0": 18, "gsm8k-test-1": 3, "gsm8k-test-2": 70000, "gsm8k-test-3": 540, "gsm8k-test-4": 20}


@pytest.mark.parametrize("formulation", ["iterative", "onetime"])
def test_gold_backend_gsm8k_first_20(formulation, tmp_path, capsys):
    out = tmp_path / f"{formulation}.jsonl"
    assert run_agent.main(["--task", "gsm8k", "--backend", "gold", "--formulation", formulation,
                           "--limit", "20", "--out", str(out)]) == 0
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    gold = {r["id"]: r for r in map(json.loads, (ROOT / "data/gold/gsm8k_test.jsonl").read_text().splitlines())}
    assert len(rows) == 20
    for i, v in FIRST.items():
        assert float(rows[i]["prediction"]) == v and rows[i]["correct"], rows[i]
    replayable = [i for i in rows if i in gold]
    assert len(replayable) >= 18     # the converter keeps nearly every GSM8K solution
    for i in replayable:
        r = rows[i]
        assert r["correct"] and r["failure"] is None, (i, r["prediction"], r["gold"], r["failure"])
        assert r["subgoals"] == gold[i]["subgoals"]
        executed = [a["result"] for s in r["steps"] for a in s.get("actions", [])]
        assert executed[-1] == r["prediction"]
        if formulation == "iterative":   # one planner turn per subgoal + the stop turn
            assert [s["module"] for s in r["steps"]] == ["planner", "grounder"] * len(gold[i]["subgoals"]) + ["planner"]
            assert r["steps"][-1]["generation"] == "Yes, I will stop planning."
    assert all(rows[i]["failure"] == "no_gold" for i in rows if i not in gold)
    summary = json.loads((tmp_path / f"{formulation}.summary.json").read_text())
    assert summary["metrics"]["accuracy"] == len(replayable) / 20
    assert f"gsm8k ({formulation}), 20 examples: accuracy {len(replayable) / 20:.4f}" in capsys.readouterr().out
