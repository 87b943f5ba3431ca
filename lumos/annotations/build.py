"""One annotated example -> its rows in the four Lumos datasets.

An annotation is (task, subgoals, actions, results), one entry per subgoal:

    subgoals = ["Subgoal 1: Calculate ...", "Subgoal 2: Calculate ..."]
    actions  = [["R1 = Calculator(48 / 2)"], ["R2 = Calculator(48 + R1)"]]   # actions of each subgoal
    results  = ["24", "72"]                                                  # executed result of each subgoal

Turn structures (allenai/lumos data/process_for_train.py), every string from lumos/prompts.py:

    plan iterative:   U plan_user_first(task) / A "Subgoal 1: ..." / U "The executed result for Subgoal 1
                      is 24. Should we stop planning?" / A "No, I will keep planning. Subgoal 2: ..." / ...
                      / U feedback for the last subgoal / A "Yes, I will stop planning."
    plan onetime:     U plan_user_first(task) / A all subgoals joined by "; "
    ground iterative: U ground_user_first(family, task, subgoal 1) / A its actions joined by "; " /
                      U ground_user_next(subgoal 2) / A ... (one turn pair per subgoal)
    ground onetime:   U ground_user_onetime(family, task, subgoals) / A all actions joined by "; "
"""
from lumos import prompts

KINDS = ("plan_iterative", "plan_onetime", "ground_iterative", "ground_onetime")


def _msg(role, content):
    return {"role": role, "content": content}


def plan_iterative(task, subgoals, results, family="maths"):
    msgs = [_msg("user", prompts.plan_user_first(task))]
    for j, (sg, res) in enumerate(zip(subgoals, results), 1):
        msgs.append(_msg("assistant", sg if j == 1 else prompts.PLAN_KEEP_GOING + sg))
        msgs.append(_msg("user", prompts.plan_feedback(j, res, family, sg)))
    msgs.append(_msg("assistant", prompts.PLAN_STOP))
    return msgs


def plan_onetime(task, subgoals):
    return [_msg("user", prompts.plan_user_first(task)), _msg("assistant", prompts.SUBGOAL_SEP.join(subgoals))]


def ground_iterative(task, subgoals, actions, family="maths"):
    msgs = []
    for j, (sg, acts) in enumerate(zip(subgoals, actions)):
        user = prompts.ground_user_first(family, task, sg) if j == 0 else prompts.ground_user_next(sg)
        msgs += [_msg("user", user), _msg("assistant", prompts.ACTION_SEP.join(acts))]
    return msgs


def ground_onetime(task, subgoals, actions, family="maths"):
    flat = [a for acts in actions for a in acts]
    return [_msg("user", prompts.ground_user_onetime(family, task, subgoals)),
            _msg("assistant", prompts.ACTION_SEP.join(flat))]


def build_rows(dataset: str, id: str, task: str, subgoals: list[str], actions: list[list[str]],
               results: list[str], family: str = "maths") -> dict[str, dict]:
    """Return {kind: row} for the four KINDS, each row in the released format."""
    if not subgoals or not (len(subgoals) == len(actions) == len(results)):
        raise ValueError(f"{id}: need one actions list and one result per subgoal "
                         f"({len(subgoals)} subgoals, {len(actions)} action lists, {len(results)} results)")
    if any(not acts for acts in actions):
        raise ValueError(f"{id}: every subgoal needs at least one action")
    msgs = {
        "plan_iterative": plan_iterative(task, subgoals, results, family),
        "plan_onetime": plan_onetime(task, subgoals),
        "ground_iterative": ground_iterative(task, subgoals, actions, family),
        "ground_onetime": ground_onetime(task, subgoals, actions, family),
    }
    return {k: {"dataset": dataset, "id": id, "messages": m} for k, m in msgs.items()}


def dataset_filename(family: str, kind: str) -> str:
    """HF dataset name as a file: ('maths', 'plan_iterative') -> 'lumos_maths_plan_iterative.jsonl'."""
    return f"lumos_{family}_{kind}.jsonl"
