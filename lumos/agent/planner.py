"""The planning module: build the planner's prompts as the paper's inference did, and parse its generations.

A prompt is a chat transcript that ends with an open assistant turn (prompts.chat_prompt, chat_prompt_next):

    <|user|>\\n{plan_user_first(question)}\\n<|assistant|>\\n                     (first turn, both formulations)
    {previous generation}\\n\\n<|user|>\\n{plan_feedback(k, value)}\\n<|assistant|>\\n   (each later Lumos-I turn)

Generations are re-joined with "\\n\\n" before the next <|user|> and without "</s>", exactly as
allenai/lumos eval/*/run_eval.py does (the training serialisation differs: "</s>\\n"). The planner
answers one line per turn: Lumos-I "Subgoal 1: ...", then "No, I will keep planning. Subgoal k: ..."
or "Yes, I will stop planning."; Lumos-O all subgoals on one line joined by "; ".
"""
import re
from dataclasses import dataclass

from lumos import prompts

_SUBGOAL = re.compile(r"Subgoal\s*(\d+)\s*:")
# Lumos-O separates subgoals with "; ", but a subgoal's own text may contain "; ": split only where
# the next "Subgoal k:" starts.
_ONETIME_SPLIT = re.compile(r";\s*(?=Subgoal\s*\d+\s*:)")


def plan_prompt_first(question: str, family: str = "maths") -> str:
    """The planner's first prompt for a task (Lumos-I and Lumos-O alike); WebShop's starts with its 2 shots."""
    shots = prompts.webshop_shots("planner") if family == "webshop" else ""
    return shots + prompts.chat_prompt(prompts.plan_user_first(question.strip()))


def plan_prompt_append(generation: str, k: int, value: str, family: str = "maths", subgoal: str = "") -> str:
    """What Lumos-I appends after the planner's k-th generation once Subgoal k was executed.

    `value` is the executed result of the subgoal's last action (the paper takes the text after the
    last '=' of "R2 = Calculator(R1 * 2) = 18"). Web tasks report the subgoal instead of a value.
    """
    return prompts.chat_prompt_next(generation, prompts.plan_feedback(k, value, family, subgoal))


@dataclass
class PlanStep:
    """One parsed Lumos-I planner generation: kind is 'subgoal', 'stop' or 'malformed'."""
    kind: str
    subgoal: str = ""    # "Subgoal k: ..." with any "No, I will keep planning. " removed


def parse_plan_step(text: str) -> PlanStep:
    """Parse one Lumos-I planner generation.

    "Yes, I will stop planning." anywhere means stop (the paper tests `in`); otherwise the text from the
    first "Subgoal k:" on is the subgoal; anything else is malformed.
    """
    text = text.strip()
    if prompts.PLAN_STOP.rstrip(".") in text:
        return PlanStep("stop")
    m = _SUBGOAL.search(text)
    if m is None or not text[m.end():].strip():
        return PlanStep("malformed")
    return PlanStep("subgoal", text[m.start():].strip())


def parse_plan_onetime(text: str) -> list[str]:
    """Split a Lumos-O plan "Subgoal 1: ...; Subgoal 2: ..." into its subgoal lines ([] when there are none)."""
    text = text.strip()
    m = _SUBGOAL.search(text)
    if m is None:
        return []
    parts = [p.strip() for p in _ONETIME_SPLIT.split(text[m.start():])]
    return [p for p in parts if _SUBGOAL.match(p) and p[_SUBGOAL.match(p).end():].strip()]
