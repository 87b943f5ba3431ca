"""Peak memory per rank of `train.py --init` on a 2-rank CPU (gloo) job: writes a synthetic bf16 HF
checkpoint, then under torchrun builds the FSDP model from it exactly as the trainer does
(lumos.train.trainer.load_init + build_model) and prints each rank's peak RSS (VmHWM) in GB.

    python scripts/initmem.py                              # dim 1536, 8 layers: a 0.65 GB checkpoint
    python scripts/initmem.py --code /path/to/other/checkout   # the same measurement of another version

--code points at the checkout whose `lumos` is measured (default: this one), so one command measures a
change before and after (older trainers have no load_init: their build_model reads the checkpoint).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def vm_hwm_gb() -> float:
    """This process's peak resident set (Linux VmHWM; ru_maxrss would include what torchrun had)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def worker(ckpt: str) -> None:
    sys.path.insert(0, os.environ["LUMOS_CODE"])
    import torch
    import torch.distributed as dist
    from lumos.train import trainer
    from lumos.train.distributed import init_distributed, shutdown
    d = init_distributed("cpu", threads=1)
    start = vm_hwm_gb()
    cfg = trainer.TrainConfig(data="", out="", tokenizer=ckpt, init=ckpt)
    if hasattr(trainer, "load_init"):
        model, _ = trainer.build_model(cfg, d, torch.float32, trainer.load_init(cfg, d, None))
    else:
        model, _ = trainer.build_model(cfg, d, torch.float32)
    n = sum(p.numel() for p in model.parameters())
    peaks = [None] * d.world_size
    dist.all_gather_object(peaks, {"rank": d.rank, "start_gb": round(start, 3), "peak_gb": round(vm_hwm_gb(), 3)})
    if d.is_main:
        print(json.dumps({"code": os.environ["LUMOS_CODE"], "params": n, "ranks": peaks}), flush=True)
    shutdown(d)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=1536, help="model width (default 1536)")
    p.add_argument("--layers", type=int, default=8, help="transformer blocks (default 8)")
    p.add_argument("--code", default=str(ROOT), help="checkout whose lumos is measured (default: this one)")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one torchrun rank
    a = p.parse_args()
    if a.worker:
        return worker(a.worker)
    if a.dim <= 0 or a.layers <= 0:
        p.error("--dim and --layers must be positive")
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "scripts"))
    from memcheck import write_synthetic

    from lumos.model.config import ModelArgs
    args = dataclasses.replace(ModelArgs.preset("llama2-7b"), dim=a.dim, n_layers=a.layers, n_heads=a.dim // 128)
    tmp = Path(tempfile.mkdtemp(prefix="lumos-initmem-"))
    try:
        ckpt = tmp / "ckpt"
        size = write_synthetic(args, ckpt, "safetensors")
        shutil.copy(ROOT / "data/tokenizer/llama2.model", ckpt / "tokenizer.model")
        print(f"synthetic bf16 checkpoint: {size / 1e9:.2f} GB (dim {a.dim}, {a.layers} layers)", flush=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "LUMOS_CODE": str(Path(a.code).resolve()), "OMP_NUM_THREADS": "1"}
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                            "--master_addr=127.0.0.1", f"--master_port={port}", __file__, "--worker", str(ckpt)],
                           env=env, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"initmem: the 2-rank run failed:\n{r.stderr[-3000:]}")
        result = json.loads(r.stdout.strip().splitlines()[-1])
        result["checkpoint_gb"] = round(size / 1e9, 3)
        print(json.dumps(result))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
