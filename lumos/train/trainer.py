"""The fine-tuning loop: data -> FSDP2 model -> AdamW steps -> DCP checkpoints -> HF export.

    for step in range(start, total_steps):
        for each of this rank's grad_accum micro-batches:
            loss = sum of token cross-entropy over label tokens / label tokens of the GLOBAL batch
            loss.backward()                      # FSDP sums the shards' gradients over ranks
        clip grad norm; set lr; optimizer.step(); log; maybe save a checkpoint (+ HF export, loss.png)

Dividing every rank's summed loss by the label count of the whole optimizer step (all ranks, all
micro-batches) makes the summed gradient exactly the gradient of the mean token loss of the
global batch, however unevenly the labels fall on ranks and micro-batches (open-instruct's
per-micro-batch mean weights a short answer's tokens more than a long one's).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import shutil
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from lumos.annotations.format import read_conversations
from lumos.model.checkpoint import CheckpointError, as_dtype, load_checkpoint, save_hf
from lumos.model.config import ModelArgs
from lumos.model.llama import Transformer
from lumos.model import smollm2
from lumos.model.lora import ADAPTER_FILE, LoRAConfig, add_lora, init_lora, is_lora_key, save_adapter
from lumos.model.tokenizer import load_tokenizer

from .config import TrainConfig
from .data import StepSampler, TokenizedDataset, collate, tokenize_conversations
from .distributed import Dist, all_reduce_sum, barrier, init_distributed, shard_model
from .shared_prefix import forward_shared_prefix, shared_prefix_len
from .tokenize import IGNORE_INDEX

# DCP warns that it runs "in a single process" when there is no process group: that is intended.
warnings.filterwarnings("ignore", message=".*torch.distributed is disabled, unavailable or uninitialized.*")


def lr_at(step: int, total: int, warmup: int, lr: float) -> float:
    """Linear warmup from 0, then linear decay to 0 (transformers' linear schedule, which
    open-instruct used): optimizer step `step` (0-based) of `total` runs at this lr."""
    if step < warmup:
        return lr * step / max(1, warmup)
    return lr * max(0.0, (total - step) / max(1, total - warmup))


def flops_per_token(args: ModelArgs, n_params: int, seq_len: float, n_trainable: int | None = None) -> float:
    """Training FLOPs per token: 6 per parameter (fwd 2 + bwd 4) plus attention's QK^T and AV,
    6 * 2 * n_layers * dim * seq_len (PaLM's appendix B, as nanoGPT's estimate_mfu). Frozen
    parameters (LoRA) skip their weight gradient: 4 per parameter, plus 2 per trainable one."""
    n_trainable = n_params if n_trainable is None else n_trainable
    return 4 * n_params + 2 * n_trainable + 12 * args.n_layers * args.dim * seq_len


def measure_peak_flops(device: torch.device, dtype: torch.dtype) -> float:
    """Dense matmul FLOP/s this device reaches (the MFU denominator: on a CPU there is no
    datasheet number that applies to a shared machine, so measure one; best of a few tries)."""
    n = 1024 if device.type == "cpu" else 8192
    # its own generator: the global RNG (dropout's) must be where a resumed run left it
    a = torch.randn(n, n, generator=torch.Generator().manual_seed(0), dtype=dtype).to(device)
    a @ a
    best = float("inf")
    for _ in range(3 if device.type == "cpu" else 10):
        _sync(device)
        t = time.perf_counter()
        a @ a
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


# ---- model ----------------------------------------------------------------------------------------

def load_init(cfg: TrainConfig, d: Dist, n_words: int | None) -> tuple[ModelArgs, dict | None]:
    """Read the --init checkpoint on rank 0 only: memory-mapped, in its stored dtype (no fp32 copy).
    The other ranks receive its ModelArgs (and build_model broadcasts the weights to them), or the
    same one-line CheckpointError. Runs before anything is written to --out."""
    args = sd = error = None
    if d.is_main:
        try:
            args, sd = load_checkpoint(smollm2.resolve(cfg.init) or cfg.init, dtype=None, device="cpu",
                                       n_words=n_words)
        except ValueError as e:  # CheckpointError, or a config ModelArgs refuses
            error = f"--init {cfg.init}: {(str(e).splitlines() or [''])[0]}"
    if d.mesh is not None:
        box = [error, args]
        torch.distributed.broadcast_object_list(box, src=0)
        error, args = box
    if error:
        raise CheckpointError(error)
    return args, sd


def build_model(cfg: TrainConfig, d: Dist, dtype: torch.dtype,
                init: tuple[ModelArgs, dict | None] | None = None) -> tuple[Transformer, ModelArgs]:
    """Meta device -> activation checkpointing + fully_shard -> to_empty -> init or load.

    Weights are world-size independent: init_weights draws full tensors from the seed and keeps
    this rank's shard, and a loaded checkpoint is distributed the same way. With LoRA the adapters
    are added before sharding (FSDP shards them with their block) and initialised last (B = 0).
    init: load_init's (args, state dict on rank 0 / None elsewhere); rank 0 broadcasts each tensor
    and every rank keeps its shard, so no rank but 0 ever holds the whole checkpoint."""
    if cfg.init:
        args, sd = init or load_init(cfg, d, None)
    else:
        args, sd = ModelArgs(**cfg.model_args), None
    lora = cfg.lora()
    with torch.device("meta"):
        model = Transformer(args)
    if lora:
        add_lora(model, lora)
    model = shard_model(model, d, param_dtype=dtype, activation_checkpointing=cfg.activation_checkpointing)
    model.to_empty(device=d.device)
    if not cfg.init:
        model.init_weights(cfg.seed)
    else:  # every base weight comes from the checkpoint: no random draw (a full tensor per parameter)
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
        sd = sd if sd is not None else {}  # ranks > 0: filled by the broadcast
        if args.tie_word_embeddings:  # one shared parameter, loaded through tok_embeddings
            model.output.weight = model.tok_embeddings.weight  # to_empty() untied them (as init_weights does)
            sd.pop("output.weight", None)
        # copy_ into the (fp32) parameters casts one tensor at a time
        keys = set_model_state_dict(model, sd, options=StateDictOptions(
            full_state_dict=True, strict=False, broadcast_from_rank0=d.mesh is not None))
        del sd
        missing = [k for k in keys.missing_keys if not is_lora_key(k) and not
                   (k.endswith("output.weight") and args.tie_word_embeddings)]
        if missing or keys.unexpected_keys:
            raise ValueError(f"--init {cfg.init}: missing {missing[:3]}, unexpected {keys.unexpected_keys[:3]}")
    if lora:
        init_lora(model, cfg.seed)
    if cfg.lora_init:  # warm start from a saved adapter (same rank and targets, checked by name and shape)
        from safetensors.torch import load_file
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
        sd = load_file(str(Path(cfg.lora_init, ADAPTER_FILE)))
        keys = set_model_state_dict(model, sd, options=StateDictOptions(full_state_dict=True, strict=False))
        if keys.unexpected_keys or any(is_lora_key(k) for k in keys.missing_keys):
            raise ValueError(f"--lora-init {cfg.lora_init}: the adapter does not fit this model and --lora-targets")
    return model, args


# ---- the training state: DCP checkpoints for --resume (the model loader is lumos.model.checkpoint) ----------

def _state_options(model):
    """Frozen parameters (a LoRA run's base) are not saved: they come from --init again on resume.
    (Loading is then non-strict for them; dcp.load itself still fails on a key the checkpoint lacks.)"""
    from torch.distributed.checkpoint.state_dict import StateDictOptions
    frozen = any(not p.requires_grad for p in model.parameters())
    return StateDictOptions(ignore_frozen_params=frozen, strict=not frozen)


def _state_dicts(model, optimizer):
    from torch.distributed.checkpoint.state_dict import get_state_dict
    opts = _state_options(model)
    msd, osd = get_state_dict(model, optimizer, options=opts)
    return {"model": _without_frozen_tied(model, opts, msd), "optim": osd}


def _without_frozen_tied(model, opts, msd: dict) -> dict:
    """A frozen tied output slips through ignore_frozen_params (it is named once, as tok_embeddings)."""
    if opts.ignore_frozen_params and not model.output.weight.requires_grad:
        msd.pop("output.weight", None)
    return msd


def latest_train_state(out: str) -> Path | None:
    """The newest complete checkpoint (out/checkpoints/step-NNNNNNN); temp dirs are ignored."""
    ckpts = sorted(Path(out, "checkpoints").glob("step-*"))
    return ckpts[-1] if ckpts else None


def save_train_state(out: str, step: int, model, optimizer, sampler: StepSampler, d: Dist, keep: int = 2) -> Path:
    """DCP-save model, optimizer, step, sampler and RNG to a temp dir, then rename it into place:
    a crash mid-save leaves the previous checkpoint as the latest complete one."""
    import torch.distributed.checkpoint as dcp
    root = Path(out, "checkpoints")
    final, tmp = root / f"step-{step:07d}", root / f".tmp-step-{step:07d}"
    if d.is_main and tmp.exists():
        shutil.rmtree(tmp)  # debris of an earlier crash
    barrier(d)
    state = _state_dicts(model, optimizer)
    # Non-tensor leaves are pickled by DCP; the sampler state goes as one JSON string leaf.
    state["trainer"] = {"step": step, "sampler": json.dumps(sampler.state_dict()), "rng": torch.get_rng_state()}
    dcp.save(state, checkpoint_id=str(tmp))
    barrier(d)
    if d.is_main:
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        for old in sorted(root.glob("step-*"))[:-keep]:
            shutil.rmtree(old)
    barrier(d)
    return final


def load_train_state(path: Path, model, optimizer=None) -> dict:
    """Load a DCP checkpoint into the (sharded) model and optimizer; returns the trainer state."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict, get_model_state_dict, set_model_state_dict
    opts = _state_options(model)
    if optimizer is None:
        state = {"model": _without_frozen_tied(model, opts, get_model_state_dict(model, options=opts))}
        dcp.load(state, checkpoint_id=str(path))
        set_model_state_dict(model, state["model"], options=opts)
        return {}
    state = _state_dicts(model, optimizer)
    state["trainer"] = {"step": 0, "sampler": "", "rng": torch.get_rng_state()}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"], options=opts)
    return {**state["trainer"], "sampler": json.loads(state["trainer"]["sampler"])}


def export_hf(model, args: ModelArgs, out: str, d: Dist, dtype: str | None, lora: LoRAConfig | None = None) -> None:
    """Gather the full weights on rank 0 and write an HF directory (config, safetensors; the
    tokenizer files are already there) into `out`: lumos.model.checkpoint.load_model and
    transformers load it. A LoRA run writes only its adapter (adapter.safetensors +
    adapter_config.json, see lora.py)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=d.mesh is not None,
                                                              ignore_frozen_params=lora is not None))
    if d.is_main and lora is not None:
        save_adapter(sd, lora, out, dtype=as_dtype(dtype))
    elif d.is_main:
        if args.tie_word_embeddings:
            sd["output.weight"] = sd["tok_embeddings.weight"]
        save_hf(sd, args, out, dtype=dtype)
    barrier(d)


# ---- the loop --------------------------------------------------------------------------------------

def forward_backward(model, batches, n_labels: int, autocast, shared_prefix: bool = False) -> torch.Tensor:
    """Accumulate the gradient of (sum of label-token CE) / n_labels over `batches`, a list of
    (tokens, targets) (B, T) pairs. n_labels is the label count of the whole global batch.
    shared_prefix: run the tokens every row starts with once (lumos/train/shared_prefix.py).
    Returns this rank's share of the loss (a 0-dim tensor; summed over ranks = the mean loss)."""
    total = torch.zeros((), device=batches[0][0].device)
    for a, (tokens, targets) in enumerate(batches):
        if hasattr(model, "set_requires_gradient_sync"):  # FSDP: reduce-scatter once, after the last
            model.set_requires_gradient_sync(a == len(batches) - 1)
        P = shared_prefix_len(tokens, targets) if shared_prefix else 0
        targets = targets.flatten()
        at = (targets != IGNORE_INDEX).nonzero().squeeze(1)  # label positions: the only logits we need
        with autocast:
            if P:
                logits = forward_shared_prefix(model, tokens, at, P)
            else:
                logits = model(tokens, logits_at=at)  # (N, V) fp32
        loss = F.cross_entropy(logits, targets[at], reduction="sum") / n_labels
        loss.backward()
        total += loss.detach()
    return total


def open_log(path: Path, start: int):
    """log.jsonl for appending, cut back to the steps <= `start` a resumed run starts after: the
    steps a killed run logged past its last checkpoint are run again, and must not appear twice."""
    keep = []
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                if json.loads(line)["step"] <= start:
                    keep.append(line + "\n")
            except (ValueError, KeyError, TypeError):
                pass  # a line torn by the kill
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(keep), encoding="utf-8")
    os.replace(tmp, path)
    return open(path, "a", encoding="utf-8")


