"""The README's training smoke run, in miniature: a run stopped early still leaves, from its last
--save-every checkpoint, a model that run_agent.py loads and a loss curve."""
import json
import sys
from pathlib import Path

from test_train_loop import _toy_rows, _train

ROOT = Path(__file__).resolve().parents[1]


def test_a_run_killed_after_its_first_save_leaves_a_model_run_agent_loads(tmp_path):
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _toy_rows()))
    out = tmp_path / "demo"
    r = _train("--data", str(data), "--preset", "tiny", "--vocab-size", "320", "--max-steps", "6", "--save-every", "2",
               "--global-batch-size", "8", "--micro-batch-size", "4", "--lr", "1e-3", "--threads", "1",
               "--no-progress", "--out", str(out), env={"LUMOS_TRAIN_KILL_AFTER_STEP": "3"})
    assert r.returncode == -9, r.stderr[-3000:]  # killed after step 3: the step-2 save is the latest
    assert [p.name for p in (out / "checkpoints").glob("step-*")] == ["step-0000002"]
    assert (out / "loss.png").stat().st_size > 1000
    assert {"config.json", "model.safetensors", "tokenizer.model"} <= {p.name for p in out.iterdir()}

    sys.path.insert(0, str(ROOT))
    import run_agent
    trace = tmp_path / "agent.jsonl"
    assert run_agent.main(["--planner", "gold", "--grounder", str(out), "--limit", "2", "--device", "cpu",
                           "--max-new-tokens", "8", "--out", str(trace), "--no-html"]) == 0
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    assert len(rows) == 2 and all(r["steps"][1]["module"] == "grounder" and r["steps"][1]["n_tokens"] > 0 for r in rows)
