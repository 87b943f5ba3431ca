"""Shared-prefix training (lumos/train/shared_prefix.py): the common prefix computed once gives the plain
forward's loss and gradients, on real Lumos grounding conversations."""
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lumos.train.shared_prefix import MIN_PREFIX, common_prefix_len, shared_prefix_len  # noqa: E402

MODEL = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=32000, multiple_of=32, max_seq_len=1024,
             tie_word_embeddings=True)


def test_common_prefix_stops_where_rows_differ_or_a_label_starts():
    t = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, 1, 2], [5, 6, 7, 8, 3]])
    no_labels = torch.full_like(t, -100)
    assert common_prefix_len(t, no_labels) == 3              # column 3 differs (8 vs 1)
    y = no_labels.clone()
    y[1, 1] = 42                                               # row 1 is scored at position 1
    assert common_prefix_len(t, y) == 1
    same = torch.tensor([[4, 4, 4], [4, 4, 4]])
    assert common_prefix_len(same, torch.full_like(same, -100)) == 2  # each row keeps one token of its own
    assert shared_prefix_len(t, no_labels) == 0                # 3 < MIN_PREFIX: the plain forward
    long = torch.cat([torch.zeros(2, MIN_PREFIX, dtype=torch.long), torch.tensor([[1], [2]])], dim=1)
    assert shared_prefix_len(long, torch.full_like(long, -100)) == MIN_PREFIX
    assert shared_prefix_len(long[:1], torch.full_like(long[:1], -100)) == 0  # one row: nothing to share


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_shared_prefix_gives_the_plain_loss_and_gradients(lora_rank):
    from lumos.model.tokenizer import Tokenizer
    from lumos.train.data import collate, tokenize_conversations
    from lumos.train.distributed import Dist
    from lumos.train.trainer import TrainConfig, build_model, forward_backward
    torch.set_num_threads(1)
    with open(ROOT / "data/annotations/lumos_maths_ground_iterative.jsonl") as f:
        rows = [json.loads(next(f)) for _ in range(6)]
    tok = Tokenizer(str(ROOT / "data/tokenizer/llama2.model"))
    data = tokenize_conversations(rows, tok, max_seq_len=1024)
    batches = [collate(data, [0, 1, 2], tok.eos_id), collate(data, [3, 4, 5], tok.eos_id)]
    # The grounding instructions up to "Task:" are 186 Llama-2 tokens, the same in every row.
    assert [shared_prefix_len(*b) for b in batches] == [186, 186]
    n_lab = int(data.n_labels.sum())
    results = []
    for shared in (False, True):
        cfg = TrainConfig(data="", out="", tokenizer="", model_args=MODEL, seed=5, lora_rank=lora_rank)
        model, _ = build_model(cfg, Dist(0, 1, 0, 1, torch.device("cpu"), None), torch.float32)
        for name, p in model.named_parameters():
            if name.endswith("lora_b"):  # B = 0 would leave A without a gradient
                torch.nn.init.normal_(p, std=0.02, generator=torch.Generator().manual_seed(1))
        loss = forward_backward(model, batches, n_lab, torch.autocast("cpu", enabled=False), shared_prefix=shared)
        results.append((loss.item(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (plain_loss, plain), (shared_loss, grads) = results
    assert abs(plain_loss - shared_loss) < 1e-6 and plain_loss > 5  # a random model: ~ln(32000)
    assert plain.keys() == grads.keys() and len(plain) == (2 * 7 * 2 if lora_rank else len(plain))
    for name, g in plain.items():
        torch.testing.assert_close(grads[name], g, rtol=0, atol=2e-6, msg=name)
    assert max(g.abs().max().item() for g in plain.values()) > 1e-3
