"""WebShop over HTTP: the project's server on 127.0.0.1, the adapter parsing its pages, a load check."""
import json
import random
import threading

import pytest

from lumos.envs.webshop import generate
from lumos.envs.webshop.browser import Browser, InProcess, OverHTTP, ShopError
from lumos.envs.webshop.server import serve
from lumos.envs.webshop.shop import Shop


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return generate.write(tmp_path_factory.mktemp("webshop"), n_products=48, seed=3)


@pytest.fixture(scope="module")
def served(data_dir):
    shop = Shop.load(data_dir)
    server = serve(shop, "127.0.0.1", 0)
    yield shop, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _walk(b: Browser, shop: Shop, goal_index: int, rng: random.Random) -> list:
    """A fixed but varied trajectory for goal `goal_index`; returns every (observation, reward, done, info)."""
    goal = shop.cat.goals[goal_index]
    out = [b.reset()]
    actions = [f"search[{goal['instruction_text']}]", "click[next >]", "click[< prev]",
               f"search[{shop.cat.by_asin[goal['asin']]['Title']}]", f"click[{goal['asin'].lower()}]",
               "click[description]", "click[< prev]", "click[reviews]", "click[< prev]"]
    actions += [f"click[{o}]" for o in goal["goal_options"]] + [rng.choice(["click[features]", "click[description]"]), "click[nope]", "click[< prev]",
                                                                "click[buy now]"]
    for a in actions:
        out.append(b.step(a))
    return out


def test_adapter_sees_the_same_pages_as_the_embedded_shop(served, data_dir):
    shop, url = served
    local = Shop.load(data_dir)
    for g in range(4):
        over_http = _walk(Browser(OverHTTP(url), f"h{g}-fixed_{g}"), shop, g, random.Random(g))
        in_proc = _walk(Browser(InProcess(local), f"h{g}-fixed_{g}"), local, g, random.Random(g))
        assert over_http == in_proc
        assert over_http[-1][2] and over_http[-1][1] > 0   # bought (goal options written differently may miss)


def test_unreachable_server_is_one_line():
    b = Browser(OverHTTP("http://127.0.0.1:9", timeout=2), "fixed_0")
    with pytest.raises(ShopError, match="127.0.0.1:9"):
        b.reset()


def test_http_errors_are_clean(served):
    import requests
    shop, url = served
    assert requests.get(url + "/search_results/never-opened/x/1", timeout=10).status_code == 404
    assert requests.get(url + "/", allow_redirects=False, timeout=10).headers["Location"] == "/abc"
    assert requests.post(url + "/fixed_0", data="x" * (70 * 1024), timeout=10).status_code == 413
    assert requests.get(url + "/item_page/fixed_0/%ZZ/%5B%5D/1/%7B%7D", timeout=10).status_code in (400, 404)


def test_run_agent_gold_through_the_server(served, data_dir, tmp_path):
    import run_agent
    shop, url = served
    out = tmp_path / "trace.jsonl"
    assert run_agent.main(["--task", "webshop", "--backend", "gold", "--webshop-data", str(data_dir),
                           "--webshop-url", url, "--limit", "16", "--out", str(out)]) == 0
    summary = json.loads(out.with_name("trace.summary.json").read_text())
    assert summary["metrics"] == {"average_reward": 1.0, "success": 1.0} and summary["n"] == 16
    row = json.loads(out.read_text().splitlines()[0])
    assert row["outcome"]["url"].startswith("/done/")


def test_load_8_sessions_1000_actions_no_leakage(served, data_dir):
    """8 threads, 125 actions each, interleaved on one server; every session sees only its own goal and
    ends with exactly the reward its own actions earn in a private in-process shop."""
    shop, url = served
    results, errors = {}, []

    def worker(k):
        try:
            rng = random.Random(100 + k)
            g = k % len(shop.cat.goals)
            b = Browser(OverHTTP(url), f"load{k}-fixed_{g}")
            goal = shop.cat.goals[g]
            trace = [b.reset()]
            pool = [f"search[{goal['instruction_text']}]", "click[next >]", "click[< prev]", "click[back to search]",
                    f"search[{shop.cat.by_asin[goal['asin']]['Title']}]", f"click[{goal['asin'].lower()}]",
                    "click[features]", "click[description]"] + [f"click[{o}]" for o in goal["goal_options"]]
            actions = [rng.choice(pool) for _ in range(124)] + ["click[buy now]"]
            for a in actions:
                trace.append(b.step(a))
                assert b.instruction in ("", goal["instruction_text"])
            results[k] = (g, actions, trace)
        except Exception as err:   # reported below, with the thread's name
            errors.append(f"{k}: {err!r}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 8
    assert sum(len(a) for _, a, _ in results.values()) == 1000
    for k, (g, actions, trace) in results.items():
        private = Browser(InProcess(Shop.load(data_dir)), f"load{k}-fixed_{g}")
        assert [private.reset()] + [private.step(a) for a in actions] == trace
        assert shop.sessions[f"load{k}-fixed_{g}"]["goal"] is shop.cat.goals[g]
