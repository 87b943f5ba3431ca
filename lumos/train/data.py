"""Tokenised conversations, and the order in which the trainer sees them.

`TokenizedDataset`: every conversation as (tokens, targets) already shifted for next-token
prediction: tokens = ids[:-1], targets = labels[1:], so the logit at position t is scored on
targets[t]. Conversations left without any label after truncation are dropped and counted.

`StepSampler`: a seeded shuffle per epoch, cut into global batches of `global_batch` examples
(one optimizer step each; the last incomplete one of an epoch is skipped, a different one every
epoch). A global batch is sorted by length and cut into micro-batches, so each micro-batch pads
little; micro-batch a*world + r goes to rank r at accumulation step a, so the ranks of one
accumulation step get similar lengths and wait little for each other. Everything is a pure
function of (seed, step): resuming at step s needs nothing but s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .tokenize import IGNORE_INDEX, encode_conversation


@dataclass
class TokenizedDataset:
    tokens: list[np.ndarray]   # per example, int32 (T_i,)
    targets: list[np.ndarray]  # per example, int32 (T_i,), IGNORE_INDEX where no loss
    ids: list[str]             # the rows' "id" fields
    n_rows: int                # conversations read
    n_truncated: int           # conversations cut at max_seq_len (and kept)
    n_dropped: int             # conversations with no label token left after truncation

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(t) for t in self.tokens], dtype=np.int64)

    @property
    def n_labels(self) -> np.ndarray:
        """Label tokens per example (the loss is averaged over these)."""
        return np.array([int((t != IGNORE_INDEX).sum()) for t in self.targets], dtype=np.int64)


def tokenize_conversations(rows: list[dict], tokenizer, max_seq_len: int,
                           strip_around_eos: bool = False) -> TokenizedDataset:
    """Rows {"id", "messages"} -> TokenizedDataset (see the module docstring). strip_around_eos:
    the released Lumos models' encoding (lumos/train/tokenize.py)."""
    tokens, targets, ids = [], [], []
    n_truncated = n_dropped = 0
    for row in rows:
        full_ids, labels = encode_conversation(tokenizer, row["messages"], strip_around_eos=strip_around_eos)
        if len(full_ids) > max_seq_len:
            n_truncated += 1
            full_ids, labels = full_ids[:max_seq_len], labels[:max_seq_len]
        target = np.asarray(labels[1:], dtype=np.int32)
        if not (target != IGNORE_INDEX).any():
            n_dropped += 1
            continue
        tokens.append(np.asarray(full_ids[:-1], dtype=np.int32))
        targets.append(target)
        ids.append(str(row.get("id", len(ids))))
    return TokenizedDataset(tokens, targets, ids, len(rows), n_truncated, n_dropped)


def collate(dataset: TokenizedDataset, indices, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Examples -> right-padded (tokens, targets), both int64 (B, T) with T the longest example.
    Padding sits after every real token, so causal attention never lets a real token see it."""
    T = max(len(dataset.tokens[i]) for i in indices)
    tokens = np.full((len(indices), T), pad_id, dtype=np.int64)
    targets = np.full((len(indices), T), IGNORE_INDEX, dtype=np.int64)
    for b, i in enumerate(indices):
        n = len(dataset.tokens[i])
        tokens[b, :n] = dataset.tokens[i]
        targets[b, :n] = dataset.targets[i]
    return torch.from_numpy(tokens), torch.from_numpy(targets)


class StepSampler:
    """Which examples each rank trains on at each optimizer step (see the module docstring).

    global_batch = micro_batch * world_size * grad_accum, so every rank runs `grad_accum`
    micro-batches of exactly `micro_batch` examples per step."""

    def __init__(self, lengths: np.ndarray, global_batch: int, micro_batch: int, world_size: int, seed: int):
        if global_batch % (micro_batch * world_size):
            raise ValueError(f"global batch {global_batch} is not a multiple of micro batch {micro_batch} "
                             f"x world size {world_size}")
        if len(lengths) < global_batch:
            raise ValueError(f"only {len(lengths)} usable examples, fewer than one global batch of {global_batch}; "
                             "lower --global-batch-size")
        self.lengths = np.asarray(lengths)
        self.global_batch, self.micro_batch, self.world_size, self.seed = global_batch, micro_batch, world_size, seed
        self.grad_accum = global_batch // (micro_batch * world_size)
        self.steps_per_epoch = len(lengths) // global_batch

    def global_batch_indices(self, step: int) -> np.ndarray:
        """The examples of optimizer step `step` (0-based), longest first."""
        epoch, k = divmod(step, self.steps_per_epoch)
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.lengths))
        idx = perm[k * self.global_batch:(k + 1) * self.global_batch]
        return idx[np.argsort(-self.lengths[idx], kind="stable")]

    def micro_batches(self, step: int, rank: int) -> list[np.ndarray]:
        """This rank's `grad_accum` micro-batches of step `step`, each `micro_batch` indices."""
        idx = self.global_batch_indices(step).reshape(-1, self.micro_batch)  # (world*accum, micro)
        return [idx[a * self.world_size + rank] for a in range(self.grad_accum)]

    def state_dict(self) -> dict:
        return {"seed": self.seed, "global_batch": self.global_batch, "n_examples": len(self.lengths)}

    def check_state_dict(self, state: dict) -> None:
        """A resumed run must see the same example order: same seed, batch and data size."""
        mine = self.state_dict()
        if state != mine:
            raise ValueError(f"checkpoint was written with sampler {state}, this run has {mine} "
                             "(different --seed, --global-batch-size or data); cannot resume exactly")
