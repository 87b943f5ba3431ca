"""WebShop through the agent: the Lumos shop tools, the 2-shot prompts, gold trajectories, run_agent."""
import json

import pytest

from lumos import prompts
from lumos.agent.agent import Agent
from lumos.agent.backends import GoldBackend
from lumos.agent.executor import ShopExecutor
from lumos.agent.planner import plan_prompt_append, plan_prompt_first
from lumos.agent.tasks import score
from lumos.agent.tasks.webshop import load_webshop
from lumos.envs.webshop.browser import InProcess
from lumos.tools.shop import SHOP_TOOLS


@pytest.fixture
def data_dir(webshop_dir):
    return webshop_dir


@pytest.fixture
def shop(webshop_shop):
    return webshop_shop


def _episode(shop, goal_index=0):
    from lumos.agent.tasks import Example
    executor = ShopExecutor(InProcess(shop))
    ex = Example(f"w-{goal_index}", "", None, meta={"goal_index": goal_index})
    env = executor.start(ex)
    return executor, env, ex


def test_tools_follow_lumos_semantics(shop):
    executor, env, ex = _episode(shop, 0)
    goal = shop.cat.goals[0]
    assert ex.question == goal["instruction_text"]        # the page's instruction becomes the question
    r = executor.run(f"R1 = Search({goal['instruction_text']})", env)[0]
    products = env["Env"].page.products
    assert r.error is None and r.result == " ** ".join(f"{a.lower()} - {t}" for a, t, _ in products[:2])
    asin = goal["asin"].lower()
    page = 1
    while asin not in env["Env"].clickables and page < 5:
        executor.run("R9 = Click(next >)", env)
        page += 1
    recs = executor.run(f"R2 = Click({asin}); R3 = FeatureRetrieve(R2, Query: {' '.join(goal['goal_options'])})", env)
    assert [x.error for x in recs] == [None, None]
    options = [v for vs in shop.cat.by_asin[goal["asin"]]["options"].values() for v in vs]
    assert env["R2"].exact == ["back to search", "< prev", "description", "features", "reviews", "buy now"] + options
    assert env["R2"] == repr(env["R2"].exact)             # shown as Lumos showed its Python list
    got = env["R3"].split(", ")
    assert len(got) == min(3, len(options)) and set(got) <= set(options) and got[0] in goal["goal_options"]
    # Pick: the item whose name + features best match the query; the i-th feature variable describes the i-th item
    env["R10"] = "b0aaaaaaaa - Red Garden Hose ** b0bbbbbbbb - Blue Mug"
    env["R11"], env["R12"] = "hose, green", "mug, ceramic, blue"
    assert SHOP_TOOLS["Pick"]("Item_names: R10, Item_features: [R11, R12], Query: a blue ceramic mug", env) == "b0bbbbbbbb"
    # Lumos sorts the feature variables by index: the order written in the brackets does not matter
    assert SHOP_TOOLS["Pick"]("Item_names: R10, Item_features: [R12, R11], Query: a blue ceramic mug", env) == "b0bbbbbbbb"
    assert SHOP_TOOLS["Pick"]("Item_names: R10, Item_features: [R12], Query: a blue ceramic mug", env) == "b0aaaaaaaa"


def test_feature_retrieve_ranks_by_bm25_hand_computed():
    env = {"R2": "['back to search', '< prev', 'description', 'features', 'reviews', 'buy now', "
                 "'natural black', 'auburn', '16 inch', '24 inch']"}
    # BM25 (k1 1.5, b 0.75) over the four options: '16 inch' 1.78, 'auburn' 1.49, '24 inch' 0.65, 'natural black' 0
    assert SHOP_TOOLS["FeatureRetrieve"]("R2, Query: auburn 16 inch", env) == "16 inch, auburn, 24 inch"
    assert SHOP_TOOLS["FeatureRetrieve"]("R2, QUERY: auburn.", env).startswith("auburn, ")


def test_bad_actions_are_recorded_and_change_nothing(shop):
    executor, env, _ = _episode(shop, 1)
    before = env["Env"].observation
    recs = executor.run("R1 = Click(buy now); R2 = Click(R9); R3 = Pick(R1); R4 = Search(); R5 = FeatureRetrieve(R1)", env)
    assert all(r.error for r in recs) and env["Env"].observation == before
    assert "not clickable" in recs[0].error and "undefined variable R9" in recs[1].error
    assert not executor.done(env) and executor.finish(env)["reward"] == 0.0


