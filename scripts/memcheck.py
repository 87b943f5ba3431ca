"""Peak memory of loading a checkpoint: writes a synthetic Llama-2-7B-shaped bf16 checkpoint
(random weights, ~13.5 GB on disk), loads it with lumos.model.checkpoint.load_model in a fresh
process, touches every parameter so that mapped pages are really resident, and prints
peak RSS / checkpoint size. The goal (issue 2) is <= 1.15.

    python scripts/memcheck.py                         # 7B, HF safetensors shards
    python scripts/memcheck.py --format bin            # 7B, pytorch_model-0000k-of-N.bin (ai2lumos layout)
    python scripts/memcheck.py --layers 4              # a 4-layer 7B-wide model (~2.6 GB), quicker
    python scripts/memcheck.py --preset tiny --format meta

The synthetic files are deleted afterwards unless --keep.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lumos.model.checkpoint import expected_shapes, meta_to_hf_name  # noqa: E402
from lumos.model.config import ModelArgs  # noqa: E402

SHARD_BYTES = 5_000_000_000  # transformers' default max_shard_size


def write_synthetic(args: ModelArgs, out: Path, fmt: str) -> int:
    """Random bf16 weights for `args` in layout `fmt`, written one shard at a time (the writer
    never holds more than one shard). Returns the bytes of tensor data written."""
    from safetensors.torch import save_file

    out.mkdir(parents=True)
    shapes = expected_shapes(args)
    g = torch.Generator().manual_seed(0)
    if fmt == "meta":
        (out / "params.json").write_text(json.dumps(args.to_meta_params()))
        shard_plan = [list(shapes)]
    else:
        (out / "config.json").write_text(json.dumps(args.to_hf_config("bfloat16")))
        shard_plan, size = [[]], 0
        for name, shape in shapes.items():
            nbytes = 2 * torch.Size(shape).numel()
            if shard_plan[-1] and size + nbytes > SHARD_BYTES:
                shard_plan.append([])
                size = 0
            shard_plan[-1].append(name)
            size += nbytes
    n, total, weight_map = len(shard_plan), 0, {}
    for k, names in enumerate(shard_plan):
        tensors = {}
        for name in names:
            t = torch.empty(shapes[name], dtype=torch.bfloat16)
            t.normal_(0.0, 0.02, generator=g)
            tensors[name if fmt == "meta" else meta_to_hf_name(name)] = t
            total += t.numel() * 2
        if fmt == "meta":
            torch.save(tensors, out / "consolidated.00.pth")
            continue
        fname = (f"model-{k + 1:05d}-of-{n:05d}.safetensors" if fmt == "safetensors"
                 else f"pytorch_model-{k + 1:05d}-of-{n:05d}.bin")
        if fmt == "safetensors":
            save_file(tensors, out / fname, metadata={"format": "pt"})
        else:
            torch.save(tensors, out / fname)
        weight_map.update({name: fname for name in tensors})
        print(f"  wrote {fname} ({sum(t.numel() * 2 for t in tensors.values()) / 1e9:.2f} GB)", flush=True)
        del tensors
    if fmt != "meta":
        index = "model.safetensors.index.json" if fmt == "safetensors" else "pytorch_model.bin.index.json"
        (out / index).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return total


def measure(path: str) -> dict:
    """Runs in the child process: load in bf16, read every parameter, report RSS (bytes)."""
    from lumos.model.checkpoint import load_model

    def peak():
        # VmHWM: this process's RSS high-water mark. (ru_maxrss is not used: Linux carries it
        # over from the parent through fork and exec, so it would count the writer's memory.)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # non-Linux fallback

    base = peak()
    t0 = time.perf_counter()
    model = load_model(path, dtype=torch.bfloat16)
    load_s = time.perf_counter() - t0
    after_load = peak()
    with torch.no_grad():
        checksum = sum(float(p.sum()) for p in model.parameters())  # every page now resident
        after_touch = peak()
        logits = model(torch.tensor([[1, 450, 4996]]))  # and it computes
    assert torch.isfinite(logits).all() and checksum == checksum
    return {"baseline_rss": base, "load_rss": after_load, "touch_rss": after_touch, "peak_rss": peak(),
            "load_s": load_s}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="llama2-7b", help="ModelArgs preset (llama2-7b, llama2-13b, tiny)")
    ap.add_argument("--layers", type=int, help="override n_layers (smaller file, same width)")
    ap.add_argument("--format", choices=["safetensors", "bin", "meta"], default="safetensors")
    ap.add_argument("--dir", default=None, help="where to write the synthetic checkpoint (default: a temp dir in /work or /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic checkpoint")
    ap.add_argument("--measure", help=argparse.SUPPRESS)  # internal: the child process
    opt = ap.parse_args()
    if opt.measure:
        print(json.dumps(measure(opt.measure)))
        return

    args = ModelArgs.preset(opt.preset)
    if opt.layers:
        args = dataclasses.replace(args, n_layers=opt.layers)
    args = dataclasses.replace(args, tie_word_embeddings=False)
    need = 2 * sum(torch.Size(s).numel() for s in expected_shapes(args).values())
    parent = Path(opt.dir) if opt.dir else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    if free < 1.2 * need:
        sys.exit(f"memcheck: needs {need / 1e9:.1f} GB on {parent}, only {free / 1e9:.1f} GB free; try --layers 4")
    out = Path(tempfile.mkdtemp(prefix="lumos-memcheck-", dir=parent)) / "ckpt"
    try:
        print(f"writing a synthetic {opt.preset} ({args.n_layers} layers) bf16 checkpoint, "
              f"{need / 1e9:.2f} GB, {opt.format} layout, to {out}", flush=True)
        t0 = time.perf_counter()
        write_synthetic(args, out, opt.format)
        file_bytes = sum(f.stat().st_size for f in out.iterdir())
        print(f"  done in {time.perf_counter() - t0:.0f} s; loading it in a fresh process", flush=True)
        child = subprocess.run([sys.executable, __file__, "--measure", str(out)],
                               capture_output=True, text=True)
        if child.returncode:
            sys.exit(f"memcheck: loading failed:\n{child.stderr}")
        r = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"checkpoint files        {file_bytes / 1e9:8.2f} GB")
        print(f"RSS after import torch  {r['baseline_rss'] / 1e9:8.2f} GB")
        print(f"RSS after load_model    {r['load_rss'] / 1e9:8.2f} GB  ({r['load_s']:.1f} s)")
        print(f"... and reading weights {r['touch_rss'] / 1e9:8.2f} GB")
        print(f"peak RSS (+ a forward)  {r['peak_rss'] / 1e9:8.2f} GB")
        print(f"peak RSS / file size    {r['peak_rss'] / file_bytes:8.3f}   (goal <= 1.15)")
        print(f"(peak - import) / size  {(r['peak_rss'] - r['baseline_rss']) / file_bytes:8.3f}")
    finally:
        if opt.keep:
            print(f"kept {out}")
        else:
            shutil.rmtree(out.parent)


if __name__ == "__main__":
    main()
