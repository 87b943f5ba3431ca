"""lumos/prompts.py must hold the paper's strings character for character."""
import json
from pathlib import Path

from lumos import prompts

T = json.loads((Path(__file__).parents[1] / "data/lumos/prompt_templates.json").read_text())


def test_chat_serialisation():
    for role, ours in [("user", prompts.USER_TURN), ("assistant", prompts.ASSISTANT_TURN)]:
        assert ours == T["chat_serialisation"][role]


def test_planner_strings():
    assert prompts.PLAN_USER_FIRST == T["plan_user_first"]
    assert prompts.PLAN_KEEP_GOING + "{subgoal_line}" == T["plan_iterative_assistant_next"]
    assert prompts.PLAN_STOP == T["plan_iterative_assistant_stop"]
    assert prompts.PLAN_FEEDBACK == T["plan_iterative_user_feedback_nonweb"].replace("{result}", "{result}")
    assert prompts.plan_feedback(2, "24") == "The executed result for Subgoal 2 is 24. Should we stop planning?"
    assert prompts.plan_feedback(1, "", "web_agent", "Subgoal 1: Enter the site.") == \
        T["plan_iterative_user_feedback_web"].format(subgoal_text_with_first_letter_lowercased="enter the site")


def test_ground_prefixes():
    for fam, key in [("maths", "ground_prefix_maths"), ("complex_qa", "ground_prefix_complex_qa"),
                     ("web_agent", "ground_prefix_web_agent"), ("webshop", "ground_prefix_webshop_eval_only")]:
        assert prompts.GROUND_PREFIX[fam] == T[key]


def test_ground_turns():
    pre = prompts.GROUND_PREFIX["maths"]
    assert prompts.ground_user_first("maths", "Q?", "Subgoal 1: A.") == \
        T["ground_iterative_user_first"].format(ground_prefix=pre, task="Q?", subgoal_line="Subgoal 1: A.")
    assert prompts.ground_user_next("Subgoal 2: B.") == T["ground_iterative_user_next"].format(subgoal_line="Subgoal 2: B.")
    assert prompts.ground_user_next("Subgoal 3: C.", ["x", "y"]) == \
        T["ground_iterative_user_next_complex_qa"].format(subgoal_line="Subgoal 3: C.", r1="x", r2="y")
    assert prompts.ground_user_onetime("maths", "Q?", ["Subgoal 1: A.", "Subgoal 2: B."]) == \
        T["ground_onetime_user"].replace("{subgoals_joined_by_'; '}", "Subgoal 1: A.; Subgoal 2: B.").format(
            ground_prefix=pre, task="Q?")
