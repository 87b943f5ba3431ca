"""train.py end to end on a tiny model: the loss falls, a killed run resumes with identical
losses, and the exported checkpoint gives the same logits in our model and in transformers."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
STEPS, SAVE_EVERY, KILL_AFTER = 8, 4, 6
FLAGS = ["--preset", "tiny", "--max-steps", str(STEPS), "--save-every", str(SAVE_EVERY), "--global-batch-size", "8",
         "--micro-batch-size", "4", "--lr", "2e-3", "--threads", "1", "--no-progress", "--seed", "1"]


def _toy_rows(n=32):
    """Two-turn grounding conversations with a learnable pattern."""
    rows = []
    for i in range(n):
        a, b = 3 + (7 * i) % 41, 5 + (11 * i) % 37
        msgs = [{"role": "user", "content": f"Subgoal to be grounded: Subgoal 1: add {a} and {b}."},
                {"role": "assistant", "content": f"R1 = Calculator({a} + {b})"},
                {"role": "user", "content": "Subgoal to be grounded: Subgoal 2: double R1."},
                {"role": "assistant", "content": "R2 = Calculator(R1 * 2)"}]
        rows.append({"dataset": "toy", "id": f"toy-{i}", "messages": msgs})
    return rows


def _train(*args, env=None):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})}, cwd=ROOT)


def _losses(out):
    return {r["step"]: r["loss"] for r in map(json.loads, open(Path(out, "log.jsonl")))}


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted run; the tokenizer is trained on the data (no --tokenizer)."""
    tmp = tmp_path_factory.mktemp("train")
    data = tmp / "toy.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _toy_rows()))
    out = tmp / "straight"
    r = _train("--data", str(data), "--vocab-size", "320", "--out", str(out), *FLAGS)
    assert r.returncode == 0, r.stderr[-3000:]
    return data, out


def test_loss_falls(straight):
    _, out = straight
    losses = _losses(out)
    assert sorted(losses) == list(range(1, STEPS + 1))
    first, last = losses[1], [losses[s] for s in range(STEPS - 2, STEPS + 1)]
    assert sum(last) / 3 < 0.7 * first, losses  # 5.95 -> 3.43 here
    assert (out / "loss.png").stat().st_size > 1000
    rec = json.loads(open(out / "log.jsonl").readline())
    assert rec["tokens_per_s"] > 0 and 0 < rec["mfu"] < 1 and rec["peak_mem_gb"] > 0


def test_kill_and_resume_gives_identical_losses(straight, tmp_path):
    data, ref = straight
    out = tmp_path / "resumed"
    args = ["--data", str(data), "--tokenizer", str(ref / "tokenizer.model"), "--out", str(out), *FLAGS]
    r = _train(*args, env={"LUMOS_TRAIN_KILL_AFTER_STEP": str(KILL_AFTER)})
    assert r.returncode == -9, r.stderr[-3000:]  # SIGKILL after step 6: steps 5-6 are lost
    assert [p.name for p in (out / "checkpoints").glob("step-*")] == [f"step-{SAVE_EVERY:07d}"]
    assert (out / "model.safetensors").is_file()  # exported at the step-4 save (and replaced at the end)
    r = _train(*args, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    recs = [json.loads(line) for line in open(out / "log.jsonl")]
    steps = [rec["step"] for rec in recs]
    assert steps == list(range(1, STEPS + 1))  # resumed at the step-4 checkpoint; the lost 5-6 logged once
    want = _losses(ref)
    assert [rec["loss"] for rec in recs] == [want[s] for s in range(1, STEPS + 1)]
    from safetensors.torch import load_file
    a, b = load_file(ref / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_export_matches_transformers(straight):
    from transformers import LlamaForCausalLM

    from lumos.model.checkpoint import load_model
    from lumos.model.tokenizer import Tokenizer
    _, out = straight
    torch.set_num_threads(1)
    ours = load_model(out).eval()
    hf = LlamaForCausalLM.from_pretrained(out, torch_dtype=torch.float32).eval()
    tok = Tokenizer(str(out))
    ids = torch.tensor([tok.encode("<|user|>\nSubgoal to be grounded: Subgoal 1: add 3 and 5.\n<|assistant|>\n", bos=True)])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, rtol=1e-4, atol=1e-4)
    assert ours.args.vocab_size == tok.n_words == 320


def test_rerun_into_a_used_out_dir_needs_resume(straight):
    data, out = straight
    r = _train("--data", str(data), "--tokenizer", str(out / "tokenizer.model"), "--out", str(out), *FLAGS)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and lines == [f"train.py: error: {out} already holds checkpoints: pass --resume "
                                           "to continue that run, or choose a new --out"]
