"""Evaluation tasks: the registry, loaders and the metrics (the final-answer rule is executor.final_answer).

A family with an environment of its own (SQL, WebShop, Mind2Web) keeps its loader and metric in a
module of this package (lumos/agent/tasks/<family>.py) and registers its tasks in TASKS below.

    load_task("gsm8k")      -> [Example("gsm8k-test-0", "Janet's ducks ...", "18"), ...]
    score("gsm8k", "$18.00", "18") -> {"correct": True, "em": 1.0, "f1": 1.0}

Ids are `{task}-{split}-{0-based row index in the file}` (hotpotqa: `hotpotqa-dev-{i}`), the same
numbering as the gold annotations in data/gold/. The paper scored maths by exact string match;
here maths is numeric: `18` = `18.0` = `$18` = `18 dollars`, and `1,000` = `1000`.
"""
import json
import math
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[3] / "data"


@dataclass
class Example:
    id: str
    question: str
    answer: str
    meta: dict = field(default_factory=dict)   # what a family's environment needs (a database name, a goal, ...)


@dataclass(frozen=True)
class Task:
    name: str
    family: str        # "maths" | "complex_qa": which planner/grounder prompts and tools
    path: str          # relative to data/
    split: str


TASKS = {
    "gsm8k": Task("gsm8k", "maths", "gsm8k/test.jsonl", "test"),
    "svamp": Task("svamp", "maths", "svamp/test.json", "test"),
    "hotpotqa": Task("hotpotqa", "complex_qa", "hotpotqa/dev.json", "dev"),
    "strategyqa": Task("strategyqa", "complex_qa", "strategyqa/test.json", "test"),
    # web agents (the Lumos CLICK/TYPE/SELECT actions): lumos/agent/tasks/mind2web.py
    "mind2web": Task("mind2web", "web_agent", "mind2web", "test_task"),
    "miniwob": Task("miniwob", "web_agent", "", "live"),      # live pages in headless Chromium: tasks/miniwob.py
    # WebShop (Search/FeatureRetrieve/Pick/Click on a shop session): tasks/webshop.py, lumos/envs/webshop/
    "webshop": Task("webshop", "webshop", "webshop", "test"),
    # InterCode-SQL (SHOW TABLES / DESCRIBE / fragments / SELECT on a database per task): tasks/intercode_sql.py
    "intercode_sql": Task("intercode_sql", "sql", "intercode-sql/ic_spider_dev.json", "all"),
    "intercode_sql_test": Task("intercode_sql_test", "sql", "intercode-sql/ic_spider_dev.json", "test"),
}


def _number_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def gsm8k_answer(solution: str) -> str:
    """The value after '####' in a GSM8K solution, thousands separators removed ('1,080' -> '1080')."""
    if "####" not in solution:
        raise ValueError("GSM8K solution without '####'")
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


