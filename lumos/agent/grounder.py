"""The grounding module: build the grounder's prompts as the paper's inference did (prompts.chat_prompt).

Lumos-I grounds one subgoal per turn and keeps the whole conversation:

    <|user|>\\n{GROUND_PREFIX[family]}Task: {question} \\nSubgoal to be grounded: {subgoal}\\n<|assistant|>\\n
    {previous actions}\\n\\n<|user|>\\nSubgoal to be grounded: {subgoal}\\n<|assistant|>\\n        (later turns)

for complex QA the later turns also list the earlier results ("The grounding could be based on the
following results: ..."). Lumos-O grounds the whole plan in one turn:

    <|user|>\\n{GROUND_PREFIX[family]}Task: {question} \\nSubgoals to be grounded: {plan}\\n<|assistant|>\\n

The grounder answers one line: actions "R1 = Calculator(...); R2 = ..." that the executor parses.
"""
from lumos import prompts


def ground_prompt_first(family: str, question: str, subgoal: str) -> str:
    """The Lumos-I grounder's first prompt: action list, task, first subgoal (WebShop: after its 2 shots)."""
    shots = prompts.webshop_shots("grounder") if family == "webshop" else ""
    return shots + prompts.chat_prompt(prompts.ground_user_first(family, question.strip(), subgoal.strip()))


def ground_prompt_append(generation: str, subgoal: str, results: list[str] | None = None) -> str:
    """What Lumos-I appends after the grounder's previous generation to ground the next subgoal.

    `results` (complex QA only): the executed value of every earlier subgoal, in order.
    """
    return prompts.chat_prompt_next(generation, prompts.ground_user_next(subgoal.strip(), results))


def ground_prompt_onetime(family: str, question: str, plan: str | list[str]) -> str:
    """The Lumos-O grounder's single prompt. `plan` is the planner's line (the paper pastes it as
    generated, stripped) or a list of subgoal lines, joined by "; "."""
    subgoals = [plan.strip()] if isinstance(plan, str) else [s.strip() for s in plan]
    return prompts.chat_prompt(prompts.ground_user_onetime(family, question.strip(), subgoals))
