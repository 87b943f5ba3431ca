"""Processes, devices and FSDP2 sharding.

One code path from `python train.py` (one process, no process group) to
`torchrun --nnodes=M --nproc_per_node=N train.py` (gloo on CPU, nccl on CUDA). Under torchrun
every rank holds 1/world of each parameter, gradient and optimizer state (FSDP2 `fully_shard`
per TransformerBlock, then the root for embeddings/norm/output); a single process trains the
plain module, which on CPU is the fastest thing to do.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Dist:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device
    mesh: object | None  # a 1-D DeviceMesh over all ranks, None in a single process

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def usable_cpus() -> int:
    """CPUs this process may run on (cgroup/affinity aware, unlike os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def init_distributed(device: str | None = None, threads: int | None = None) -> Dist:
    """Start the process group when launched by torchrun (WORLD_SIZE > 1), pick the device and
    set the CPU thread count.

    torchrun exports OMP_NUM_THREADS=1 to every worker; on CPU that would leave cores idle, so
    the default is the usable CPUs split evenly among this node's ranks."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    torch.set_num_threads(threads or max(1, usable_cpus() // local_world_size))
    mesh = None
    if world_size > 1:
        from torch.distributed.device_mesh import init_device_mesh
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", device_id=dev if dev.type == "cuda" else None)
        mesh = init_device_mesh(dev.type, (world_size,))
    return Dist(rank, world_size, local_rank, local_world_size, dev, mesh)


def shard_model(model: nn.Module, d: Dist, param_dtype: torch.dtype = torch.float32,
                activation_checkpointing: bool = False) -> nn.Module:
    """Apply activation checkpointing and FSDP2 to `model.layers` and the root, in place.

    Call on the meta-device model, before `to_empty()`: sharding then allocates only this rank's
    shards. Gradients are SUMMED across ranks (not averaged): the loss is already divided by the
    label count of the whole global batch, so the sum is exactly the single-process gradient.
    gloo has no PREMUL_SUM/AVG for this, hence divide factor 1 with sum-only collectives."""
    if activation_checkpointing:
        # Recompute each block's activations in backward: memory O(1 block) instead of O(n_layers).
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
        for i, block in enumerate(model.layers):
            model.layers[i] = checkpoint_wrapper(block, preserve_rng_state=False)
    if d.mesh is None:
        return model
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    for block in model.layers:
        fully_shard(block, mesh=d.mesh, mp_policy=mp)
    fully_shard(model, mesh=d.mesh, mp_policy=mp)
    for m in model.modules():
        if hasattr(m, "set_gradient_divide_factor"):  # every FSDPModule: the blocks and the root
            m.set_gradient_divide_factor(1.0)
            m.set_force_sum_reduction_for_comms(True)
    return model


def all_reduce_sum(x: float, d: Dist) -> float:
    """Sum a Python number over ranks (identity in a single process)."""
    if d.mesh is None:
        return x
    t = torch.tensor([x], dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return t.item()


def barrier(d: Dist) -> None:
    if d.mesh is not None:
        dist.barrier()


def shutdown(d: Dist, code: int = 0) -> None:
    """End the process cleanly. Under torchrun: barrier, destroy the group, then a hard exit.

    A 2-process gloo job sometimes aborted after its work was done ("terminate called without an
    active exception", a gloo thread torn down during interpreter exit); exiting with os._exit
    after flushing skips that teardown. On failure (code != 0) no barrier: the other ranks may
    never reach it, and torchrun stops them when this one exits. One process returns normally."""
    if d.mesh is None:
        return
    try:
        if code == 0:
            dist.barrier()
            dist.destroy_process_group()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
