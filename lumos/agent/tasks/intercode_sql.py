"""InterCode-SQL: 1,034 Spider dev questions over 20 databases, the cross-database split, and InterCode's reward.

    load_intercode_sql(split="all")   -> [Example("intercode_sql-dev-0", question, gold SQL, meta={db, hardness, gold}), ...]
    intercode_reward(agent_rows, gold_rows) -> float     (1.0 = success)

The reward is InterCode's (princeton-nlp/intercode, SqlEnv.get_reward), re-derived here:
1. both results become lists of strings, `str(row)` of each row tuple as the database driver returned it;
2. reward = |multiset intersection| / |multiset union| (union = the larger count of each row); both
   empty: 1;
3. when the intersection is not empty, the intersecting rows are listed in each side's own order and
   Kendall's tau-b between the two lists (each string ranked lexicographically, as scipy ranks them)
   scales the reward, which is then rounded to 2 places -- unless tau is undefined (one row, or all
   rows tied), when the unrounded IoU stands. Tau can be negative, so can the reward.
The agent's result is the rows of its last successfully executed SELECT; none at all scores 0.

Corrupt gold. 6 of the 1,034 gold queries do not run on MySQL/MariaDB (a table named `SHOW`,
INTERSECT inside a derived table, `COUNT (*)` with a space). InterCode then compares the agent's rows
with an empty gold result (its get_reward sets the gold observation to [] after the error); we do the
same and mark the outcome `corrupt_gold`, so MariaDB scores are InterCode's. On SQLite all 1,034 run.

Split. Spider is cross-database: a model is scored on databases it never saw. `TRAIN_DBS` (10 of the
20 databases, 462 questions) may become training annotations (data/prepare.py); the other 10 (572
questions) are `--task intercode_sql_test`. `--task intercode_sql` is all 1,034, as InterCode and the
paper evaluate (for a model not trained on our annotations, e.g. the released Lumos).
"""
import json
import math
from collections import Counter
from pathlib import Path

HARDNESS = ("easy", "medium", "hard", "extra")
# the smaller half of the databases by question count, chosen once and kept fixed
TRAIN_DBS = frozenset({"car_1", "cre_Doc_Template_Mgt", "flight_2", "network_1", "orchestra", "pets_1",
                       "course_teach", "museum_visit", "battle_death", "real_estate_properties"})


def load_intercode_sql(path, split: str = "all", limit: int | None = None) -> list:
    """The tasks of `path` (ic_spider_dev.json) in file order: split 'all', 'train' (TRAIN_DBS) or 'test'
    (the other databases). Ids keep the row number in the file: intercode_sql-dev-{i}."""
    from lumos.agent.tasks import Example
    from lumos.annotations.intercode_sql import gold_annotation
    if split not in ("all", "train", "test"):
        raise ValueError(f"unknown split {split!r} (all, train, test)")
    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for i, row in enumerate(rows):
        if split != "all" and (row["db"] in TRAIN_DBS) != (split == "train"):
            continue
        meta = {"db": row["db"], "hardness": row["hardness"]}
        ex = Example(f"intercode_sql-dev-{i}", row["query"], row["gold"], meta)
        columns = [c for cols in row["db_tables"].values() for c in cols]
        ex.meta["gold"] = gold_annotation(ex.id, ex.question, row["gold"], list(row["db_tables"]), columns)
        out.append(ex)
        if limit is not None and len(out) >= limit:
            break
    return out


# ---------------------------------------------------------------------------------------------
# the reward

def kendall_tau_b(x: list, y: list) -> float:
    """Kendall's tau-b of paired observations (any comparable values), NaN when undefined (fewer than
    2 pairs, or one side all tied). O(n log n): sort by (x, y), count discordant pairs as inversions of
    y with a Fenwick tree (Knight's method, the one scipy.stats.kendalltau uses)."""
    n = len(x)
    if n != len(y):
        raise ValueError("x and y must have the same length")
    if n < 2:
        return math.nan
    pairs = sorted(zip(x, y))
    ranks = {v: r for r, v in enumerate(sorted(set(y)), 1)}
    tree, seen, discordant = [0] * (len(ranks) + 1), 0, 0
    for _, yv in pairs:                       # earlier in x order with a strictly larger y: discordant
        r = ranks[yv]
        le, i = 0, r
        while i > 0:
            le += tree[i]
            i -= i & -i
        discordant += seen - le
        i = r
        while i < len(tree):
            tree[i] += 1
            i += i & -i
        seen += 1

    def tied(keys) -> int:
        return sum(c * (c - 1) // 2 for c in Counter(keys).values())
    total = n * (n - 1) // 2
    tx, ty, txy = tied(x), tied(y), tied(pairs)
    denominator = math.sqrt((total - tx) * (total - ty))
    if denominator == 0:
        return math.nan
    return (total - tx - ty + txy - 2 * discordant) / denominator


def _in_order(items: list[str], keep: Counter) -> list[str]:
    """The items of `items` that are in the multiset `keep`, in order, each at most keep[item] times."""
    keep, out = Counter(keep), []
    for it in items:
        if keep[it] > 0:
            keep[it] -= 1
            out.append(it)
    return out


def intercode_reward(agent_rows, gold_rows) -> float:
    """InterCode's reward of one task. agent_rows / gold_rows: lists of row tuples (None for the agent:
    no result, which scores 0)."""
    if agent_rows is None or gold_rows is None:
        return 0.0
    agent, gold = [str(tuple(r)) for r in agent_rows], [str(tuple(r)) for r in gold_rows]
    ca, cg = Counter(agent), Counter(gold)
    inter, union = ca & cg, ca | cg
    if not union:
        return 1.0
    reward = sum(inter.values()) / sum(union.values())
    if inter:
        tau = kendall_tau_b(_in_order(agent, inter), _in_order(gold, inter))
        if not math.isnan(tau):
            reward = round(tau * reward, 2)
    return reward


def score_sql(outcome: dict | None) -> dict:
    """One episode's score from its executor outcome: success = reward 1 (InterCode's success rate)."""
    reward = float((outcome or {}).get("reward", 0.0))
    return {"correct": reward == 1.0, "reward": reward, "hardness": (outcome or {}).get("hardness")}


def aggregate(scores: list[dict]) -> dict:
    """Success rate and mean reward, overall and per hardness."""
    out = {"success": sum(s["correct"] for s in scores) / max(len(scores), 1),
           "reward": sum(s["reward"] for s in scores) / max(len(scores), 1)}
    for h in HARDNESS:
        part = [s for s in scores if s.get("hardness") == h]
        if part:
            out[f"success_{h}"] = sum(s["correct"] for s in part) / len(part)
            out[f"n_{h}"] = len(part)
    return out
