"""The cross-encoder element ranker: its training pairs (MindAct's recipe, Lumos format), its scores
against a plain forward pass, and a train.py fine-tune it can load."""
import json
from pathlib import Path

import pytest
import torch

from lumos import prompts
from lumos.agent.ranker import LMRanker, main as ranker_main, ranker_pairs, step_queries
from lumos.agent.tasks import load_task
from lumos.annotations.format import validate_row
from lumos.tools.web import Element

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "checkpoints/lumos-demo-ground"


def test_pairs_follow_mindacts_recipe():
    exs = load_task("mind2web")
    assert step_queries(exs[0])[5] == "Select 2 Adults in the select 1 Adult 2 Adults"      # SELECT: + TEXT
    rows = ranker_pairs(exs, negatives=5, seed=0)
    assert all(validate_row(r) is None for r in rows) and len({r["id"] for r in rows}) == len(rows)
    yes = [r for r in rows if r["messages"][1]["content"] == "Yes"]
    assert len(yes) == 13 and len(rows) == 13 + 13 * 5            # every step has >= 5 negatives
    assert yes[0]["messages"][0]["content"] == prompts.RANK_USER.format(
        query="Click the input One-way", element="input radio One-way tripType oneway")
    assert ranker_pairs(exs, negatives=5, seed=0) == rows and ranker_pairs(exs, negatives=5, seed=1) != rows
    assert len(ranker_pairs(exs, negatives=0)) == 13


@pytest.mark.skipif(not DEMO.is_dir(), reason="the shipped demo checkpoint is missing")
def test_lm_ranker_scores_are_yes_minus_no_of_one_forward_each():
    r = LMRanker(str(DEMO), batch_size=2)
    els = [Element("1", "a", "a Book"), Element("2", "button", "button submit Find flights Find flights"),
           Element("3", "select", "select Number of travelers travelers 1 Adult 2 Adults 3 Adults")]
    q = "Click the button Find flights"
    got = r.scores(q, els)
    for e, s in zip(els, got):     # one unpadded forward per candidate, logits at the last prompt token
        ids = torch.tensor([r.tokenizer.encode(r.prompt(q, e.text), bos=True)])
        logits = r.model(ids)[0, -1]
        assert s == pytest.approx((logits[r.yes] - logits[r.no]).item(), abs=1e-4)
    assert r(q, els) == sorted(range(3), key=lambda i: -got[i])
    assert r.yes != r.no


@pytest.mark.skipif(not DEMO.is_dir(), reason="the shipped demo checkpoint is missing")
def test_train_py_fine_tunes_a_ranker_that_run_agent_loads(tmp_path):
    import run_agent
    import train
    pairs = tmp_path / "pairs.jsonl"
    assert ranker_main(["--split", "test_task", "--negatives", "1", "--out", str(pairs)]) == 0
    assert len(pairs.read_text().splitlines()) == 26
    try:
        rc = train.main(["--data", str(pairs), "--init", str(DEMO), "--max-steps", "2", "--global-batch-size", "4",
                         "--micro-batch-size", "4", "--max-seq-len", "128", "--threads", "1", "--no-progress",
                         "--out", str(tmp_path / "rk")])
    except SystemExit as e:     # train.py ends with sys.exit(0)
        rc = e.code
    assert rc in (0, None)
    out = tmp_path / "t.jsonl"
    assert run_agent.main(["--task", "mind2web", "--backend", "gold", "--ranker", str(tmp_path / "rk"),
                           "--out", str(out)]) == 0
    summary = json.loads(out.with_name("t.summary.json").read_text())
    # every action ran (a 2-step ranker picks wrong elements: wrong answers, never execution errors)
    assert summary["metrics"]["n_steps"] == 13 and set(summary["failures"]) <= {"wrong_answer"}
