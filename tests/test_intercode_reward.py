"""InterCode's reward (lumos/agent/tasks/intercode_sql.py), hand-worked, and Kendall's tau-b against scipy."""
import math
import random
from decimal import Decimal

import pytest

from lumos.agent.tasks.intercode_sql import aggregate, intercode_reward, kendall_tau_b, score_sql


@pytest.mark.parametrize("agent, gold, reward", [
    ([(1,)], [(1,)], 1.0),                          # one row: tau undefined, the IoU stands
    ([], [], 1.0),                                  # both empty
    ([], [(1,)], 0.0),
    (None, [(1,)], 0.0),                            # no SELECT ran
    ([("a", 1), ("b", 2)], [("a", 1), ("b", 2)], 1.0),
    # same rows, reversed: InterCode's tau between the two orders is -1, so the reward is -1
    ([(3,), (2,), (1,)], [(1,), (2,), (3,)], -1.0),
    # one swap among three: pairs (2,1)(1,2)(3,3) -> 1 discordant, 2 concordant -> tau 1/3 -> 0.33
    ([(2,), (1,), (3,)], [(1,), (2,), (3,)], 0.33),
    # duplicates: intersection {1:1, 2:1} = 2, union {1:2, 2:1} = 3 -> 2/3, tau 1 -> 0.67
    ([(1,), (2,)], [(1,), (1,), (2,)], 0.67),
    # all rows equal: tau undefined, the unrounded IoU 2/3 stands
    ([(1,), (1,)], [(1,), (1,), (1,)], 2 / 3),
    # partial overlap in the wrong order: IoU 2/5, tau -1 -> -0.4
    ([(2,), (1,), (5,)], [(1,), (2,), (3,), (4,)], -0.4),
    ([(None,)], [(None,)], 1.0),                    # NULLs compare as 'None'
    ([(None, 1)], [(1, None)], 0.0),
    ([(1.5,)], [(1.50,)], 1.0),                     # the same float
    ([(0.1 + 0.2,)], [(0.3,)], 0.0),                # str(): 0.30000000000000004 is not 0.3
    ([(Decimal("1.50"),)], [(1.5,)], 0.0),          # a Decimal is not a float, as in InterCode
    ([[1, "a"]], [(1, "a")], 1.0),                  # rows are compared as tuples
])
def test_reward_hand_worked(agent, gold, reward):
    assert intercode_reward(agent, gold) == pytest.approx(reward, abs=1e-12)


def test_kendall_tau_b_hand_worked():
    assert kendall_tau_b([1, 2, 3], [1, 2, 3]) == 1.0
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]) == -1.0
    # x = [1,2,2,3], y = [2,1,3,2]: concordant 2, discordant 2, one tie each side -> 0 / sqrt(5*5)
    assert kendall_tau_b([1, 2, 2, 3], [2, 1, 3, 2]) == 0.0
    # x = [1,2,3], y = [1,1,2]: 2 concordant, 1 tied in y -> 2 / sqrt(3*2)
    assert kendall_tau_b([1, 2, 3], [1, 1, 2]) == pytest.approx(2 / math.sqrt(6))
    assert math.isnan(kendall_tau_b(["a"], ["a"])) and math.isnan(kendall_tau_b(["a", "a"], ["b", "c"]))


def test_kendall_tau_b_matches_scipy():
    """InterCode calls scipy.stats.kendalltau on lists of strings: the same numbers on random data."""
    stats = pytest.importorskip("scipy.stats", reason="scipy (InterCode's reference) is not installed")
    rng = random.Random(0)
    for _ in range(500):
        n, k = rng.randint(2, 15), rng.randint(1, 6)
        x = [str((rng.randint(0, k),)) for _ in range(n)]
        y = [str((rng.randint(0, k),)) for _ in range(n)]
        ours, ref = kendall_tau_b(x, y), float(stats.kendalltau(x, y, nan_policy="omit").statistic)
        assert (math.isnan(ours) and math.isnan(ref)) or ours == pytest.approx(ref, abs=1e-12)


def test_score_and_aggregate():
    scores = [score_sql({"reward": 1.0, "hardness": "easy"}), score_sql({"reward": 0.5, "hardness": "easy"}),
              score_sql({"reward": 1, "hardness": "hard"}), score_sql(None)]
    assert [s["correct"] for s in scores] == [True, False, True, False]
    agg = aggregate(scores)
    assert agg["success"] == 0.5 and agg["reward"] == 0.625
    assert agg["success_easy"] == 0.5 and agg["n_easy"] == 2 and agg["success_hard"] == 1.0
    assert "success_medium" not in agg
