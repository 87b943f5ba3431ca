"""10,000+ malformed WebShop actions: nothing uncaught, every one recorded, no other session disturbed."""
import random

import pytest

from lumos.agent.executor import ShopExecutor
from lumos.agent.tasks import Example
from lumos.agent.tasks.webshop import gold_trajectory
from lumos.envs.webshop import generate
from lumos.envs.webshop.browser import Browser, InProcess, OverHTTP
from lumos.envs.webshop.server import serve
from lumos.envs.webshop.shop import Shop

ODD = ["", " ", "\x00", "\u202e", "\ufeff", "e\u0301", "𝔘𝔫𝔦", "💥🛒", "中文商品", "Ωmega", "\t\n", "%2F..%2F", "../../etc",
       "'; DROP TABLE x; --", "{{7*7}}", "<script>alert(1)</script>", "]", "[", "((", "))", "R", "R0", "R999", "Query:",
       "buy now", "< prev", "next >", "back to search", "search", "description", "B0", "b0ZZZZZZZZ", "nan", "{}", "[]"]


def malformed(rng: random.Random, huge: bool = True) -> str:
    """One grounding that is wrong in some way: unknown items, odd Unicode, huge queries, clicks out of
    state, broken syntax, wrong argument shapes, undefined variables."""
    junk = "".join(rng.choice(ODD) for _ in range(rng.randint(1, 4)))
    kind = rng.randrange(10)
    if kind == 0:
        return f"R1 = Click({junk})"
    if kind == 1:
        return f"R2 = Click({rng.choice(['buy now', '< prev', 'next >', 'features', 'reviews', 'description'])})"
    if kind == 2:
        n = rng.choice([2001, 5000, 150_000]) if huge else 2001
        return f"R3 = Search({'x' * n})"
    if kind == 3:
        return f"R4 = Search({junk})"
    if kind == 4:
        return f"R5 = FeatureRetrieve(R{rng.randint(1, 9)}, Query: {junk})" if rng.random() < 0.5 else f"R5 = FeatureRetrieve({junk})"
    if kind == 5:
        return f"R6 = Pick(Item_names: R{rng.randint(1, 9)}, Item_features: [{junk}], Query: {junk})"
    if kind == 6:
        return rng.choice(["R7 = Click(", "Click)", "R8 = Nope(x)", "= Click(x)", "R9 = Search(a) trailing", junk])
    if kind == 7:
        return f"R10 = Click(R{rng.randint(1, 12)})"
    if kind == 8:
        return f"R11 = Click({rng.choice(['b0', 'B0', 'x'])}{rng.randrange(16 ** 8):08x})"
    return f"R12 = Pick({junk})"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return Shop.load(generate.write(tmp_path_factory.mktemp("webshop"), n_products=48, seed=4))


def test_fuzz_10000_malformed_actions_in_process(shop):
    rng = random.Random(0)
    executor = ShopExecutor(InProcess(shop))
    envs = [executor.start(Example(f"f{k}", "", None, meta={"goal_index": k})) for k in range(8)]
    # a witness session follows its gold trajectory, one grounding between fuzz bursts
    witness = executor.start(Example("w", "", None, meta={"goal_index": 9}))
    gold = gold_trajectory(shop, shop.cat.goals[9])["actions"]
    witness_sid = witness["Env"].sid
    n_actions, n_errors = 0, 0
    for burst in range(40):
        seen = (witness["Env"].observation, dict(shop.sessions[witness_sid]))
        for _ in range(250):
            env = rng.choice(envs)
            records = executor.run(malformed(rng), env)   # must not raise
            n_actions += len(records)
            n_errors += sum(r.error is not None for r in records)
            assert all((r.error is None) != (r.result is None) for r in records)
        assert (witness["Env"].observation, dict(shop.sessions[witness_sid])) == seen   # untouched by the others
        if burst < len(gold):
            assert all(r.error is None for r in executor.run(gold[burst], witness))
    assert n_actions >= 10_000 and n_errors > 0.7 * n_actions
    assert executor.finish(witness)["reward"] == 1.0
    for env in envs:       # the fuzzed sessions still work
        env["Env"].done or env["Env"].step("click[back to search]")


def test_fuzz_1000_malformed_actions_over_http(shop):
    server = serve(shop, "127.0.0.1", 0)
    try:
        rng = random.Random(1)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        browsers = [Browser(OverHTTP(url), f"hf{k}-fixed_{k}") for k in range(4)]
        for b in browsers:
            b.reset()
        for _ in range(1000):
            b = rng.choice(browsers)
            junk = "".join(rng.choice(ODD) for _ in range(rng.randint(1, 4)))
            action = rng.choice([f"click[{junk}]", f"search[{junk}]", f"search[{'q' * 3000}]", junk, "click[buy now]",
                                 f"click[{rng.choice(b.clickables or ['x'])}]"])
            obs, reward, done, info = b.step(action)   # must not raise
            assert isinstance(obs, str) and (done or reward == 0.0)
        fresh = Browser(OverHTTP(url), "after-fixed_0")
        assert fresh.reset().startswith("WebShop [SEP] Instruction:")   # the server survived
    finally:
        server.shutdown()
        server.server_close()