def load_dataset(cfg: TrainConfig, tokenizer, rows: list[dict] | None = None) -> TokenizedDataset:
    """cfg.data tokenised; `rows`: its conversations when the caller has read them already."""
    rows = read_conversations(cfg.data) if rows is None else rows
    return tokenize_conversations(rows, tokenizer, cfg.max_seq_len, cfg.tokenization == "paper")


def train(cfg: TrainConfig, d: Dist | None = None, rows: list[dict] | None = None) -> dict:
    """Run (or resume) training, then export. Returns a summary dict (rank 0's view). rows: cfg.data's
    conversations when already read (train.py reads them first, to check them before --out is touched)."""
    d = d or init_distributed(cfg.device, cfg.threads)
    dtype = getattr(torch, cfg.dtype or ("bfloat16" if d.device.type == "cuda" else "float32"))
    out = Path(cfg.out)
    # Inputs first, outputs after: a bad --init fails in one line and leaves --out as it was.
    init = load_init(cfg, d, load_tokenizer(cfg.tokenizer).n_words) if cfg.init else None
    if d.is_main:
        out.mkdir(parents=True, exist_ok=True)
        load_tokenizer(cfg.tokenizer).save(out)  # SentencePiece: tokenizer.model; BPE: tokenizer.json + config
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    barrier(d)
    tokenizer = load_tokenizer(str(out))
    data = load_dataset(cfg, tokenizer, rows)
    sampler = StepSampler(data.lengths, cfg.global_batch_size, cfg.micro_batch_size, d.world_size, cfg.seed)
    n_labels, lengths = data.n_labels, data.lengths
    total_steps = cfg.max_steps or max(1, int(cfg.epochs * sampler.steps_per_epoch))
    warmup = math.ceil(cfg.warmup_ratio * total_steps)

    torch.manual_seed(cfg.seed)
    model, args = build_model(cfg, d, dtype, init)
    del init
    if args.vocab_size < tokenizer.n_words:
        raise ValueError(f"model vocabulary {args.vocab_size} < tokenizer's {tokenizer.n_words}")
    if d.is_main:
        (out / "model_args.json").write_text(json.dumps(asdict(args), indent=2) + "\n")
    trainable = [p for p in model.parameters() if p.requires_grad]  # LoRA: the adapters only
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=cfg.weight_decay)
    start = 0
    ckpt = latest_train_state(cfg.out) if cfg.resume else None
    if ckpt is not None:
        state = load_train_state(ckpt, model, optimizer)
        sampler.check_state_dict(state["sampler"])
        torch.set_rng_state(state["rng"])
        start = state["step"]
    # One process computing in bf16 keeps fp32 weights and autocasts (FSDP does this itself).
    autocast = (torch.autocast(d.device.type, dtype=dtype) if d.mesh is None and dtype != torch.float32
                else contextlib.nullcontext())

    n_params = sum(p.numel() for p in model.parameters())  # FSDP: full shapes; tied output counted once
    n_trainable = sum(p.numel() for p in trainable)
    peak = measure_peak_flops(d.device, dtype)
    pad_id = tokenizer.pad_id if tokenizer.pad_id >= 0 else tokenizer.eos_id
    if d.is_main:
        print(f"data: {len(data)} examples ({data.n_truncated} truncated at {cfg.max_seq_len}, {data.n_dropped} "
              f"dropped with no label left) from {cfg.data}; model: {n_params / 1e6:.2f}M params "
              f"({n_trainable / 1e6:.3f}M trainable); "
              f"world {d.world_size} x micro {cfg.micro_batch_size} x accum {sampler.grad_accum} = global "
              f"{cfg.global_batch_size}; steps {start}..{total_steps} ({sampler.steps_per_epoch}/epoch); "
              f"{torch.get_num_threads()} threads/rank", flush=True)
    bar = None
    if d.is_main and cfg.progress:
        from tqdm import tqdm
        bar = tqdm(total=total_steps, initial=start, desc="train", dynamic_ncols=True)
    log = open_log(out / "log.jsonl", start) if d.is_main else None
    model.train()
    loss = float("nan")
    export_dtype = cfg.export_dtype or str(dtype).removeprefix("torch.")
    lora = cfg.lora()
    # Two forward calls per micro-batch need every weight alive until backward: FSDP2 frees the gathered
    # weights after each forward and once more after the first backward through them, and activation
    # checkpointing would rerun the prefix's cache writes. Those runs keep the plain forward.
    shared_prefix = cfg.shared_prefix and not cfg.activation_checkpointing and d.mesh is None
    for step in range(start, total_steps):
        t0 = time.perf_counter()
        batch_idx = sampler.global_batch_indices(step)
        n_lab = int(n_labels[batch_idx].sum())  # global label count: every rank knows the global batch
        n_tok = int(lengths[batch_idx].sum())   # real (unpadded) tokens of the global batch
        batches = [tuple(x.to(d.device, non_blocking=True) for x in collate(data, idx, pad_id))
                   for idx in sampler.micro_batches(step, d.rank)]
        lr = lr_at(step, total_steps, warmup, cfg.lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        local_loss = forward_backward(model, batches, n_lab, autocast, shared_prefix)
        grad_norm = float("nan")
        if cfg.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
            grad_norm = (norm.full_tensor() if hasattr(norm, "full_tensor") else norm).item()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss = all_reduce_sum(local_loss.item(), d)
        # tokens the shared prefix spared (computed once, not once per row): MFU counts only computed ones
        skipped = int(all_reduce_sum(sum((len(t) - 1) * shared_prefix_len(t, y) for t, y in batches), d)
                      ) if shared_prefix else 0
        dt = time.perf_counter() - t0
        tps = n_tok / dt
        mfu = (flops_per_token(args, n_params, n_tok / len(batch_idx), n_trainable) * (n_tok - skipped) / dt
               / (peak * d.world_size))
        if d.is_main:
            rec = {"step": step + 1, "loss": round(loss, 6), "lr": lr, "grad_norm": round(grad_norm, 6),
                   "tokens_per_s": round(tps, 1), "mfu": round(mfu, 4), "label_tokens": n_lab, "prefix_tokens_shared": skipped,
                   "peak_mem_gb": round(peak_memory_gb(d.device), 3), "epoch": round((step + 1) / sampler.steps_per_epoch, 4)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if bar:
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tps:.0f}")
                bar.update(1)
        _fault_injection(step + 1)
        if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < total_steps:
            save_train_state(cfg.out, step + 1, model, optimizer, sampler, d)
            # out/ always holds a model run_agent.py loads, and its loss curve, however the run ends
            if lora:
                lora.meta = {"data": cfg.data, "steps": step + 1, "loss": round(loss, 6)}
            export_hf(model, args, cfg.out, d, export_dtype, lora)
            if d.is_main:
                plot_loss(out)
    if bar:
        bar.close()
    if start < total_steps:
        save_train_state(cfg.out, total_steps, model, optimizer, sampler, d)
    if lora:
        lora.meta = {"data": cfg.data, "steps": total_steps, "final_loss": round(loss, 6)}
    export_hf(model, args, cfg.out, d, export_dtype, lora)
    if d.is_main:
        log.close()
        plot_loss(out)
        what = ("LoRA adapter: adapter.safetensors, adapter_config.json" if lora else
                "HF layout: config.json, model.safetensors, tokenizer files")
        print(f"exported {out} ({what}); final loss {loss:.4f}", flush=True)
    return {"final_loss": loss, "steps": total_steps, "examples": len(data), "dropped": data.n_dropped}


def export_only(out: str, d: Dist | None = None, dtype: str | None = None) -> Path:
    """Export the latest checkpoint of run directory `out` to HF layout (in `out`)."""
    d = d or init_distributed()
    ckpt = latest_train_state(out)
    if ckpt is None:
        raise FileNotFoundError(f"{out}: no checkpoint under {out}/checkpoints")
    args = ModelArgs(**json.loads(Path(out, "model_args.json").read_text()))
    cfg = json.loads(Path(out, "train_config.json").read_text())
    lora = TrainConfig(**cfg).lora()
    with torch.device("meta"):
        model = Transformer(args)
    if lora:  # the checkpoint holds the adapters only; the frozen base is not needed to export them
        add_lora(model, lora)
        lora.meta = {"data": cfg["data"], "steps": int(ckpt.name.removeprefix("step-"))}
    model = shard_model(model, d)
    model.to_empty(device=d.device)
    model.init_weights(0)  # re-ties shared weights; every value is then overwritten by the checkpoint
    load_train_state(ckpt, model)
    export_hf(model, args, out, d, dtype, lora)
    return ckpt


def _fault_injection(step: int) -> None:
    """Tests kill the run for real after a given step (LUMOS_TRAIN_KILL_AFTER_STEP) to check
    that --resume reproduces the uninterrupted run."""
    kill_after = os.environ.get("LUMOS_TRAIN_KILL_AFTER_STEP")
    if kill_after and int(kill_after) == step:
        import signal
        os.kill(os.getpid(), signal.SIGKILL)


def plot_loss(out: Path) -> None:
    """out/loss.png from out/log.jsonl (skipped with a note when matplotlib is missing)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no loss.png (pip install matplotlib)")
        return
    recs = [json.loads(line) for line in open(out / "log.jsonl")]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in recs], [r["loss"] for r in recs])
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("mean token loss")
    ax.set_title(out.name)
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=100)
    plt.close(fig)
