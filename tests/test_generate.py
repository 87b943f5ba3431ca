"""Decoding: greedy tokens equal HF generate; batching, stop strings, EOS and length per row."""
import os

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lumos.model import ModelArgs, Tokenizer, Transformer, decode_tokens, generate
from test_model import CONFIGS, make_pair, ours_from_hf

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(os.path.join(ROOT, "data", "tokenizer", "llama2.model"))


def hf_greedy(hf: LlamaForCausalLM, prompt: list[int], n: int) -> list[int]:
    out = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                      max_new_tokens=n, min_new_tokens=0, do_sample=False, eos_token_id=None, pad_token_id=0)
    return out[0, len(prompt):].tolist()


@pytest.mark.parametrize("name,args", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_greedy_tokens_equal_hf_generate_alone_and_batched(name, args):
    """On every test config: GQA with the odd 32001-row Lumos vocabulary, tied embeddings (MHA,
    rope_theta 5e5), multi-query attention with a 300-row vocabulary and a 70B-style FFN width.
    Block weights get std 0.1 (HF's 0.02 leaves the tied model repeating its input token)."""
    hf, _ = make_pair(args, seed=5)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for n, p in hf.named_parameters():
            if ".layers." in n and not n.endswith("norm.weight"):
                p.normal_(0.0, 0.1, generator=g)
    ours = ours_from_hf(hf, args)
    hf.generation_config.eos_token_id = None  # run the full length on both sides
    g = torch.Generator().manual_seed(6)
    prompts = [torch.randint(3, args.vocab_size, (n,), generator=g).tolist() for n in (7, 19, 2)]
    ref = [hf_greedy(hf, p, 40) for p in prompts]
    assert all(len(r) == 40 and len(set(r)) > 5 for r in ref)  # real continuations, not one repeated token
    for p, r in zip(prompts, ref):
        got, why = decode_tokens(ours, [p], 40, eos_id=None)
        assert (got[0], why[0]) == (r, "length")
    batched, _ = decode_tokens(ours, prompts, 40, eos_id=None)
    assert batched == ref


def bigram_model(chains: dict[int, list[int]], vocab: int = 32000) -> Transformer:
    """A zero-layer model that deterministically continues trigger token t with chains[t], then EOS:
    logits = output(norm(embedding)), and each output row points at the embedding of its predecessor."""
    torch.manual_seed(0)
    model = Transformer(ModelArgs(dim=64, n_layers=0, n_heads=4, vocab_size=vocab, max_seq_len=256)).eval()
    succ = {}
    for trigger, chain in chains.items():
        for a, b in zip([trigger] + chain, chain + [2]):
            assert succ.setdefault(a, b) == b, "a token may have only one successor"
    with torch.no_grad():
        e = model.tok_embeddings.weight
        model.output.weight.zero_()
        for a, b in succ.items():
            model.output.weight[b] += 10 * e[a] / e[a].norm()
    return model


def test_stop_strings_eos_and_length(tok):
    chain = tok.encode("The answer is 18.\nObservation: done")
    prompt = "Question: what is 6 * 3?"
    model = bigram_model({tok.encode(prompt)[-1]: chain})
    nl = chain.index(13)

    g = generate(model, tok, [prompt])[0]  # default stop: the first "\n" (token 13)
    assert (g.text, g.finish_reason, g.n_new_tokens) == ("The answer is 18.", "stop", nl + 1)
    assert g.tokens == chain[: nl + 1] and g.n_prompt_tokens == len(tok.encode(prompt)) + 1  # + BOS

    g = generate(model, tok, [prompt], stop="Observation:")[0]  # one string; spans several tokens
    assert (g.text, g.finish_reason) == ("The answer is 18.\n", "stop")
    assert tok.decode(g.tokens) == "The answer is 18.\nObservation:"

    g = generate(model, tok, [prompt], stop=())[0]
    assert (g.text, g.finish_reason, g.n_new_tokens) == ("The answer is 18.\nObservation: done", "eos", len(chain) + 1)

    g = generate(model, tok, [prompt], max_new_tokens=0)[0]
    assert (g.text, g.finish_reason, g.n_new_tokens) == ("", "length", 0)

    g = generate(model, tok, [prompt], max_new_tokens=3)[0]
    assert (g.text, g.finish_reason, g.n_new_tokens) == (tok.decode(chain[:3]), "length", 3)


def test_batch_rows_finish_independently(tok):
    # Two continuations sharing no token: one stops at "\n" after 3 tokens, the other runs on, so
    # the batch shrinks mid-way (finished rows leave the cache) and the long row must not notice.
    short, long = tok.encode("Yes.\nX"), tok.encode("Subgoal 1: Calculate the total cost of apples")
    assert not set(short) & set(long)
    p_short, p_long = "A question?", "Please plan the task: buy some fruit"
    model = bigram_model({tok.encode(p_short)[-1]: short, tok.encode(p_long)[-1]: long})
    prompts = [p_long, p_short, p_short, p_long]
    alone = [generate(model, tok, [p])[0] for p in prompts]
    together = generate(model, tok, prompts)
    assert together == alone
    assert [g.finish_reason for g in together] == ["eos", "stop", "stop", "eos"]
    assert together[1].text == "Yes." and together[0].text == "Subgoal 1: Calculate the total cost of apples"


def test_sampling(tok):
    args = CONFIGS[1][1]
    _, model = make_pair(args, seed=8)
    prompts = [[1, 5, 9, 200], [1, 7]]
    greedy, _ = decode_tokens(model, prompts, 12, eos_id=None)
    nucleus, _ = decode_tokens(model, prompts, 12, eos_id=None, temperature=1.0, top_p=1e-6, seed=1)
    assert nucleus == greedy  # a nucleus of one token is argmax
    a, _ = decode_tokens(model, prompts, 12, eos_id=None, temperature=5.0, seed=3)
    b, _ = decode_tokens(model, prompts, 12, eos_id=None, temperature=5.0, seed=3)
    c, _ = decode_tokens(model, prompts, 12, eos_id=None, temperature=5.0, seed=4)
    assert a == b and a != c and a != greedy


def test_bad_prompts(tok):
    model = bigram_model({})
    assert generate(model, tok, []) == []
    with pytest.raises(ValueError, match="at least one token"):
        decode_tokens(model, [[1], []], 4)
    with pytest.raises(ValueError, match="max_seq_len"):
        decode_tokens(model, [[1] * 256], 4)


def test_degenerate_repetition_by_hand(tok):
    from lumos.model.generate import degenerate
    assert not degenerate([5] * 15, 16) and degenerate([5] * 16, 16)            # period 1: "0000..."
    assert degenerate([7, 1, 2] * 16, 16) and not degenerate([1, 2] * 15 + [1], 16)
    assert degenerate([9] + [4, 5, 6] * 16, 16) and not degenerate([3, 4, 5] * 15 + [3, 4, 6], 16)
    assert not degenerate(list(range(9)) * 16, 16)                              # period 9 > MAX_PERIOD
    assert degenerate(list(range(8)) * 16, 16) and not degenerate([], 16)
    # the most repetitive gold turn (gsm8k-train, "* 2" twelve times) is never stopped, at any length
    gold = tok.encode("R3 = Calculator(1 * 2 * 2 * 2 * 2 * 2 * 2 * 2 * 2 * 2 * 2 * 2 * 2)")
    assert not any(degenerate(gold[:k], 16) for k in range(len(gold) + 1))
    assert any(degenerate(gold[:k], 8) for k in range(len(gold) + 1))          # 8 repeats would have cut it


def test_a_looping_row_stops_as_repeat_and_the_batch_goes_on(tok):
    x, y = tok.encode("zero one")                                              # two tokens, looped x y x y ...
    prompt, other = "Loop forever:", "Short answer?"
    model = bigram_model({tok.encode(prompt)[-1]: [x, y], tok.encode(other)[-1]: tok.encode("Fine.\n")})
    with torch.no_grad():  # rewire y -> x instead of y -> EOS: a 2-token cycle
        e = model.tok_embeddings.weight
        model.output.weight[2] -= 10 * e[y] / e[y].norm()
        model.output.weight[x] += 10 * e[y] / e[y].norm()
    assert generate(model, tok, [prompt], max_new_tokens=40, stop=())[0].finish_reason == "length"
    loop, short = generate(model, tok, [prompt, other], max_new_tokens=100, repeats=16)
    assert (loop.finish_reason, loop.n_new_tokens, loop.tokens) == ("repeat", 32, [x, y] * 16)
    assert (short.text, short.finish_reason) == ("Fine.", "stop")
