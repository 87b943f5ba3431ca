"""MiniWoB++ in a live browser: episodes, the scripted oracle (gold annotations from the instruction),
and the metric (MiniWoB's own reward).

An episode is a task page and a seed: `miniwob-click-button-3`. Its instruction exists only once the
page has generated it, so the executor writes it into example.question when the episode starts. MiniWoB
has no Lumos annotations; `oracle_annotation` writes them from the instruction with a script, one
pattern per task, in the Lumos plan/ground format, and `OracleBackend` replays them as the gold backend
replays Mind2Web's. Success = MiniWoB's raw reward 1.0 (its binary reward; click-checkboxes gives 1.0
only when every box is right).
"""
import re

from lumos.agent.backends import GoldBackend

TASKS = ("click-button", "click-link", "click-option", "click-checkboxes", "enter-text", "enter-password", "choose-list")


def load_miniwob(tasks=TASKS, episodes: int = 10, first_seed: int = 0, limit: int | None = None):
    """-> [Example("miniwob-{task}-{seed}", question=placeholder, answer=None, meta={"task", "seed"})],
    `episodes` seeds per task, tasks interleaved so that any prefix mixes them."""
    from lumos.agent.tasks import Example
    out = [Example(f"miniwob-{t}-{s}", f"(the instruction of MiniWoB++ {t}, seed {s})", None, meta={"task": t, "seed": s})
           for s in range(first_seed, first_seed + episodes) for t in tasks]
    return out[:limit]


_PATTERNS = [
    # (instruction regex, [(subgoal, op, query, text)]) with {0} the first group
    (r'^Click on the "(.+)" button\.$', [('Click the "{0}" button', "CLICK", '"{0}" button', None)]),
    (r'^Click on the link "(.+)"\.$', [('Click the link "{0}"', "CLICK", 'link "{0}"', None)]),
    (r'^Enter "(.+)" into the text field and press Submit\.$',
     [('Type "{0}" into the text field', "TYPE", "the text field", "{0}"), ("Press Submit", "CLICK", "Submit button", None)]),
    (r'^Enter the password "(.+)" into both text fields and press submit\.$',
     [("Type the password into the password field", "TYPE", "password", "{0}"),
      ("Type the password again to verify it", "TYPE", "verify password", "{0}"), ("Press Submit", "CLICK", "Submit button", None)]),
    (r'^Select (.+) from the list and click Submit\.$',
     [('Select "{0}" from the list', "SELECT", "the list", "{0}"), ("Press Submit", "CLICK", "Submit button", None)]),
]
_SELECT_ITEMS = re.compile(r"^Select (.+) and click Submit\.$")   # click-checkboxes, click-option


def oracle_annotation(utterance: str) -> dict | None:
    """The scripted oracle: a MiniWoB instruction -> a Lumos annotation {"subgoals", "actions"} whose
    actions solve the task, or None for an instruction no pattern knows."""
    steps = None
    for pattern, template in _PATTERNS:
        m = re.match(pattern, utterance.strip())
        if m:
            steps = [(g.format(m.group(1)), op, q.format(m.group(1)), t and t.format(m.group(1))) for g, op, q, t in template]
            break
    if steps is None and (m := _SELECT_ITEMS.match(utterance.strip())):
        names = [] if m.group(1) == "nothing" else [n.strip() for n in m.group(1).split(",") if n.strip()]
        steps = [(f'Tick "{n}"', "CLICK", f'"{n}"', None) for n in names] + [("Press Submit", "CLICK", "Submit button", None)]
    if steps is None:
        return None
    subgoals, actions = [], []
    for k, (goal, op, query, text) in enumerate(steps, 1):
        subgoals.append(f"Subgoal {k}: {goal}.")
        page = "Env" if k == 1 else f"R{k - 1}"
        actions.append(f"R{k} = {op}({page}, QUERY: {query}" + (f", TEXT: {text})" if text is not None else ")"))
    return {"subgoals": subgoals, "actions": actions}


_TASK_LINE = re.compile(r"Task: (.*?)(?:; Initial Environment Description: None\.\n| \n)")


class OracleBackend(GoldBackend):
    """The gold backend of MiniWoB++: the annotation of an episode is written by oracle_annotation from
    the instruction its prompt states (the first 'Task: ...' line), the first time it is asked."""

    def __init__(self, role: str, formulation: str):
        super().__init__({}, role, formulation)
        self.name = f"oracle:{role}"

    def _one(self, prompt: str, id_: str):
        if id_ not in self.rows:
            m = _TASK_LINE.search(prompt)
            row = oracle_annotation(m.group(1)) if m else None
            if row is not None:
                self.rows[id_] = row
        return super()._one(prompt, id_)


def score_miniwob(outcome: dict | None) -> dict:
    """{"correct": solved, "em", "f1" (1.0 or 0.0), "reward": MiniWoB's raw reward, "env_reward"}."""
    o = outcome or {}
    ok = bool(o.get("done")) and o.get("reward") == 1.0
    return {"correct": ok, "em": float(ok), "f1": float(ok), "reward": float(o.get("reward", 0.0)),
            "env_reward": float(o.get("env_reward", 0.0))}
