"""The shipped demo checkpoints (checkpoints/lumos-demo-*, trained by train.py; see checkpoints/README.md)
drive the whole agent on real GSM8K test questions: the planner writes parseable subgoals and stops,
the grounder writes Calculator actions that the executor runs, and the answer is the last result."""
import json
import re
import struct
from pathlib import Path

import pytest
import torch

from lumos import prompts
from lumos.agent.agent import Agent
from lumos.agent.backends import LocalBackend
from lumos.agent.budget import budget
from lumos.agent.executor import maths_executor, parse_actions
from lumos.agent.planner import parse_plan_onetime, parse_plan_step
from lumos.agent.tasks import load_task

ROOT = Path(__file__).parents[1]
CKPT = ROOT / "checkpoints"
PLAN, PLAN_O, GROUND = CKPT / "lumos-demo-plan", CKPT / "lumos-demo-plan-onetime", CKPT / "lumos-demo-ground"
N = 8  # the first N GSM8K test questions


def safetensors_dtypes(path: Path) -> set[str]:
    """dtypes in a .safetensors header (8-byte little-endian length, then JSON)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return {v["dtype"] for k, v in header.items() if k != "__metadata__"}


def test_shipped_checkpoints_are_small_half_precision_hf_directories():
    total = 0
    for d in (PLAN, PLAN_O, GROUND):
        assert json.loads((d / "config.json").read_text())["model_type"] == "llama"
        assert (d / "tokenizer.model").is_file()
        assert safetensors_dtypes(d / "model.safetensors") == {"F16"}
        total += sum(f.stat().st_size for f in d.iterdir())
    assert total <= 30e6


@pytest.fixture(scope="module")
def backends():
    torch.set_num_threads(1)
    return {p.name: LocalBackend(str(p), batch_size=N, max_new_tokens=96) for p in (PLAN, PLAN_O, GROUND)}


def run_agent_budgets(formulation: str) -> dict:
    """The token budgets run_agent.py gives the agent by default (lumos.agent.budget)."""
    b = budget("maths", formulation)
    return {"max_new_tokens": {m: b[m] for m in ("planner", "grounder")}, "max_example_tokens": b["example"]}


def check_grounding(step: dict):
    """A grounder step whose actions all parsed and executed, each binding the next R_k."""
    actions = parse_actions(step["generation"])
    assert actions and all(a.error is None and a.tool == "Calculator" for a in actions)
    assert [a["text"] for a in step["actions"]] == [a.text for a in actions]
    assert all(a["error"] is None and a["result"] not in (None, "") for a in step["actions"])


def test_lumos_i_episodes_run_to_the_stop_sentence(backends):
    agent = Agent(backends[PLAN.name], backends[GROUND.name], maths_executor(), "maths", "iterative",
                  **run_agent_budgets("iterative"))
    episodes = list(agent.run(load_task("gsm8k", N), batch_size=N))
    assert len(episodes) == N
    finished = [e for e in episodes if e.failure is None]
    assert len(finished) >= N - 2, [e.failure for e in episodes]
    for e in finished:
        plans = [s for s in e.steps if s["module"] == "planner"]
        grounds = [s for s in e.steps if s["module"] == "grounder"]
        # planner: Subgoal 1, "No, I will keep planning. Subgoal k", ..., then the stop sentence
        assert len(plans) == len(grounds) + 1 == len(e.subgoals) + 1 >= 2
        for k, s in enumerate(plans[:-1], 1):
            step = parse_plan_step(s["generation"])
            # (a 4M-parameter planner sometimes repeats a subgoal number; the agent numbers results itself)
            assert step.kind == "subgoal" and re.match(r"Subgoal \d+: \S", step.subgoal), s["generation"]
            assert k == 1 or s["generation"].startswith(prompts.PLAN_KEEP_GOING)
        assert parse_plan_step(plans[-1]["generation"]).kind == "stop"
        for s in grounds:
            check_grounding(s)
        # the planner was told each executed value, and the prediction is the last one
        for k, s in enumerate(grounds, 1):
            assert prompts.plan_feedback(k, s["actions"][-1]["result"]) in plans[k]["prompt"]
        assert e.prediction == grounds[-1]["actions"][-1]["result"]


def test_lumos_o_episodes_plan_once_and_ground_every_subgoal(backends):
    agent = Agent(backends[PLAN_O.name], backends[GROUND.name], maths_executor(), "maths", "onetime",
                  **run_agent_budgets("onetime"))
    episodes = list(agent.run(load_task("gsm8k", N), batch_size=N))
    finished = [e for e in episodes if e.failure is None]
    # measured: 4 of 8 plan; the other 4 loop ("... of the total cost of the total cost of ...") and are
    # stopped as repetition instead of being parsed as a plan
    assert len(finished) >= N // 2, [e.failure for e in episodes]
    assert {e.failure for e in episodes} <= {None, "repetition", "length"}
    for e in episodes:
        if e.failure == "repetition":
            text = e.steps[-1]["generation"]
            assert e.steps[-1]["finish_reason"] == "repeat" and re.search(r"(.{1,40}?)\1{3,}", text), text
    for e in finished:
        plan, ground = e.steps
        assert plan["module"] == "planner" and ground["module"] == "grounder"
        subgoals = parse_plan_onetime(plan["generation"])
        assert [s.split(":")[0] for s in subgoals] == [f"Subgoal {k}" for k in range(1, len(subgoals) + 1)]
        check_grounding(ground)
        assert e.prediction == ground["actions"][-1]["result"]
