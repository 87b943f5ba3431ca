"""KV reuse: a prompt whose prefix was computed before prefills only its new tokens, and decodes the
same tokens; Lumos-I traces of the shipped demo models are identical with and without reuse."""
import os
from pathlib import Path

import pytest
import torch

from lumos.agent.agent import Agent
from lumos.agent.backends import LocalBackend
from lumos.agent.executor import maths_executor
from lumos.agent.tasks import load_task
from lumos.model import ModelArgs, Tokenizer, Transformer, decode_tokens, generate
from lumos.model.generate import prefill_groups
from lumos.model.prefix_cache import PrefixCache, common_prefix

torch.set_num_threads(1)
ROOT = Path(__file__).parents[1]


def tiny_model(seed=0, vocab=32000) -> Transformer:
    args = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=vocab, max_seq_len=128)
    return Transformer(args).init_weights(seed=seed, std=0.2).eval()


def test_common_prefix_by_hand():
    assert common_prefix([1, 2, 3], [1, 2, 3, 4]) == 3
    assert common_prefix([1, 2, 3], [1, 5, 3]) == 1
    assert common_prefix([7], [1]) == 0
    assert common_prefix([], [1]) == 0
    a = list(range(100))
    assert common_prefix(a, a[:63] + [-1] + a[64:]) == 63


def test_prefill_groups_by_hand():
    # rows sorted by new tokens; a group keeps rows with >= 2/3 of its first row's tokens
    assert prefill_groups([180, 150, 120, 100, 60, 40, 35, 30]) == [(0, 3, 180), (3, 4, 100), (4, 6, 60), (6, 8, 35)]
    assert prefill_groups([7]) == [(0, 1, 7)] and prefill_groups([5, 5, 5]) == [(0, 3, 5)]


