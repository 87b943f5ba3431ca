"""A checkpoint spec -> a local directory: THE resolve function of the project.

    resolve_checkpoint("checkpoints/maths_plan_iterative")   -> that directory, as is
    resolve_checkpoint("smollm2")                            -> the pretrained base (lumos.model.smollm2)
    resolve_checkpoint("ai2lumos/lumos_maths_plan_iterative") -> a snapshot in the Hugging Face cache

Hub ids are downloaded by `huggingface_hub.snapshot_download` (an optional dependency:
`pip install huggingface_hub`), into the cache every Hugging Face tool shares, so a 7B model already
there is not fetched again. It honours HF_HOME / HF_HUB_CACHE (where), HF_TOKEN (gated repos such as
meta-llama) and HF_ENDPOINT (a mirror); an interrupted download resumes on the next call. Only what
load_checkpoint reads is fetched: the top-level *.json files, tokenizer.model, and the weights
(safetensors when the repo has them, else pytorch_model*.bin, else consolidated.NN.pth; never
training_args.bin or optimizer states). Without network, a snapshot already in the cache is used.
Like lumos/http.py, this is I/O: lumos/model never imports it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


class HubError(RuntimeError):
    """A spec that names no checkpoint we can get; the message is one line."""


def looks_local(spec: str) -> bool:
    """A spec meant as a local path: it starts with . / ~, or its first part is a directory here
    (`checkpoints/nope`, `runs/plan` once runs/ exists). Such a spec never goes to the hub."""
    return spec.startswith((".", "/", "~")) or Path(Path(spec).parts[0] if Path(spec).parts else ".").is_dir()


def is_repo_id(spec: str) -> bool:
    """'ai2lumos/lumos_maths_plan_iterative' -> True (and not an existing local path)."""
    return bool(_REPO_ID.fullmatch(spec)) and ".." not in spec and not Path(spec).exists()


def resolve_checkpoint(spec: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """A local directory as is; `smollm2`: the pretrained SmolLM2-135M-Instruct (converted once); a hub
    id like `ai2lumos/lumos_maths_plan_iterative`: downloaded once (see `download`). A local-looking
    path that does not exist, or anything else: HubError at once, without touching the network."""
    from lumos.model import smollm2
    try:
        base = smollm2.resolve(spec)  # "smollm2" (or its cache dir): the pretrained base, fetched on first use
    except smollm2.BaseUnavailable as e:
        raise HubError(str(e)) from None
    if base is not None:
        return base
    p = Path(spec).expanduser()
    if p.is_dir():
        return p
    if p.exists():
        raise HubError(f"checkpoint {spec} is a file: pass the directory holding config.json (or params.json)")
    if looks_local(spec):
        raise HubError(f"checkpoint {spec}: no such directory")
    if is_repo_id(spec):
        try:
            return download(spec, cache_dir=cache_dir)
        except Exception as e:  # network, not found, no huggingface_hub: one line for the user
            msg = (str(e).splitlines() or [type(e).__name__])[0]
            raise HubError(f"checkpoint {spec} is not a local directory, and downloading it from the hub "
                           f"failed: {msg}") from None
    raise HubError(f"checkpoint {spec} not found (expected a directory or a hub id such as "
                   "ai2lumos/lumos_maths_plan_iterative)")


def wanted_files(files: list[str]) -> list[str]:
    """The files load_checkpoint reads, from a repo listing."""
    top = [f for f in files if "/" not in f]  # subfolders (e.g. original/) are other formats
    weights = ([f for f in top if f.endswith(".safetensors")]
               or [f for f in top if re.fullmatch(r"pytorch_model(-\d+-of-\d+)?\.bin", f)]
               or [f for f in top if re.fullmatch(r"consolidated\.\d+\.pth", f)])
    extra = [f for f in top if f.endswith(".json") or f == "tokenizer.model"]
    return sorted(set(weights + extra))


def download(repo_id: str, cache_dir: str | os.PathLike | None = None, revision: str = "main",
             token: str | None = None) -> Path:
    """Fetch what load_checkpoint needs of `repo_id` at `revision` with huggingface_hub; return the snapshot
    directory. cache_dir: default the Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub);
    token: default $HF_TOKEN; the endpoint: $HF_ENDPOINT, else https://huggingface.co."""
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise HubError(f"{repo_id!r} is not a hub id of the form org/name")
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError:
        raise HubError("downloading from the hub needs huggingface_hub: pip install huggingface_hub") from None
    endpoint = os.environ.get("HF_ENDPOINT") or None   # read now: huggingface_hub reads it once, at import
    try:
        info = HfApi(endpoint=endpoint, token=token).model_info(repo_id, revision=revision)
    except Exception as e:
        if (cached := cached_snapshot(repo_id, revision, cache_dir)) is not None:   # offline, or the hub is down
            return cached
        raise HubError(f"{repo_id}@{revision}: {type(e).__name__}: {(str(e).splitlines() or [''])[0]} "
                       "(no such repo or revision, no network, or a gated repo: set HF_TOKEN)") from None
    files = wanted_files([s.rfilename for s in info.siblings or []])
    if not any(f.endswith((".safetensors", ".bin", ".pth")) for f in files):
        raise HubError(f"{repo_id}@{revision}: no model weights (safetensors, pytorch_model*.bin "
                       "or consolidated.NN.pth) in the repository")
    return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, endpoint=endpoint,
                                  token=token, allow_patterns=files))


def cached_snapshot(repo_id: str, revision: str = "main", cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The snapshot of repo_id@revision already in the Hugging Face cache (its documented layout:
    models--org--name/refs/<revision> holds the commit, snapshots/<commit>/ the files), None without weights."""
    from huggingface_hub import constants
    root = Path(cache_dir or constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
    ref = root / "refs" / revision
    snap = root / "snapshots" / (ref.read_text().strip() if ref.is_file() else revision)
    has_weights = snap.is_dir() and any(p.suffix in (".safetensors", ".bin", ".pth") for p in snap.iterdir())
    return snap if has_weights else None
