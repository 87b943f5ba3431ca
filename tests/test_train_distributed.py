"""FSDP2 on gloo: a 2-process step gives the single-process gradient of the same global batch.

The test launches this file under `torchrun --nproc_per_node=2` (127.0.0.1, a free port); each
worker computes one optimizer step's gradient on its half of the global batch, and rank 0 saves
the full (unsharded) gradients. Ranks get deliberately uneven label counts: with a per-rank
mean loss the gradients would differ; with the global-label-count normalisation they must not.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=32000, multiple_of=32,
             max_seq_len=256, tie_word_embeddings=True)
GLOBAL, MICRO = 8, 2


def _rows():
    """Answers of very different lengths, so the label counts per rank are uneven."""
    rows = []
    for i in range(GLOBAL):
        answer = "; ".join(f"R{k} = Calculator({i} + {k})" for k in range(1, 2 + 3 * (i % 4)))
        msgs = [{"role": "user", "content": f"Subgoal to be grounded: Subgoal 1: add {i} and some numbers."},
                {"role": "assistant", "content": answer}]
        if i % 3 == 0:
            msgs += [{"role": "user", "content": "Subgoal to be grounded: Subgoal 2: double R1."},
                     {"role": "assistant", "content": "R9 = Calculator(R1 * 2)"}]
        rows.append({"id": str(i), "messages": msgs})
    return rows


def _one_step(d, world_size, lora_rank=0):
    """Gradient of step 0 (full tensors, by name), the summed loss and each rank's label count.
    lora_rank > 0: LoRA adapters on the (random, frozen) model; only they have gradients."""
    from lumos.model.tokenizer import Tokenizer
    from lumos.train.data import StepSampler, collate, tokenize_conversations
    from lumos.train.trainer import TrainConfig, build_model, forward_backward
    tok = Tokenizer(str(ROOT / "data/tokenizer/llama2.model"))
    data = tokenize_conversations(_rows(), tok, max_seq_len=256)
    sampler = StepSampler(data.lengths, GLOBAL, MICRO, world_size, seed=3)
    cfg = TrainConfig(data="", out="", tokenizer="", model_args=MODEL, seed=5, lora_rank=lora_rank)
    model, _ = build_model(cfg, d, torch.float32)
    n_lab = int(data.n_labels[sampler.global_batch_indices(0)].sum())
    mine = sampler.micro_batches(0, d.rank)
    batches = [collate(data, idx, tok.eos_id) for idx in mine]
    loss = forward_backward(model, batches, n_lab, torch.autocast("cpu", enabled=False))
    grads = {}
    for name, p in model.named_parameters():
        if p.grad is None:
            assert lora_rank and not p.requires_grad, name
            continue
        g = p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
        grads[name] = g.clone()
    return grads, loss.item(), int(sum(data.n_labels[i].sum() for i in mine))


def _worker(out_path, lora_rank=0):
    import torch.distributed as dist
    from lumos.train.distributed import all_reduce_sum, init_distributed, shutdown
    d = init_distributed("cpu", threads=1)
    grads, loss, my_labels = _one_step(d, d.world_size, lora_rank)
    loss = all_reduce_sum(loss, d)
    labels = [None] * d.world_size
    dist.all_gather_object(labels, my_labels)
    if d.rank == 0:
        torch.save({"grads": grads, "loss": loss, "labels_per_rank": labels}, out_path)
    shutdown(d)


def _init_worker(out_path, ckpt):
    """build_model with --init on 2 ranks: which ranks read the file, and the weights every rank ends with."""
    from lumos.train import trainer
    from lumos.train.distributed import init_distributed, shutdown
    d = init_distributed("cpu", threads=1)
    reads = []
    real = trainer.load_checkpoint
    trainer.load_checkpoint = lambda *a, **k: (reads.append(d.rank), real(*a, **k))[1]
    cfg = trainer.TrainConfig(data="", out="", tokenizer="", init=ckpt, seed=5)
    args, sd = trainer.load_init(cfg, d, n_words=32000)
    model, _ = trainer.build_model(cfg, d, torch.float32, (args, sd))
    full = {n: p.full_tensor().clone() for n, p in model.named_parameters()}  # collective: every rank
    torch.save({"reads": reads, "full": full, "had_sd": sd is not None}, f"{out_path}.{d.rank}")
    shutdown(d)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(tmp_path, lora_rank=0, init=None):
    out = tmp_path / "grads.pt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    extra = [str(lora_rank)] if init is None else ["init", str(init)]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                        "--master_addr=127.0.0.1", f"--master_port={_free_port()}", __file__, str(out), *extra],
                       capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return torch.load(out) if init is None else [torch.load(f"{out}.{k}") for k in range(2)]


def test_two_process_gradients_equal_single_process(tmp_path):
    from lumos.train.distributed import Dist
    torch.set_num_threads(1)
    two = run_two_processes(tmp_path)
    single = Dist(0, 1, 0, 1, torch.device("cpu"), None)
    grads, loss, _ = _one_step(single, 1)
    a, b = two["labels_per_rank"]
    assert a != b and min(a, b) > 0, two["labels_per_rank"]  # uneven on purpose
    assert abs(two["loss"] - loss) < 1e-6
    assert grads.keys() == two["grads"].keys()
    for name, g in grads.items():
        torch.testing.assert_close(two["grads"][name], g, rtol=0, atol=1e-6, msg=name)
    assert max(g.abs().max().item() for g in grads.values()) > 1e-3  # a real gradient, not zeros


def test_two_process_lora_gradients_equal_single_process(tmp_path):
    """FSDP2 shards the frozen base and the adapters together; the adapters' gradients still add up."""
    from lumos.train.distributed import Dist
    torch.set_num_threads(1)
    two = run_two_processes(tmp_path, lora_rank=4)
    grads, loss, _ = _one_step(Dist(0, 1, 0, 1, torch.device("cpu"), None), 1, lora_rank=4)
    assert abs(two["loss"] - loss) < 1e-6
    assert grads.keys() == two["grads"].keys() and len(grads) == 2 * 7 * 2  # 2 layers x 7 targets x (A, B)
    assert all(k.endswith((".lora_a", ".lora_b")) for k in grads)
    for name, g in grads.items():
        torch.testing.assert_close(two["grads"][name], g, rtol=0, atol=1e-6, msg=name)
    assert max(grads[k].abs().max().item() for k in grads if k.endswith("lora_b")) > 1e-4  # B = 0: only B moves first


