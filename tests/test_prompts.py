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


def test_one_chat_builder_for_training_and_inference():
    """prompts.user_turn is the user turn of the training string and of every inference prompt: the
    planner's, the grounder's, the QA tool's, the ranker's and the WebShop shots all start their open
    assistant turn exactly where the training serialisation of the same message would."""
    from lumos.agent.grounder import ground_prompt_append, ground_prompt_first, ground_prompt_onetime
    from lumos.agent.planner import plan_prompt_append, plan_prompt_first
    from lumos.train.tokenize import serialize

    def trained(content):     # the training string of one user turn, then the assistant header
        return serialize([{"role": "user", "content": content}]) + prompts.ASSISTANT_HEADER

    assert plan_prompt_first("Q?") == trained(prompts.plan_user_first("Q?")) == \
        "<|user|>\n" + prompts.PLAN_USER_FIRST.format(task="Q?") + "\n<|assistant|>\n"
    for fam in ("maths", "complex_qa", "web_agent", "sql"):
        assert ground_prompt_first(fam, "Q?", "Subgoal 1: A.") == trained(prompts.ground_user_first(fam, "Q?", "Subgoal 1: A."))
        assert ground_prompt_onetime(fam, "Q?", ["Subgoal 1: A."]) == trained(prompts.ground_user_onetime(fam, "Q?", ["Subgoal 1: A."]))
    assert plan_prompt_append("Subgoal 1: A.", 1, "24") == "Subgoal 1: A.\n\n" + trained(prompts.plan_feedback(1, "24"))
    assert ground_prompt_append("R1 = Calculator(2)", "Subgoal 2: B.") == \
        "R1 = Calculator(2)\n\n<|user|>\nSubgoal to be grounded: Subgoal 2: B.\n<|assistant|>\n"
    assert prompts.qa_prompt("Q?", ["p"]) == trained(prompts.QA_USER.format(question="Q?", context="p"))
    assert prompts.webshop_shots("grounder").startswith(prompts.chat_prompt(prompts.ground_user_first(
        "webshop", "Find me slim fit, loose fit women's tops, tees & blouses with long sleeve, short sleeve with color: "
        "a01#black, and size: large, and price lower than 50.00 dollars",
        "Subgoal 1: Search two relevant items and the product names according to the instruction.")))


def test_a_result_at_the_end_of_a_user_turn_is_stripped_as_in_training():
    """The copies disagreed here: training strips every content; the inference builders kept a result's
    trailing whitespace where the result ends the user turn (WebShop's feedback, complex QA's grounder
    results). One builder: stripped, as the modules were trained."""
    from lumos.agent.grounder import ground_prompt_append
    from lumos.agent.planner import plan_prompt_append
    assert plan_prompt_append("Subgoal 1: A.", 1, "shoes \n", "webshop").endswith("for Subgoal 1 is shoes\n<|assistant|>\n")
    assert ground_prompt_append("R1 = QA(x)", "Subgoal 2: B.", {1: "Paris\n"}).endswith(
        "The execution result for Subgoal 1 is Paris\n<|assistant|>\n")
