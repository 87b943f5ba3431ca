"""Mind2Web: the released JSON, gold Lumos annotations made from its action traces, and its metrics.

Data (osunlp/Mind2Web): DIR/{train,test_task,test_website,test_domain}/*.json, each a list of tasks

    {"annotation_id", "website", "domain", "subdomain", "confirmed_task": "Find one-way flights ...",
     "action_reprs": ["[combobox]  From* -> TYPE: New York", ...],
     "actions": [{"action_uid", "raw_html", "cleaned_html",
                  "operation": {"op": "CLICK"|"TYPE"|"SELECT", "original_op": ..., "value": ...},
                  "pos_candidates": [{"tag", "attributes" (a JSON string), "backend_node_id", ...}],
                  "neg_candidates": [...]}, ...]}

and optionally MindAct's candidate-generation result, scores_all_data.pkl: {"scores"|"ranks":
{"{annotation_id}_{action_uid}": {backend_node_id: value}}} (read here without executing pickle code).
`data/mind2web/` ships a small hand-written fixture in exactly this schema.

Metrics (Mind2Web, MindAct's evaluator): per step, element accuracy (the chosen element is a positive
candidate), operation F1 (token-set F1 between "OP value" strings, case-sensitive) and step success
(element right and F1 = 1); a task succeeds when all its steps do. Micro averages are over all steps,
macro averages over tasks (Mind2Web's tables report macro). A step the agent never acted on counts 0.
"""
import json
import pickle
import re
from pathlib import Path

from lumos.envs.mind2web import step_elements

SPLITS = ("test_task", "test_website", "test_domain", "train")


# ---------------------------------------------------------------------------------------------
# loading