def test_init_is_read_on_rank_0_only_and_broadcast(tmp_path):
    """--init on 2 ranks: only rank 0 opens the checkpoint (bf16 on disk, kept bf16 in memory), the
    others get its tensors by broadcast; every rank ends with exactly the stored weights in fp32."""
    from lumos.model.checkpoint import save_hf
    from lumos.model.config import ModelArgs
    from lumos.model.llama import Transformer
    args = ModelArgs(**{**MODEL, "tie_word_embeddings": False})
    with torch.device("meta"):
        ref = Transformer(args)
    ref.to_empty(device="cpu")
    ref.init_weights(7)
    save_hf(ref, args, tmp_path / "ckpt", dtype="bf16", tokenizer=ROOT / "data/tokenizer/llama2.model")
    ranks = run_two_processes(tmp_path, init=tmp_path / "ckpt")
    assert [r["reads"] for r in ranks] == [[0], []] and [r["had_sd"] for r in ranks] == [True, False]
    want = {k: v.bfloat16().float() for k, v in ref.state_dict().items()}
    for r in ranks:
        assert r["full"].keys() == want.keys()
        for name, t in r["full"].items():
            assert t.dtype == torch.float32 and torch.equal(t, want[name]), name


def test_init_single_process_keeps_tied_embeddings_tied(tmp_path):
    """No random init when loading: every weight is the stored one, and a tied output shares the embedding."""
    from lumos.model.checkpoint import save_hf
    from lumos.model.config import ModelArgs
    from lumos.model.llama import Transformer
    from lumos.train import trainer
    from lumos.train.distributed import Dist
    torch.set_num_threads(1)
    args = ModelArgs(**MODEL)
    with torch.device("meta"):
        ref = Transformer(args)
    ref.to_empty(device="cpu")
    ref.init_weights(3)
    save_hf(ref, args, tmp_path / "ckpt")
    d = Dist(0, 1, 0, 1, torch.device("cpu"), None)
    cfg = trainer.TrainConfig(data="", out="", tokenizer="", init=str(tmp_path / "ckpt"), seed=5)
    model, _ = trainer.build_model(cfg, d, torch.float32, trainer.load_init(cfg, d, 32000))
    assert model.output.weight is model.tok_embeddings.weight
    got, want = model.state_dict(), ref.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


if __name__ == "__main__":
    if sys.argv[2] == "init":
        _init_worker(sys.argv[1], sys.argv[3])
    else:
        _worker(sys.argv[1], int(sys.argv[2]))
