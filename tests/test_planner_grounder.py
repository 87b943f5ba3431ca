"""Planner/grounder prompts equal the paper's inference templates character for character; parsing."""
import json
from pathlib import Path

from lumos import prompts
from lumos.agent.grounder import ground_prompt_append, ground_prompt_first, ground_prompt_onetime
from lumos.agent.planner import parse_plan_onetime, parse_plan_step, plan_prompt_append, plan_prompt_first

T = json.loads((Path(__file__).parents[1] / "data/lumos/prompt_templates.json").read_text())
Q = "Janet has 16 eggs. She eats 3 and bakes with 4. She sells the rest at $2 each. How much does she make?"
PRE = T["ground_prefix_maths"]


def test_plan_prompts_iterative_and_onetime():
    first = plan_prompt_first(Q + " \n")  # the paper strips the question
    assert first == T["eval_plan_prompt_first"].format(question=Q)
    assert first == ("<|user|>\nPlease provide a reasonable subgoal-based plan to solve the given task.\n"
                     f"Task: {Q}; Initial Environment Description: None.\n<|assistant|>\n")
    gen = "Subgoal 1: Calculate how many eggs are left."
    app = plan_prompt_append(gen + "\n", 1, "9")
    assert app == T["eval_plan_prompt_append"].replace("{value_after_last_'='}", "9").format(
        generated_subgoal=gen, k=1)
    assert app == f"{gen}\n\n<|user|>\nThe executed result for Subgoal 1 is 9. Should we stop planning?\n<|assistant|>\n"


def test_ground_prompts_iterative():
    s1, s2 = "Subgoal 1: Calculate how many eggs are left.", "Subgoal 2: Calculate the money."
    first = ground_prompt_first("maths", Q, s1)
    assert first == T["eval_ground_prompt_first"].format(ground_prefix=PRE, question=Q, subgoal=s1)
    assert first.startswith("<|user|>\nPlease ground the given subgoal") and first.endswith(
        f"Task: {Q} \nSubgoal to be grounded: {s1}\n<|assistant|>\n")
    acts = "R1 = Calculator(16 - 3 - 4)"
    assert ground_prompt_append(acts, s2) == T["eval_ground_prompt_append"].format(generated_actions=acts, subgoal=s2)
    # complex QA: earlier results follow the subgoal (training template ground_iterative_user_next_complex_qa)
    qa = ground_prompt_append("R1 = KnowledgeQuery(Paris)", s2, ["x", "y"])
    assert qa == ("R1 = KnowledgeQuery(Paris)\n\n<|user|>\n" + T["ground_iterative_user_next_complex_qa"].format(
        subgoal_line=s2, r1="x", r2="y") + "<|assistant|>\n")


def test_ground_prompt_onetime():
    plan = "Subgoal 1: Calculate how many eggs are left.; Subgoal 2: Calculate the money."
    p = ground_prompt_onetime("maths", Q, plan + "\n")
    assert p == T["eval_onetime_ground_prompt"].format(ground_prefix=PRE, question=Q, generated_subgoals=plan)
    assert p == ground_prompt_onetime("maths", Q, parse_plan_onetime(plan))
    assert ground_prompt_onetime("complex_qa", "Who?", ["Subgoal 1: A."]).startswith(
        "<|user|>\n" + T["ground_prefix_complex_qa"] + "Task: Who? \nSubgoals to be grounded: Subgoal 1: A.\n")


def test_parse_plan_step():
    assert parse_plan_step("Subgoal 1: Find x.").subgoal == "Subgoal 1: Find x."
    step = parse_plan_step(" No, I will keep planning. Subgoal 2: Multiply R1 by 2.")
    assert (step.kind, step.subgoal) == ("subgoal", "Subgoal 2: Multiply R1 by 2.")
    assert parse_plan_step("Yes, I will stop planning.").kind == "stop"
    assert parse_plan_step(prompts.PLAN_STOP + " ").kind == "stop"
    for bad in ["", "No, I will keep planning.", "I think the answer is 18", "Subgoal 3:  "]:
        assert parse_plan_step(bad).kind == "malformed", bad


def test_parse_plan_onetime():
    assert parse_plan_onetime("Subgoal 1: Add 2; then 3.; Subgoal 2: Double R1.") == [
        "Subgoal 1: Add 2; then 3.", "Subgoal 2: Double R1."]
    assert parse_plan_onetime("nonsense") == []
    assert parse_plan_onetime("Subgoal 1: X.;Subgoal 2:") == ["Subgoal 1: X."]
