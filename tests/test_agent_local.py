"""The agent on a tiny random local Llama: batched decoding = one at a time; run_agent runs to
completion with traces; an interrupted run resumes without duplicating an id."""
import json
from pathlib import Path

import pytest
import torch

from lumos.agent.backends import LocalBackend
from lumos.agent.grounder import ground_prompt_first
from lumos.agent.planner import plan_prompt_first
from lumos.model.checkpoint import save_hf
from lumos.model.config import ModelArgs
from lumos.model.llama import Transformer

ROOT = Path(__file__).parents[1]
QUESTIONS = [json.loads(line)["question"] for line in open(ROOT / "data/gsm8k/test.jsonl")][:6]


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A random 2-layer Llama with the real Llama-2 vocabulary, saved in HF layout with its tokenizer."""
    torch.set_num_threads(1)
    args = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=32000, multiple_of=32,
                     max_seq_len=2048, tie_word_embeddings=False)
    with torch.device("meta"):
        model = Transformer(args)
    model.to_empty(device="cpu").init_weights(seed=0)
    out = tmp_path_factory.mktemp("tiny")
    save_hf(model, args, out, tokenizer=ROOT / "data/tokenizer/llama2.model")
    return out


def test_batched_generations_equal_one_at_a_time(tiny_ckpt):
    prompts = [plan_prompt_first(q) for q in QUESTIONS[:3]] + \
              [ground_prompt_first("maths", q, "Subgoal 1: Calculate the total.") for q in QUESTIONS[3:]]
    batched = LocalBackend(str(tiny_ckpt), batch_size=8, max_new_tokens=12).complete(prompts)
    single = LocalBackend(str(tiny_ckpt), batch_size=1, max_new_tokens=12)
    alone = [single.complete([p])[0] for p in prompts]
    assert [c.text for c in batched] == [c.text for c in alone]
    assert [c.n_tokens for c in batched] == [c.n_tokens for c in alone]
    assert all(0 < c.n_tokens <= 12 for c in batched)
    # BOS is a real switch: the same prompt continues differently without it
    nobos = LocalBackend(str(tiny_ckpt), batch_size=8, max_new_tokens=12, bos=False).complete(prompts)
    assert [c.text for c in nobos] != [c.text for c in batched]


def _run(argv):
    import run_agent
    return run_agent.main(argv)


def test_run_agent_local_completes_and_resumes_after_interruption(tiny_ckpt, tmp_path, monkeypatch):
    import sys
    sys.path.insert(0, str(ROOT))
    from lumos.agent import trace as trace_mod
    out = tmp_path / "run.jsonl"
    argv = ["--task", "gsm8k", "--planner", str(tiny_ckpt), "--grounder", str(tiny_ckpt), "--limit", "5",
            "--batch-size", "4", "--max-new-tokens", "8", "--device", "cpu", "--out", str(out)]
    # interrupt (Ctrl-C) right after the 2nd example is written
    real_write, n = trace_mod.Trace.write, {"k": 0}

    def write_then_interrupt(self, row):
        real_write(self, row)
        n["k"] += 1
        if n["k"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(trace_mod.Trace, "write", write_then_interrupt)
    assert _run(argv) == 130
    first = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(first) == 2
    with open(out, "a") as f:          # a torn half line, as a kill during a write leaves
        f.write('{"id": "gsm8k-test-4", "quest')
    monkeypatch.setattr(trace_mod.Trace, "write", real_write)
    assert _run(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [r["id"] for r in rows]
    assert sorted(ids) == [f"gsm8k-test-{i}" for i in range(5)] and len(set(ids)) == 5
    assert rows[:2] == first           # finished examples were not redone
    for r in rows:                     # a random model: every example fails cleanly, with its trace
        assert r["correct"] is False and r["failure"] == "length"  # no newline within 8 tokens
        assert r["steps"][0]["module"] == "planner" and r["steps"][0]["prompt"].startswith("<|user|>\nPlease provide")
        assert 0 < r["steps"][0]["n_tokens"] <= 8 and r["question"] and r["gold"]
    summary = json.loads((tmp_path / "run.summary.json").read_text())
    assert summary["n"] == 5 and summary["metrics"]["accuracy"] == 0.0 and summary["failures"] == {"length": 5}
    assert summary["tokens_generated"] == sum(r["n_tokens"] for r in rows) > 0
    assert summary["this_session"]["examples"] == 3


@pytest.mark.parametrize("formulation", ["iterative", "onetime"])
def test_run_agent_gold_planner_local_grounder(formulation, tiny_ckpt, tmp_path, capsys):
    """Gold subgoals + a (random) local grounder: the grounder's output reaches the executor."""
    out = tmp_path / "g.jsonl"
    assert _run(["--task", "gsm8k", "--planner", "gold", "--grounder", str(tiny_ckpt), "--limit", "3",
                 "--max-new-tokens", "6", "--device", "cpu", "--out", str(out), "--formulation", formulation]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3
    for r in rows:
        assert [s["module"] for s in r["steps"]] == ["planner", "grounder"]
        assert r["steps"][0]["generation"].startswith("Subgoal 1: ")
        ground = r["steps"][1]["prompt"]
        tail = ("Subgoals to be grounded: " + r["steps"][0]["generation"] if formulation == "onetime"
                else "Subgoal to be grounded: " + r["subgoals"][0]) + "\n<|assistant|>\n"
        assert ground.startswith("<|user|>\nPlease ground the given subgoal") and ground.endswith(tail)
        assert r["failure"] in ("unparsable_actions", "execution_error", "no_actions", "length", "repetition")
    assert "0 correct; wrong by cause: " in capsys.readouterr().out


def _fails(argv, capsys, monkeypatch=None):
    with pytest.raises(SystemExit) as e:
        _run(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, err
    return err[0]


def test_run_agent_clear_errors(tmp_path, capsys, monkeypatch):
    import socket
    import run_agent
    monkeypatch.setattr(run_agent, "DEFAULT_CKPT", {"planner": tmp_path / "p", "grounder": tmp_path / "g"})
    assert "--backend gold" in _fails(["--task", "gsm8k"], capsys)
    assert "no such directory" in _fails(["--planner", str(tmp_path / "missing"), "--grounder", "gold"], capsys)
    assert "gold annotations exist only for gsm8k" in _fails(["--task", "svamp", "--backend", "gold"], capsys)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    msg = _fails(["--planner", f"http://127.0.0.1:{port}/v1", "--grounder", "gold"], capsys)
    assert msg.startswith("run_agent.py: error: cannot reach") and str(port) in msg


def test_run_agent_own_question(tiny_ckpt, capsys):
    assert _run(["--planner", str(tiny_ckpt), "--grounder", str(tiny_ckpt), "--max-new-tokens", "5",
                 "--device", "cpu", "--question", "Tom has 3 apples and buys 2 more. How many apples?"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[planner] ") and "answer: None   (failure: length" in out
