"""MiniWoB++ in headless Chromium: the scripted oracle, then live episodes through the whole agent
(CLICK / TYPE / SELECT on real pages, MiniWoB's own reward, a screenshot per step), and malformed
actions on a live page as recorded errors."""
import importlib.util

import pytest

from lumos.agent.agent import Agent
from lumos.agent.tasks import score
from lumos.agent.tasks.miniwob import TASKS, OracleBackend, load_miniwob, oracle_annotation, score_miniwob
from lumos.envs.browser import missing


@pytest.mark.parametrize("utterance,actions", [
    ('Click on the "Okay" button.', ['R1 = CLICK(Env, QUERY: "Okay" button)']),
    ('Click on the link "in".', ['R1 = CLICK(Env, QUERY: link "in")']),
    ('Enter "Kasey" into the text field and press Submit.',
     ["R1 = TYPE(Env, QUERY: the text field, TEXT: Kasey)", "R2 = CLICK(R1, QUERY: Submit button)"]),
    ('Enter the password "Sfz" into both text fields and press submit.',
     ["R1 = TYPE(Env, QUERY: password, TEXT: Sfz)", "R2 = TYPE(R1, QUERY: verify password, TEXT: Sfz)",
      "R3 = CLICK(R2, QUERY: Submit button)"]),
    ("Select Angola from the list and click Submit.",
     ["R1 = SELECT(Env, QUERY: the list, TEXT: Angola)", "R2 = CLICK(R1, QUERY: Submit button)"]),
    ("Select x1, Qb and click Submit.",
     ['R1 = CLICK(Env, QUERY: "x1")', 'R2 = CLICK(R1, QUERY: "Qb")', "R3 = CLICK(R2, QUERY: Submit button)"]),
    ("Select nothing and click Submit.", ["R1 = CLICK(Env, QUERY: Submit button)"]),
    ("Drag the circle to the box.", None),
])
def test_oracle_annotation(utterance, actions):
    row = oracle_annotation(utterance)
    assert (row and row["actions"]) == actions
    if row:
        assert row["subgoals"][0].startswith("Subgoal 1: ") and len(row["subgoals"]) == len(actions)


def test_oracle_backend_reads_the_task_from_the_prompt():
    from lumos.agent.grounder import ground_prompt_first
    from lumos.agent.planner import plan_prompt_first
    q = "Select Angola from the list and click Submit."
    planner, grounder = OracleBackend("planner", "iterative"), OracleBackend("grounder", "iterative")
    assert planner.complete([plan_prompt_first(q)], ["e1"])[0].text == 'Subgoal 1: Select "Angola" from the list.'
    assert grounder.complete([ground_prompt_first("web_agent", q, "Subgoal 1: ...")], ["e1"])[0].text == \
        "R1 = SELECT(Env, QUERY: the list, TEXT: Angola)"
    assert planner.complete([plan_prompt_first("Drag the circle.")], ["e2"])[0].finish_reason == "no_gold"


def test_score_is_miniwobs_raw_reward():
    assert score_miniwob({"done": True, "reward": 1.0, "env_reward": 0.9})["correct"] is True
    assert score("miniwob", None, None, {"done": True, "reward": 0.6, "env_reward": 0.5})["correct"] is False  # partial
    assert score("miniwob", None, None, {"done": False, "reward": 0.0})["correct"] is False
    assert score("miniwob", None, None, None) == {"correct": False, "em": 0.0, "f1": 0.0, "reward": 0.0, "env_reward": 0.0}
    ids = [e.id for e in load_miniwob(("click-button", "enter-text"), episodes=2)]
    assert ids == ["miniwob-click-button-0", "miniwob-enter-text-0", "miniwob-click-button-1", "miniwob-enter-text-1"]


_why = missing() or (None if importlib.util.find_spec("miniwob") else "the miniwob package is not installed")
live = pytest.mark.skipif(_why is not None, reason=f"headless Chromium unavailable: {_why}")


@live
def test_oracle_solves_miniwob_in_headless_chromium(tmp_path):
    from lumos.agent.executor import miniwob_executor
    examples = load_miniwob(TASKS, episodes=8)                 # 7 tasks x 8 seeds = 56 episodes
    executor = miniwob_executor(shots_dir=tmp_path)
    agent = Agent(OracleBackend("planner", "iterative"), OracleBackend("grounder", "iterative"), executor,
                  "web_agent", "iterative")
    try:
        eps = list(agent.run(examples, batch_size=2))
    finally:
        executor.close()
    assert len(eps) == 56 and len({e.id for e in eps}) == 56
    ok = [score("miniwob", e.prediction, e.gold, e.outcome)["correct"] for e in eps]
    assert sum(ok) / len(ok) >= 0.9, [(e.id, e.question, e.failure, e.outcome.get("reason")) for e, k in zip(eps, ok) if not k]
    for e in eps:       # the instruction came from the live page; one screenshot per step (+ the opened page)
        assert not e.question.startswith("(the instruction")
        n_actions = sum(len(s.get("actions", [])) for s in e.steps)
        shots = sorted((tmp_path / e.id).glob("step_*.png"))
        assert len(shots) == n_actions + 1 and len(e.outcome["screenshots"]) == n_actions + 1
        assert shots[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@live
def test_malformed_actions_on_a_live_page_are_recorded_errors(tmp_path):
    from lumos.agent.executor import miniwob_executor
    (ex,) = load_miniwob(("choose-list",), episodes=1)
    executor = miniwob_executor()
    try:
        env = executor.start(ex)
        assert ex.question.startswith("Select ") and ex.question.endswith(" from the list and click Submit.")
        bad = ["R1 = SELECT(Env, QUERY: the list, TEXT: Atlantis)", "R1 = CLICK(R7, QUERY: Submit)",
               "R1 = TYPE(Env, QUERY: the list, TEXT: x)", "R1 = CLICK(Env, QUERY: )", "R1 = SELECT(Env, QUERY: the list)"]
        errors = [executor.run(g, env)[0].error for g in bad]
        assert "no option 'Atlantis'" in errors[0] and "undefined variable R7" in errors[1]
        assert "no element to act on" in errors[2]              # choose-list has no text field
        assert "empty QUERY" in errors[3] and "TEXT" in errors[4]
        assert "R1" not in env
        outcome = executor.finish(env)
    finally:
        executor.close()
    assert outcome["done"] is False and score("miniwob", None, None, outcome)["correct"] is False


@live
def test_run_agent_miniwob_cli(tmp_path):
    import json

    import run_agent
    out = tmp_path / "mw.jsonl"
    assert run_agent.main(["--task", "miniwob", "--backend", "gold", "--miniwob-tasks", "click-button,enter-text",
                           "--miniwob-episodes", "2", "--out", str(out)]) == 0
    summary = json.loads(out.with_name("mw.summary.json").read_text())
    assert summary["n"] == 4 and summary["metrics"]["accuracy"] == 1.0 and summary["metrics"]["success_enter-text"] == 1.0
    assert len(list((tmp_path / "mw_screenshots" / "miniwob-enter-text-1").glob("step_*.png"))) == 3
    with pytest.raises(SystemExit):
        run_agent.main(["--task", "miniwob", "--miniwob-tasks", "book-flight"])
