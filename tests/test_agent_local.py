"""The agent on a tiny random local Llama: batched decoding = one at a time; run_agent runs to
completion with traces; an interrupted run resumes without duplicating an id."""
import json
from pathlib import Path

import pytest
import torch

from lumos.agent.backends import LocalBackend
from lumos.agent.grounder import ground_prompt_first
from lumos.agent.planner import plan_prompt_first
from lumos.model.checkpoint import save_hf
from lumos.model.config import ModelArgs
from lumos.model.llama import Transformer

ROOT = Path(__file__).parents[1]
QUESTIONS = [json.loads(line)["question"] for line in open(ROOT / "data/gsm8k/test.jsonl")][:6]


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A random 2-layer Llama with the real Llama-2 vocabulary, saved in HF layout with its tokenizer."""
    torch.set_num_threads(1)
    args = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=32000, multiple_of=32,
                     max_seq_len=2048, tie_word_embeddings=False)
    with torch.device("meta"):
        model = Transformer(args)
    model.to_empty(device="cpu").init_weights(seed=0)
    out = tmp_path_factory.mktemp("tiny")
    save_hf(model, args, out, tokenizer=ROOT / "data/tokenizer/llama2.model")
    return out


def test_batched_generations_equal_one_at_a_time(tiny_ckpt):
    prompts = [plan_prompt_first(q) for q in QUESTIONS[:3]] + \
              [ground_prompt_first("maths", q, "Subgoal 1: Calculate the total.") for q in QUESTIONS[3:]]
    batched = LocalBackend(str(tiny_ckpt), batch_size=8, max_new_tokens=12).complete(prompts)
    single = LocalBackend(str(tiny_ckpt), batch_size=1, max_new_tokens=12)
    alone = [single.complete([p])[0] for p in prompts]
    assert [c.text for c in batched] == [c.text for c in alone]
    assert [c.n_tokens for c in batched] == [c.n_tokens for c in alone]
    assert all(0 < c.n_tokens <= 12 for c in batched)
    # BOS is a real switch: the same prompt continues differently without it
    nobos = LocalBackend(str(tiny_ckpt), batch_size=8, max_new_tokens=12, bos=False).complete(prompts)
    assert [c.text for c in nobos] != [c.text for c in batched]
