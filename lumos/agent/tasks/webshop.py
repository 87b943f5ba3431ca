"""WebShop: episodes (one per goal), gold Lumos trajectories, and the metric (WebShop's reward).

An episode is goal i of the shop's shuffled goals (`webshop-test-i`); the executor opens session
`...fixed_i`, whose page states the instruction. The gold trajectory, in the Lumos plan/ground format
of the 2-shot exemplars, searches the instruction as Lumos does, goes to the target product (turning
result pages with `next >` when it is not on the first; searching its title when it is not in the top
50 at all), reads its features, clicks the product's option that best matches each goal option, and
buys:

    Subgoal 1: Search two relevant items and the product names according to the instruction.
        R1 = Search(i need a ... dollars)
    Subgoal 2: Select the most relevant features of item b0a1b2c3d4.
        R2 = Click(b0a1b2c3d4); R3 = FeatureRetrieve(R2, Query: i need a ... dollars)
    Subgoal 3: Buy this item by selecting its relevant features.
        R4 = Click(auburn); R5 = Click(16 inch); R6 = Click(buy now)

Metric: the reward of the purchase (0 when nothing was bought); success = reward 1, as in WebShop.
"""
from lumos.envs.webshop.reward import normalize_color, token_set_ratio


def gold_trajectory(shop, goal: dict) -> dict:
    """{"subgoals": [...], "actions": [one grounding per subgoal]} reaching reward 1 for `goal`."""
    target, instruction = goal["asin"], goal["instruction_text"]
    query = instruction
    hits = [p["asin"] for p in shop.search(query.lower().split(" "))]
    if target not in hits:
        query = shop.cat.by_asin[target]["Title"]
        hits = [p["asin"] for p in shop.search(query.lower().split(" "))]
    rank = hits.index(target)   # a title search always finds its product
    clicks = ["next >"] * (rank // 10) + [target.lower()]
    first = [f"R{k} = Click({c})" for k, c in enumerate(clicks, 2)]
    n = 1 + len(clicks)
    first.append(f"R{n + 1} = FeatureRetrieve(R{n}, Query: {instruction})")
    values = [v for vs in shop.cat.by_asin[target]["options"].values() for v in vs]
    chosen = []
    for g in goal["goal_options"]:   # the product's value that WebShop's option reward would match best
        v = max(values, key=lambda v: token_set_ratio(normalize_color(v), normalize_color(g)), default=None)
        if v is not None and v not in chosen:
            chosen.append(v)
    buy = [f"R{n + 2 + i} = Click({v})" for i, v in enumerate(chosen + ["buy now"])]
    return {"subgoals": ["Subgoal 1: Search two relevant items and the product names according to the instruction.",
                         f"Subgoal 2: Select the most relevant features of item {target.lower()}.",
                         "Subgoal 3: Buy this item by selecting its relevant features."],
            "actions": [f"R1 = Search({query})", "; ".join(first), "; ".join(buy)]}


def load_webshop(data_dir=None, limit: int | None = None) -> list:
    """-> [Example("webshop-test-i", instruction, target asin, meta={"goal_index": i, "gold": {...}})]
    for the goals of `data_dir` (default data/webshop, generated on first use)."""
    from lumos.agent.tasks import Example
    from lumos.envs.webshop.generate import ensure_default_data
    from lumos.envs.webshop.shop import Shop
    shop = Shop.load(data_dir or ensure_default_data())
    goals = shop.cat.goals[:limit] if limit is not None else shop.cat.goals
    return [Example(f"webshop-test-{i}", g["instruction_text"], g["asin"],
                    meta={"goal_index": i, "gold": gold_trajectory(shop, g)}) for i, g in enumerate(goals)]


def score_webshop(outcome: dict | None) -> dict:
    """{"correct": reward == 1, "reward": the purchase's reward (0 without one), ...}."""
    reward = float((outcome or {}).get("reward") or 0.0)
    ok = abs(reward - 1.0) < 1e-9
    return {"correct": ok, "reward": reward, "em": float(ok), "f1": reward}
