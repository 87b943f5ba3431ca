"""TrainConfig: every knob of a fine-tuning run and its default, in one place.

train.py builds its flags from these fields (the same names, dashes for underscores) and fills a
TrainConfig from them; lumos.train.trainer.train(cfg) runs it. Light on purpose (no torch.distributed):
train.py imports it before parsing, so --help and flag errors answer at once.
"""
from __future__ import annotations

from dataclasses import dataclass

from lumos.model.lora import TARGETS, LoRAConfig


@dataclass
class TrainConfig:
    data: str                         # Lumos jsonl conversations
    out: str                          # run directory: log, checkpoints, exported model
    tokenizer: str                    # SentencePiece .model or a checkpoint dir (its files are copied to out)
    init: str | None = None           # HF or Meta checkpoint directory to fine-tune
    model_args: dict | None = None    # from-scratch model (a ModelArgs as dict) when init is None
    max_seq_len: int = 1024
    epochs: float = 2.0
    max_steps: int | None = None      # overrides epochs
    lr: float = 2e-5
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0        # 0 disables clipping
    micro_batch_size: int = 8
    global_batch_size: int = 128
    seed: int = 0
    save_every: int = 50              # steps between checkpoints (each also exports HF weights); 0: only at the end
    resume: bool = False
    threads: int | None = None
    activation_checkpointing: bool = False
    shared_prefix: bool = True        # run a micro-batch's common token prefix once (lumos/train/shared_prefix.py)
    dtype: str | None = None          # parameter dtype for compute: float32 (CPU default) | bfloat16 (CUDA default)
    device: str | None = None
    export_dtype: str | None = None   # dtype of the exported weights (default: the compute dtype)
    progress: bool = True
    tokenization: str = "current"     # "paper": whitespace around "</s>" stripped (lumos/train/tokenize.py)
    lora_rank: int = 0                # > 0: freeze the --init model, train LoRA adapters of this rank
    lora_alpha: float | None = None   # adapter scale alpha / rank (default alpha = 2 * rank)
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = TARGETS
    lora_init: str | None = None      # adapter directory to start from instead of B = 0

    def lora(self) -> LoRAConfig | None:
        if not self.lora_rank:
            return None
        return LoRAConfig(rank=self.lora_rank, alpha=self.lora_alpha or 2.0 * self.lora_rank,
                          dropout=self.lora_dropout, targets=tuple(self.lora_targets), base=self.init)