def load_task(name: str, limit: int | None = None, data_dir: Path | str = DATA_DIR) -> list[Example]:
    """The evaluation examples of `name` (a key of TASKS), the first `limit` of them if given."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    task = TASKS[name]
    path = Path(data_dir) / task.path
    if name == "mind2web":
        from lumos.agent.tasks.mind2web import load_mind2web
        return load_mind2web(path, task.split, limit)
    if name == "miniwob":
        from lumos.agent.tasks.miniwob import load_miniwob
        return load_miniwob(limit=limit)
    if task.family == "sql":
        from lumos.agent.tasks.intercode_sql import load_intercode_sql
        return load_intercode_sql(path, task.split, limit)
    if name == "webshop":
        from lumos.agent.tasks.webshop import load_webshop
        return load_webshop(None if Path(data_dir) == DATA_DIR else path, limit)   # default: generated on first use
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    else:
        rows = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for i, row in enumerate(rows[:limit] if limit is not None else rows):
        if name == "gsm8k":
            q, a = row["question"], gsm8k_answer(row["answer"])
        elif name == "svamp":
            q, a = f"{row['Body'].strip()} {row['Question'].strip()}", _number_text(row["Answer"])
        elif name == "strategyqa":
            q, a = row["question"], str(bool(row["answer"]))
        else:
            q, a = row["question"], row["answer"]
        out.append(Example(f"{name}-{task.split}-{i}", q, a))
    return out


# ---------------------------------------------------------------------------------------------
# maths: numbers with tolerance

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:\s*/\s*(?:\d+\.?\d*|\.\d+))?")


def parse_number(text) -> float | None:
    """The number a prediction states: the whole text when it is one ('$1,000.50', '-9/8', '40%'),
    else the last number in it ('18 dollars', 'x = 5'). None when there is none."""
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    s = _THOUSANDS.sub("", str(text)).replace("$", "").replace("€", "").replace("£", "").replace("−", "-")
    found = _NUMBER.findall(s)
    if not found:
        return None
    try:
        return float(Fraction(found[-1].replace(" ", "")))
    except (ValueError, ZeroDivisionError):
        return None


def numbers_match(pred: float | None, gold: float | None) -> bool:
    """Equal up to 1e-6 relative (a result shown rounded, 0.333333 or 9.999999, still counts, while
    99999.5 is not 100000), or equal at the gold's own precision when the gold is written with
    decimals (33.333333 for a gold 33.33)."""
    if pred is None or gold is None or math.isnan(pred):
        return False
    if math.isclose(pred, gold, rel_tol=1e-6, abs_tol=1e-6):
        return True
    decimals = len(repr(gold).split(".")[1].rstrip("0")) if "." in repr(gold) and "e" not in repr(gold) else 0
    return decimals > 0 and round(pred, decimals) == gold


# ---------------------------------------------------------------------------------------------
# HotpotQA: SQuAD normalisation, EM and F1 (with HotpotQA's yes/no rule)

def normalize_answer(s: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace (SQuAD v1.1)."""
    s = str(s).lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1_score(pred: str, gold: str) -> float:
    p, g = normalize_answer(pred), normalize_answer(gold)
    if (p in ("yes", "no", "noanswer") or g in ("yes", "no", "noanswer")) and p != g:
        return 0.0     # HotpotQA's official rule: yes/no answers get no partial credit
    pt, gt = p.split(), g.split()
    common = sum((Counter(pt) & Counter(gt)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pt), common / len(gt)
    return 2 * precision * recall / (precision + recall)


# ---------------------------------------------------------------------------------------------
# StrategyQA: yes / no

def to_bool(text) -> bool | None:
    """'yes'/'True'/'true.' -> True, 'No, because ...' -> False, anything else -> None."""
    if isinstance(text, bool):
        return text
    first = normalize_answer(text).split()[:1]
    if first and first[0] in ("yes", "true"):
        return True
    if first and first[0] in ("no", "false"):
        return False
    return None


def score(task: str, prediction, gold, outcome: dict | None = None) -> dict:
    """-> {"correct": bool, "em": float, "f1": float, ...} for one example. A None prediction is wrong.
    outcome: what the episode's executor reported at finish (Executor.finish), for the interactive
    families whose metric needs the environment (a database, a shop's reward)."""
    family = TASKS[task].family if task in TASKS else task
    if task == "mind2web":   # the steps the episode acted on, against the recorded ones
        from lumos.agent.tasks.mind2web import score_task
        return score_task((outcome or {}).get("steps", []), gold)
    if task == "miniwob":    # MiniWoB's own reward, read from the page when the episode finished
        from lumos.agent.tasks.miniwob import score_miniwob
        return score_miniwob(outcome)
    if family == "sql":       # InterCode's reward of the episode's last SELECT; success = reward 1
        from lumos.agent.tasks.intercode_sql import score_sql
        return score_sql(outcome)
    if task == "webshop":    # WebShop's reward for the purchase (0 without one); success = reward 1
        from lumos.agent.tasks.webshop import score_webshop
        return score_webshop(outcome)
    if task == "strategyqa":
        pb, gb = to_bool(prediction), to_bool(gold)
        ok = pb is not None and pb == gb
        return {"correct": ok, "em": float(ok), "f1": float(ok)}
    if family == "maths":
        ok = numbers_match(parse_number(prediction), parse_number(gold))
        return {"correct": ok, "em": float(ok), "f1": float(ok)}
    if prediction is None:
        return {"correct": False, "em": 0.0, "f1": 0.0}
    em = normalize_answer(prediction) == normalize_answer(gold)
    return {"correct": em, "em": float(em), "f1": f1_score(prediction, gold)}
