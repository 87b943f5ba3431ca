"""Token budgets: the defaults are what `python -m lumos.agent.budget` measures on the gold annotations,
the agent passes each module its own budget, and an example that loops or runs long ends with a cause."""
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from lumos.agent.agent import FAILURES, Agent
from lumos.agent.backends import Completion
from lumos.agent.budget import BUDGETS, budget, measure, shipped_tokenizers, with_headroom
from lumos.agent.executor import maths_executor

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def annotations():
    from lumos.annotations.prepare import ensure_prepared
    ensure_prepared(ROOT / "data", quiet=True)  # data/annotations, as run_agent.py and train.py make it
    return ROOT / "data" / "annotations"


@pytest.mark.parametrize("formulation", ["iterative", "onetime"])
def test_budgets_are_the_measured_gold_lengths_with_headroom(formulation, annotations):
    toks = shipped_tokenizers(ROOT)
    assert {"llama2", "lumos-demo-plan", "lumos-demo-plan-onetime", "lumos-demo-ground"} <= set(toks)
    longest = {}
    for module, kind in (("planner", "plan"), ("grounder", "ground")):
        m = measure(annotations / f"lumos_maths_{kind}_{formulation}.jsonl", toks)
        longest[module] = (max(v["turn"] for v in m.values()), max(v["conversation"] for v in m.values()))
    b = BUDGETS[("maths", formulation)]
    for module, (turn, _) in longest.items():
        assert b[module] == with_headroom(turn) and turn < b[module] <= turn * 1.25 + 64
    assert b["example"] == with_headroom(longest["planner"][1] + longest["grounder"][1])
    assert budget("complex_qa", formulation) == {"planner": 512, "grounder": 512, "example": None}


def test_with_headroom_by_hand():
    assert [with_headroom(n) for n in (50, 51, 52, 97, 231, 453)] == [64, 64, 128, 128, 320, 576]


def test_measure_by_hand(tmp_path):
    class Words:  # a tokenizer of whitespace-separated words
        def encode(self, text):
            return text.split()
    f = tmp_path / "a.jsonl"
    f.write_text('{"id": "a", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a b c"},'
                 ' {"role": "user", "content": "r"}, {"role": "assistant", "content": "d e"}]}\n'
                 '{"id": "b", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a b c d e"}]}\n')
    assert measure(f, {"w": Words()}) == {"w": {"turn": 6, "conversation": 7}}  # + 1 stop token per turn


class Budgeted:
    """A backend that records the max_new_tokens of every call and answers from a script of
    (text, n_tokens, finish_reason) per example id and turn."""

    def __init__(self, script):
        self.script, self.budgets = script, []

    def complete(self, prompts, ids=None, max_new_tokens=None):
        self.budgets.append(max_new_tokens)
        out = []
        for p, i in zip(prompts, ids):
            turns = self.script[i]
            k = min(p.count("<|user|>") - 1, len(turns) - 1)
            out.append(Completion(*turns[k]))
        return out


def test_agent_budgets_and_their_failures():
    S1, STOP = ("Subgoal 1: Add.", 5, "eos"), ("Yes, I will stop planning.", 7, "eos")
    plan = {"ok": [S1, STOP], "loops": [("Subgoal 1: the first 1000000000000000", 20, "repeat")],
            "long": [("Subgoal 1: the cost of the cost of the cost of", 16, "length")],
            "ground_loops": [S1], "chatty": [S1] + [("No, I will keep planning. Subgoal 2: Add.", 5, "eos")] * 20}
    ground = {"ok": [("R1 = Calculator(2 + 3)", 4, "eos")], "ground_loops": [("R1 = Calculator(2 + 2 + 2 + 2", 16, "repeat")],
              "chatty": [("R1 = Calculator(2 + 3)", 4, "eos")] * 20}
    planner, grounder = Budgeted(plan), Budgeted(ground)
    agent = Agent(planner, grounder, maths_executor(), max_new_tokens={"planner": 16, "grounder": 8},
                  max_example_tokens=30)
    eps = {e.id: e for e in agent.run([NS(id=i, question=i, answer="5") for i in plan], batch_size=8)}
    assert {i: e.failure for i, e in eps.items()} == {
        "ok": None, "loops": "repetition", "long": "length", "ground_loops": "repetition", "chatty": "token_budget"}
    assert set(planner.budgets) == {16} and set(grounder.budgets) == {8}
    # "chatty" stops after the first agent step (planner + grounder, 5 + 4 tokens) that reaches 30: 4 x 9
    assert eps["chatty"].n_tokens == 36 and eps["chatty"].planner_calls == 4 and eps["ok"].prediction == "5"
    assert all(f in FAILURES for f in ("repetition", "length", "token_budget", "wrong_answer"))


def test_agent_without_budgets_calls_backends_as_before():
    class Plain:  # a backend of the two-argument interface
        def complete(self, prompts, ids=None):
            return [Completion("Yes, I will stop planning.", 1) for _ in prompts]
    (e,) = Agent(Plain(), Plain(), maths_executor()).run([NS(id="a", question="q", answer="1")])
    assert e.failure == "no_result"