class _DataOnly(pickle.Unpickler):
    """Unpickles plain containers only: a candidate-score file is data, never code."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a score file holds only dicts, strings and numbers")


def load_scores(path) -> dict:
    """MindAct's candidate ranks: {"{annotation_id}_{action_uid}": {backend_node_id: rank}} from its
    scores_all_data.pkl (or the same structure as .json)."""
    path = Path(path)
    with open(path, "rb") as f:
        data = json.load(f) if path.suffix == ".json" else _DataOnly(f).load()
    ranks = data.get("ranks") if isinstance(data, dict) else None
    if not isinstance(ranks, dict):
        raise ValueError(f"{path}: expected {{'scores': ..., 'ranks': {{sample_id: {{backend_node_id: rank}}}}}}")
    return {sid: {str(k): int(v) for k, v in r.items()} for sid, r in ranks.items()}


def read_split(data_dir, split: str) -> list[dict]:
    """All task dicts of DIR/split/*.json, files in name order."""
    d = Path(data_dir) / split
    files = sorted(d.glob("*.json"), key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
    if not files:
        raise FileNotFoundError(f"no Mind2Web files in {d} (expected {d}/*.json)")
    tasks = []
    for f in files:
        rows = json.loads(f.read_text(encoding="utf-8"))
        tasks += rows if isinstance(rows, list) else [rows]
    return tasks


def load_mind2web(data_dir, split: str = "test_task", limit: int | None = None, scores=None, top_k: int = 50):
    """-> [Example(id="mind2web-{split}-{annotation_id}", question=confirmed_task, answer=gold steps,
    meta={"website", "steps": [[Element...] per step], "gold": {subgoals, actions}})]. The HTML is dropped
    once each step's candidates are described; gold steps are [{"pos": [ids], "op", "value"}]."""
    from tqdm import tqdm

    from lumos.agent.tasks import Example
    if split not in SPLITS:
        raise ValueError(f"unknown Mind2Web split {split!r} (known: {', '.join(SPLITS)})")
    ranks = load_scores(scores) if scores else None
    tasks = read_split(data_dir, split)[:limit]
    out = []
    for t in tqdm(tasks, desc=f"mind2web {split}", unit="task", disable=len(tasks) < 50):
        steps, gold = [], []
        for a in t["actions"]:
            r = ranks.get(f"{t['annotation_id']}_{a['action_uid']}", {}) if ranks is not None else None
            steps.append(step_elements(a, r, top_k))
            gold.append({"pos": [str(c["backend_node_id"]) for c in a["pos_candidates"]],
                         "op": a["operation"]["op"], "value": a["operation"].get("value", "")})
        out.append(Example(f"mind2web-{split}-{t['annotation_id']}", t["confirmed_task"].strip(), gold,
                           meta={"website": t.get("website", ""), "steps": steps, "gold": gold_annotation(t)}))
    return out


# ---------------------------------------------------------------------------------------------
# gold annotations in the Lumos plan/ground format

_REPR = re.compile(r"^\s*\[(?P<tag>[^\]]*)\]\s*(?P<text>.*?)\s*->\s*(?P<op>[A-Z]+)(?::\s*(?P<value>.*))?$", re.S)


def describe_step(action_repr: str, op: str, value: str) -> str:
    """A subgoal sentence for one recorded step: "[combobox]  From* -> TYPE: New York" ->
    "Type New York in the combobox From*" (Lumos's translate_action without its random verb)."""
    m = _REPR.match(action_repr)
    tag, text = (m.group("tag").strip(), " ".join(m.group("text").split())) if m else ("element", "")
    target = f"{tag} {text}".strip()
    if op == "TYPE":
        return f"Type {value} in the {target}"
    if op == "SELECT":
        return f"Select {value} in the {target}"
    return f"Click the {target}"


def gold_annotation(task: dict) -> dict:
    """The task's recorded actions as a Lumos-I annotation {"subgoals", "actions"} (one action per
    subgoal, `Rk = OP(R_{k-1} | Env, QUERY: <subgoal>[, TEXT: value])`)."""
    subgoals, actions = [], []
    for k, (rep, a) in enumerate(zip(task["action_reprs"], task["actions"]), 1):
        op, value = a["operation"]["op"], " ".join(a["operation"].get("value", "").split())
        sentence = describe_step(rep, op, value)
        subgoals.append(f"Subgoal {k}: {sentence}.")
        page = "Env" if k == 1 else f"R{k - 1}"
        actions.append(f"R{k} = {op}({page}, QUERY: {sentence}" + (f", TEXT: {value})" if op != "CLICK" else ")"))
    return {"subgoals": subgoals, "actions": actions}


# ---------------------------------------------------------------------------------------------
# metrics

def op_f1(pred: str, gold: str) -> float:
    """MindAct's operation F1: F1 of the token SETS of "OP value" strings (1 when both are empty)."""
    p, g = set(pred.split()), set(gold.split())
    if not p and not g:
        return 1.0
    tp = len(p & g)
    if tp == 0:
        return 0.0
    precision, recall = tp / len(p), tp / len(g)
    return 2 * precision * recall / (precision + recall)


def op_string(op: str, value: str) -> str:
    """'CLICK' for a click, 'TYPE New York' for typing: what operation F1 compares."""
    return f"{op} {value if op != 'CLICK' else ''}".strip()


def score_steps(predictions: list, gold: list[dict]) -> list[dict]:
    """Per gold step: {"element": 0|1, "f1": float, "success": 0|1}. predictions[k]: {"element", "op",
    "value"} or None; steps beyond the predictions count as not done."""
    out = []
    for k, g in enumerate(gold):
        p = predictions[k] if k < len(predictions) else None
        if not p:
            out.append({"element": 0, "f1": 0.0, "success": 0})
            continue
        element = int(str(p.get("element")) in g["pos"])
        f1 = op_f1(op_string(p.get("op", ""), p.get("value", "")), op_string(g["op"], g["value"]))
        out.append({"element": element, "f1": f1, "success": int(element == 1 and f1 == 1.0)})
    return out


def score_task(predictions: list, gold: list[dict]) -> dict:
    """One task: {"correct": task success, "em": its step success rate, "f1": its mean operation F1,
    "element_acc", "steps": per-step scores}."""
    steps = score_steps(predictions, gold)
    n = max(len(steps), 1)
    return {"correct": bool(steps) and all(s["success"] for s in steps), "em": sum(s["success"] for s in steps) / n,
            "f1": sum(s["f1"] for s in steps) / n, "element_acc": sum(s["element"] for s in steps) / n, "steps": steps}


def aggregate(task_scores: list[dict]) -> dict:
    """Micro (over steps) and macro (over tasks) element accuracy, operation F1, step success rate, and
    task success rate, from score_task results."""
    steps = [s for t in task_scores for s in t["steps"]]
    ns, nt = max(len(steps), 1), max(len(task_scores), 1)
    out = {"element_acc": sum(s["element"] for s in steps) / ns, "op_f1": sum(s["f1"] for s in steps) / ns,
           "step_sr": sum(s["success"] for s in steps) / ns}
    for key, name in (("element_acc", "element"), ("op_f1", "f1"), ("step_sr", "success")):
        out["macro_" + key] = sum(sum(s[name] for s in t["steps"]) / max(len(t["steps"]), 1) for t in task_scores) / nt
    out["task_sr"] = sum(bool(t["correct"]) for t in task_scores) / nt
    out["n_steps"] = len(steps)
    return out