def test_an_episode_ends_at_buy_now(shop):
    executor, env, _ = _episode(shop, 2)
    goal = shop.cat.goals[2]
    executor.run(f"R1 = Search({shop.cat.by_asin[goal['asin']]['Title']}); R2 = Click({goal['asin'].lower()})", env)
    rec = executor.run("R3 = Click(buy now)", env)[0]
    assert executor.done(env) and float(rec.result) == executor.finish(env)["reward"] > 0
    assert "session is over" in executor.run("R4 = Click(< prev)", env)[0].error


def test_webshop_prompts_are_lumos_eval_prompts():
    shots = prompts.webshop_shots("planner")
    assert shots.count(prompts.USER_HEADER) == 12 and shots.endswith("The execution result for Subgoal 5 is Done.\n<|assistant|>\n\n\n")
    first = plan_prompt_first("find a mug", "webshop")
    assert first == shots + "<|user|>\nPlease provide a reasonable subgoal-based plan to solve the given task.\nTask: find a mug; Initial Environment Description: None.\n<|assistant|>\n"
    assert plan_prompt_append("Subgoal 1: Search.", 1, "b01 - Mug", "webshop").endswith(
        "Subgoal 1: Search.\n\n<|user|>\nThe executed result for Subgoal 1 is b01 - Mug\n<|assistant|>\n")
    g = prompts.webshop_shots("grounder")
    assert ("Subgoal to be grounded: Subgoal 3: Select the most relevant features of item b094q7b3ss.\n<|assistant|>\n"
            "R4 = Click(< prev); R5 = Click(b094q7b3ss); R6 = FeatureRetrieve(R5, Query: Find me slim fit") in g
    assert prompts.strip_shots(first).count(prompts.USER_HEADER) == 1


def test_gold_backend_counts_live_turns_after_the_shots():
    gold = GoldBackend({"x": {"subgoals": ["Subgoal 1: A.", "Subgoal 2: B."], "actions": ["R1 = Search(a)", "R2 = Click(b)"]}},
                       "planner", "iterative")
    p = plan_prompt_first("q", "webshop")
    assert gold.complete([p], ["x"])[0].text == "Subgoal 1: A."
    p += plan_prompt_append("Subgoal 1: A.", 1, "r", "webshop")
    assert gold.complete([p], ["x"])[0].text == "No, I will keep planning. Subgoal 2: B."


def test_gold_trajectories_reach_reward_one(shop, data_dir):
    examples = load_webshop(data_dir)
    assert len(examples) == len(shop.cat.goals) == 48
    rows = {e.id: e.meta["gold"] for e in examples}
    agent = Agent(GoldBackend(rows, "planner", "iterative"), GoldBackend(rows, "grounder", "iterative"),
                  ShopExecutor(InProcess(shop)), "webshop", "iterative")
    eps = list(agent.run(examples, batch_size=8))
    assert len(eps) == 48 and all(e.failure is None for e in eps)
    assert [score("webshop", e.prediction, e.gold, e.outcome)["reward"] for e in eps] == [1.0] * 48
    assert all(len(e.subgoals) == 3 and e.outcome["done"] for e in eps)   # stopped at Buy Now, not by the planner


def test_score_without_a_purchase_is_zero():
    assert score("webshop", None, "B0", {"done": False, "reward": 0.0}) == {"correct": False, "reward": 0.0, "em": 0.0, "f1": 0.0}
    assert score("webshop", "0.5", "B0", {"done": True, "reward": 0.5})["reward"] == 0.5


def test_run_agent_gold(tmp_path, data_dir, capsys):
    import run_agent
    out = tmp_path / "trace.jsonl"
    assert run_agent.main(["--task", "webshop", "--backend", "gold", "--webshop-data", str(data_dir), "--limit", "12",
                           "--out", str(out)]) == 0
    summary = json.loads(out.with_name("trace.summary.json").read_text())
    assert summary["n"] == 12 and summary["metrics"] == {"average_reward": 1.0, "success": 1.0}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["outcome"]["reward"] == 1.0 and rows[0]["steps"][1]["prompt"].startswith(prompts.webshop_shots("grounder"))
    with pytest.raises(SystemExit):
        run_agent.main(["--task", "webshop", "--backend", "gold", "--webshop-url", "ftp://x"])
