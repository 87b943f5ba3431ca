"""LoRA: low-rank adapters on a frozen Llama (Hu et al. 2021, arXiv 2106.09685).

A target linear layer y = x W^T (W: out x in) gets two small trainable matrices,
A (r x in) and B (out x r), and computes

    y = x W^T + (alpha / r) * dropout(x) A^T B^T

W stays frozen; only A and B train: r * (in + out) numbers per layer instead of in * out.
B starts at zero, so step 0 is exactly the base model; A starts as nn.Linear's default
(kaiming-uniform), so the first updates of B already move the output.
For inference the adapter is folded in, W' = W + (alpha / r) B A, and the model is a plain
Llama again: no extra cost per token.

    model = load_model(base)                          # any Llama checkpoint directory
    add_lora(model, LoRAConfig(rank=8, alpha=16))     # wraps wq..w3, freezes everything else
    ... train ...
    save_adapter(model, cfg, "runs/x")                # adapter.safetensors (a few MB) + adapter_config.json
    model = load_with_adapter("runs/x")               # base + adapter, merged

Target names are our module names (Meta's checkpoint keys): wq wk wv wo (attention), w1 w2 w3 (SwiGLU).
Adapter tensor names follow the module path: layers.3.attention.wq.lora_a (r, in), ...lora_b (out, r).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .llama import copy_full_

TARGETS = ("wq", "wk", "wv", "wo", "w1", "w2", "w3")
ADAPTER_FILE, CONFIG_FILE = "adapter.safetensors", "adapter_config.json"


@dataclass
class LoRAConfig:
    rank: int = 8
    alpha: float = 16.0               # the update is scaled by alpha / rank
    dropout: float = 0.0              # on the adapter's input only (the frozen path sees x unchanged)
    targets: tuple[str, ...] = TARGETS
    base: str | None = None           # the base checkpoint the adapter was trained on (a path or a name)
    meta: dict = field(default_factory=dict)  # free-form notes written next to the config (data, steps)

    def __post_init__(self):
        self.targets = tuple(self.targets)
        if self.rank <= 0:
            raise ValueError(f"LoRA rank must be positive, got {self.rank}")
        if self.alpha <= 0:
            raise ValueError(f"LoRA alpha must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets:
            raise ValueError(f"LoRA targets {list(bad or self.targets)} not among {', '.join(TARGETS)}")

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


class LoRALinear(nn.Linear):
    """nn.Linear (frozen `weight`, same key as before) plus trainable `lora_a` (r, in), `lora_b` (out, r)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float):
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight  # the very same Parameter: a loaded base stays loaded
        self.register_parameter("bias", None)
        w = base.weight
        self.lora_a = nn.Parameter(torch.zeros(rank, self.in_features, device=w.device, dtype=w.dtype))
        self.lora_b = nn.Parameter(torch.zeros(self.out_features, rank, device=w.device, dtype=w.dtype))
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in) -> (..., out). The adapter path is two thin matmuls through r dims."""
        return F.linear(x, self.weight) + F.linear(F.linear(self.dropout(x), self.lora_a), self.lora_b) * self.scaling

    def merged(self) -> nn.Linear:
        """A plain nn.Linear with W + scaling * B A (computed in fp32, stored in W's dtype)."""
        lin = nn.Linear(self.in_features, self.out_features, bias=False, device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            delta = (self.lora_b.float() @ self.lora_a.float()) * self.scaling
            lin.weight.copy_(self.weight.float() + delta)
        lin.weight.requires_grad_(self.weight.requires_grad)
        return lin

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, rank={self.lora_a.shape[0]}, scaling={self.scaling:g}"


def _targets(model: nn.Module, targets) -> list[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, linear) of every target layer, e.g. (layers[3].attention, 'wq', Linear)."""
    found = []
    for name, module in model.named_modules():
        for t in targets:
            child = getattr(module, t, None)
            if isinstance(child, nn.Linear) and name.rsplit(".", 1)[-1] in ("attention", "feed_forward"):
                found.append((module, t, child))
    return found


def add_lora(model: nn.Module, cfg: LoRAConfig) -> nn.Module:
    """Wrap the target layers of `model` (in place, any device incl. meta) in LoRALinear and freeze
    every other parameter. The adapters are zero: call init_lora (or load an adapter) next."""
    layers = _targets(model, cfg.targets)
    if not layers:
        raise ValueError(f"no LoRA target layers ({', '.join(cfg.targets)}) in this model")
    for p in model.parameters():
        p.requires_grad_(False)
    for parent, attr, lin in layers:
        setattr(parent, attr, LoRALinear(lin, cfg.rank, cfg.alpha, cfg.dropout).train(lin.training))  # eval stays eval
    return model


@torch.no_grad()
def init_lora(model: nn.Module, seed: int = 0) -> nn.Module:
    """A ~ U(-1/sqrt(in), 1/sqrt(in)) (nn.Linear's default init), B = 0. Full tensors are drawn from
    `seed` in module order, so the values are the same on every rank and for every world size
    (FSDP shards keep their slice)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    for m in model.modules():
        if isinstance(m, LoRALinear):
            bound = 1.0 / math.sqrt(m.in_features)
            copy_full_(m.lora_a, torch.rand(m.lora_a.shape, generator=g).mul_(2 * bound).sub_(bound))
            copy_full_(m.lora_b, torch.zeros(m.lora_b.shape))
    return model


def is_lora_key(name: str) -> bool:
    return name.endswith((".lora_a", ".lora_b"))


def adapter_state_dict(model_or_sd) -> dict[str, torch.Tensor]:
    """The adapter tensors only (names ending in .lora_a / .lora_b)."""
    sd = model_or_sd.state_dict() if isinstance(model_or_sd, nn.Module) else model_or_sd
    return {k: v for k, v in sd.items() if is_lora_key(k)}


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its weight (W += alpha/r B A) and put plain nn.Linear layers back:
    the result is an ordinary Transformer (save_hf writes it, generation runs at base speed)."""
    for name, module in list(model.named_modules()):
        for attr, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, attr, child.merged())
    return model


def save_adapter(model_or_sd, cfg: LoRAConfig, out_dir: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
    """Write out_dir/adapter.safetensors (the lora_a/lora_b tensors) and out_dir/adapter_config.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to("cpu", dtype=dtype or v.dtype).contiguous() for k, v in adapter_state_dict(model_or_sd).items()}
    if not sd:
        raise ValueError("save_adapter: the model holds no LoRA tensors")
    tmp = out / (ADAPTER_FILE + ".tmp")
    save_file(sd, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out / ADAPTER_FILE)
    config = {**asdict(cfg), "targets": list(cfg.targets), "n_params": sum(v.numel() for v in sd.values())}
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return out


def is_adapter_dir(path: str | os.PathLike) -> bool:
    return Path(path, CONFIG_FILE).is_file()


def read_adapter_config(adapter_dir: str | os.PathLike) -> LoRAConfig:
    raw = json.loads(Path(adapter_dir, CONFIG_FILE).read_text())
    raw.pop("n_params", None)
    return LoRAConfig(**raw)


def apply_adapter(model: nn.Module, adapter_dir: str | os.PathLike, merge: bool = True) -> nn.Module:
    """Add the adapter of `adapter_dir` to a loaded base `model` (in place); merged by default.
    Every adapter tensor must match a target layer's shape: a wrong base fails here, by name."""
    cfg = read_adapter_config(adapter_dir)
    sd = load_file(str(Path(adapter_dir, ADAPTER_FILE)))
    add_lora(model, cfg)
    want = adapter_state_dict(model)
    missing, unknown = sorted(set(want) - set(sd)), sorted(set(sd) - set(want))
    if missing or unknown:
        raise ValueError(f"{adapter_dir}: adapter does not fit this base model "
                         f"(missing {missing[:2]}, unknown {unknown[:2]})")
    for k, t in sd.items():
        if t.shape != want[k].shape:
            raise ValueError(f"{adapter_dir}: {k} has shape {tuple(t.shape)}, the base model needs {tuple(want[k].shape)}")
    model.load_state_dict(sd, strict=False)
    return merge_lora(model) if merge else model


def load_with_adapter(adapter_dir: str | os.PathLike, base: str | os.PathLike | None = None,
                      dtype: torch.dtype | str | None = torch.float32, device: str | torch.device = "cpu") -> nn.Module:
    """The base checkpoint (default: the one named in adapter_config.json) with the adapter merged in."""
    from .checkpoint import load_model
    base = base or read_adapter_config(adapter_dir).base
    if base is None:
        raise ValueError(f"{adapter_dir}/{CONFIG_FILE} names no base model: pass one")
    model = load_model(base, dtype=dtype, device=device)
    return apply_adapter(model, adapter_dir, merge=True)