def test_reused_prefix_decodes_the_same_tokens_and_keeps_the_same_keys():
    model = tiny_model()
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 32000, (n,), generator=g).tolist() for n in (9, 23, 5, 14)]
    reuse = [6, 20, 0, 1]  # rows with long, short and no cached prefix: holes between prefix and new tokens
    full_kv = []
    full, why = decode_tokens(model, prompts, 10, eos_id=None, kv_out=full_kv)
    assert len(set(full[0])) > 1 and why == ["length"] * 4
    # keys/values of each row's first r tokens, computed by a run of its own (prompt p[:r], 1 new token)
    rows = [b for b, r in enumerate(reuse) if r]
    first_kv = []
    decode_tokens(model, [prompts[b][:reuse[b]] for b in rows], 1, eos_id=None, kv_out=first_kv)
    prefixes = [None] * 4
    for b, kv in zip(rows, first_kv):
        assert kv[0].shape == (2, 2, reuse[b], 16)  # (layers, kv heads, tokens, head_dim)
        prefixes[b] = kv
    kv_out = []
    got, why2 = decode_tokens(model, prompts, 10, eos_id=None, prefixes=prefixes, kv_out=kv_out)
    assert got == full and why2 == why
    for b, p in enumerate(prompts):  # prompt + all new tokens but the last, the same as a full prefill's
        assert kv_out[b][0].shape[2] == full_kv[b][0].shape[2] == len(p) + 9
        torch.testing.assert_close(kv_out[b][0], full_kv[b][0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(kv_out[b][1], full_kv[b][1], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="at least one prompt token"):
        decode_tokens(model, [prompts[0][:6]], 2, prefixes=[prefixes[0]])


def test_prefix_cache_match_put_and_evict():
    kv = lambda n: torch.zeros(2, 1, n, 4)  # noqa: E731; 2*n*4 floats = 32n bytes, k and v: 64n
    c = PrefixCache(max_bytes=64 * 20, per_key=2)
    c.put(None, [1, 2, 3], kv(3), kv(3))                  # shared instruction
    assert c.match("a", [1, 2, 3, 9]) == (c.match(None, [1, 2, 3, 9])[0], 3)
    assert c.match("a", [1, 2, 3])[1] == 2                # the last prompt token is always computed
    e = c.put("a", [1, 2, 3, 9, 8], kv(5), kv(5))
    assert c.match("a", [1, 2, 3, 9, 8, 7]) == (e, 5)     # own conversation beats the shared prefix
    assert c.match("b", [1, 2, 3, 9, 8, 7])[1] == 3       # another key sees only the shared one
    c.put("a", [1, 2, 3, 9, 8, 7, 6], kv(7), kv(7))       # the conversation grew: replaces its entry
    assert len(c) == 2 and c.nbytes == 64 * 10
    c.put("a", [5, 5], kv(2), kv(2))                      # a second conversation of "a"
    c.put("a", [6, 6], kv(2), kv(2))                      # per_key 2: "a"'s least recently used goes
    assert c.match("a", [1, 2, 3, 9, 8, 7, 6, 0])[1] == 3 and len(c) == 3
    c.put("c", list(range(14)), kv(14), kv(14))           # 21 tokens > 20: least recently used goes first
    assert c.nbytes == 64 * 19 and c.match("a", [5, 5, 1])[1] == 0 and c.match("a", [6, 6, 1])[1] == 2
    c.forget(["a", "zzz"])                                 # a finished example: its entries go
    assert c.nbytes == 64 * (14 + 3) and c.match("a", [6, 6, 1])[1] == 0 and c.match("a", [1, 2, 3, 4])[1] == 3
    with pytest.raises(ValueError):
        c.put("d", [1, 2], kv(3), kv(3))


def test_generate_computes_the_shared_prefix_once_and_decodes_the_same_text():
    tok = Tokenizer(os.path.join(ROOT, "data", "tokenizer", "llama2.model"))
    model = tiny_model(seed=3)
    head = "<|user|>\nPlease provide a reasonable subgoal-based plan to solve the given task.\nTask: "
    prompts = [head + q for q in ("Tom has 3 apples.", "A train leaves at 9.", "Why?")]
    plain = generate(model, tok, prompts, max_new_tokens=8, stop=())
    cache = PrefixCache()
    once = generate(model, tok, prompts, max_new_tokens=8, stop=(), prefix_cache=cache, keys=["a", "b", "c"])
    n_head = common_prefix(*[tok.encode(p, bos=True) for p in prompts[:2]])
    assert [g.tokens for g in once] == [g.tokens for g in plain]
    assert cache.shared_tokens == n_head and [g.n_cached_tokens for g in once] == [n_head] * 3
    # the second turn of each conversation reuses all of the first turn but its last new token
    again = [p + g.text + "\n<|user|>\nGo on.\n<|assistant|>\n" for p, g in zip(prompts, plain)]
    plain2 = generate(model, tok, again, max_new_tokens=8, stop=())
    twice = generate(model, tok, again, max_new_tokens=8, stop=(), prefix_cache=cache, keys=["a", "b", "c"])
    assert [g.tokens for g in twice] == [g.tokens for g in plain2]
    assert cache.shared_tokens == n_head  # not computed again
    for g, g1 in zip(twice, once):
        assert g.n_cached_tokens >= g1.n_prompt_tokens  # this turn's prompt extends the last one's tokens


def untimed(step: dict) -> dict:
    """A trace step without the tools' wall-clock seconds, the one thing two runs may not share."""
    return {**step, "actions": [{k: v for k, v in a.items() if k != "seconds"} for a in step.get("actions", [])]}


@pytest.mark.parametrize("batch_size", [5])
def test_lumos_i_traces_are_identical_with_and_without_kv_reuse(batch_size):
    """The shipped demo models on 12 GSM8K questions, 5 in flight (so new examples join mid-run):
    every prompt, generation, token count and finish reason is the same, and the planner prefills
    at least 3x fewer tokens per example."""
    examples = load_task("gsm8k", 12)
    traces, backends = {}, {}
    for reuse in (0, 1 << 30):
        plan = LocalBackend(str(ROOT / "checkpoints/lumos-demo-plan"), max_new_tokens=96, kv_reuse_bytes=reuse)
        ground = LocalBackend(str(ROOT / "checkpoints/lumos-demo-ground"), max_new_tokens=96, kv_reuse_bytes=reuse)
        eps = sorted(Agent(plan, ground, maths_executor()).run(examples, batch_size=batch_size), key=lambda e: e.id)
        traces[reuse] = [(e.id, e.prediction, e.failure, [untimed(s) for s in e.steps]) for e in eps]
        backends[reuse] = (plan, ground)
        if reuse:  # finished examples' keys/values were dropped: only the shared instructions remain
            assert {e.key for b in (plan, ground) for e in b.prefix_cache.entries.values()} == {None}
    assert traces[0] == traces[1 << 30]
    assert sum(len(t[3]) for t in traces[0]) > 3 * 12  # several turns per example: something to reuse
    for without, with_ in zip(*backends.values()):
        assert without.stats["prompt_tokens"] == with_.stats["prompt_tokens"] == without.prefill_tokens()
        assert with_.prefill_tokens() * 3 <= without.prefill_tokens()
