"""Checkpoint I/O: read HF and Meta Llama-2 directories, write HF directories.

Our Transformer uses Meta's parameter names and Meta's rotary layout, so a Meta state dict loads
as is. HF checkpoints differ in two ways, and both are handled here and nowhere else:
  1. names:  model.layers.3.self_attn.q_proj.weight  <->  layers.3.attention.wq.weight
  2. q/k rows: HF's rotary rotates the pair (x[i], x[i + D/2]) of each head ("rotate_half"),
     Meta's rotates (x[2i], x[2i+1]); HF's conversion script reorders the rows of wq and wk so the
     two compute the same attention. `permute_meta_to_hf` is that reordering, `permute_hf_to_meta`
     its inverse.

Memory: tensors come out of the files memory-mapped (safetensors' safe_open and
torch.load(mmap=True) both map the file copy-on-write), the model is built on the meta device
and takes them with load_state_dict(assign=True). Loading in the stored dtype therefore never
holds two copies: peak RSS ~= the file size (scripts/memcheck.py measures it). The q/k
permutation is written back in place, which turns those file pages into private pages, not
extra ones.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import shutil
import stat
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import ModelArgs
from .llama import Transformer


class CheckpointError(ValueError):
    """A checkpoint that can't be loaded as its config says; the message is one line that names the
    file (and the tensor, when one is at fault)."""


# ---- the HF <-> Meta key map (the only one in the project) -------------------------------------

_TOP_HF_TO_META = {
    "model.embed_tokens.weight": "tok_embeddings.weight",
    "model.norm.weight": "norm.weight",
    "lm_head.weight": "output.weight",
}
_LAYER_HF_TO_META = {
    "self_attn.q_proj": "attention.wq",
    "self_attn.k_proj": "attention.wk",
    "self_attn.v_proj": "attention.wv",
    "self_attn.o_proj": "attention.wo",
    "mlp.gate_proj": "feed_forward.w1",
    "mlp.down_proj": "feed_forward.w2",
    "mlp.up_proj": "feed_forward.w3",
    "input_layernorm": "attention_norm",
    "post_attention_layernorm": "ffn_norm",
}
_TOP_META_TO_HF = {v: k for k, v in _TOP_HF_TO_META.items()}
_LAYER_META_TO_HF = {v: k for k, v in _LAYER_HF_TO_META.items()}
_HF_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)\.weight")
_META_LAYER = re.compile(r"layers\.(\d+)\.(.+)\.weight")
# Rotary tables that older writers saved (transformers < 4.31: rotary_emb.inv_freq per layer;
# Meta: rope.freqs). We recompute them from rope_theta, so they are skipped, not loaded.
_ROTARY_BUFFERS = re.compile(r"(^|.*\.)(rotary_emb\.inv_freq|rope\.freqs)$")


def rename(name: str, top: dict, layer: re.Pattern, layers: dict, prefix: str) -> str | None:
    """One tensor name from one layout into another: a top-level name through `top`; a per-block name
    that `layer` matches (groups: block index, module) through `layers`, written f"{prefix}{i}.{module}.weight";
    None for a name the map does not know. Every layout's map (HF, Meta, llama.cpp's GGUF) goes through here."""
    if name in top:
        return top[name]
    m = layer.fullmatch(name)
    if m and m.group(2) in layers:
        return f"{prefix}{m.group(1)}.{layers[m.group(2)]}.weight"
    return None


def hf_to_meta_name(name: str) -> str | None:
    """'model.layers.3.mlp.up_proj.weight' -> 'layers.3.feed_forward.w3.weight'; None if unknown."""
    return rename(name, _TOP_HF_TO_META, _HF_LAYER, _LAYER_HF_TO_META, "layers.")


def meta_to_hf_name(name: str) -> str:
    hf = rename(name, _TOP_META_TO_HF, _META_LAYER, _LAYER_META_TO_HF, "model.layers.")
    if hf is None:
        raise CheckpointError(f"no HF name for parameter {name!r}")
    return hf


def permute_meta_to_hf(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Rows of wq/wk (n_heads * D, dim): per head, interleaved pairs (0,1),(2,3).. -> halves
    (0, D/2),(1, D/2+1).. As in HF's convert_llama_weights_to_hf.py. Returns a new tensor."""
    rows, cols = w.shape
    return w.view(n_heads, rows // n_heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def permute_hf_to_meta(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Inverse of permute_meta_to_hf."""
    rows, cols = w.shape
    return w.view(n_heads, 2, rows // n_heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def _n_heads_to_permute(meta_name: str, args: ModelArgs) -> int | None:
    if meta_name.endswith("attention.wq.weight"):
        return args.n_heads
    if meta_name.endswith("attention.wk.weight"):
        return args.kv_heads
    return None


# ---- reading ------------------------------------------------------------------------------------

_DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
           "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """torch.bfloat16 / 'bf16' / 'bfloat16' -> torch.bfloat16 (None stays None: keep as stored)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of fp32, bf16, fp16")
    return _DTYPES[dtype]


def expected_shapes(args: ModelArgs) -> dict[str, tuple[int, ...]]:
    """Meta name -> shape of every tensor the checkpoint must hold for `args` (tied models: no
    output.weight). Read off a model built on the meta device, so it can't drift from llama.py."""
    with torch.device("meta"):
        model = Transformer(args)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if args.tie_word_embeddings:
        del shapes["output.weight"]
    return shapes


def _expected(config: Path, args: ModelArgs) -> dict[str, tuple[int, ...]]:
    """expected_shapes, with a config whose numbers build no model named as the culprit."""
    try:
        return expected_shapes(args)
    except Exception as e:
        raise CheckpointError(f"{config}: describes no buildable Llama ({_reason(e)})") from None


def _shape_error(where, name: str, got, want, cfg: str, note: str = "") -> CheckpointError:
    return CheckpointError(f"{where}: {name} has shape {tuple(got)}{note} in the checkpoint but "
                           f"{tuple(want)} by its {cfg}")


# Checkpoints come from strangers: every file is opened through the checks below, and whatever a
# library raises about one becomes a CheckpointError naming it. Pickled .bin/.pth files are read
# with weights_only=True, so unpickling can rebuild tensors and plain containers but call nothing.
_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def _reason(e: BaseException) -> str:
    """A library's exception as a short clause: its type and first sentence."""
    msg = (str(e).strip().splitlines() or [""])[0].strip().split(". ")[0]
    return f"{type(e).__name__}: {msg}"[:160] if msg else type(e).__name__


def _regular_file(path: Path, what: str = "weight file") -> Path:
    """`path` if it is a regular file (symlinks followed): never a device, FIFO or directory."""
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise CheckpointError(f"{path}: {what} cannot be opened ({_reason(e)})") from None
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{path}: {what} is not a regular file")
    return path


def _read_json(path: Path) -> dict:
    """A JSON object from a config/index file, or a CheckpointError naming it."""
    try:
        obj = json.loads(_regular_file(path, "JSON file").read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path}: not valid JSON ({_reason(e)})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _args_from(path: Path, make) -> ModelArgs:
    """ModelArgs from a config file's dict via `make`; a missing or nonsensical field names the file."""
    try:
        return make(_read_json(path))
    except CheckpointError:
        raise
    except KeyError as e:
        raise CheckpointError(f"{path}: missing field {e.args[0]!r}") from None
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as e:
        raise CheckpointError(f"{path}: {_reason(e)}") from None


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    """A flat {name: tensor} dict from a torch.save file, loaded without running pickled code."""
    _regular_file(path)
    try:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):  # files from torch < 1.6 (not zip) can't be mapped: read them
                raise
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused to unpickle: the file holds objects other than tensors, "
                              f"which could run code ({_reason(e)[:120]})") from None
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable torch.save file ({_reason(e)})") from None
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: holds a {type(sd).__name__}, not a dict of named tensors")
    for name, t in sd.items():
        if not isinstance(name, str) or not isinstance(t, torch.Tensor):
            raise CheckpointError(f"{path}: entry {str(name)[:80]!r} is a {type(t).__name__}, not a tensor")
    return sd


def _index_files(d: Path, index: Path) -> list[Path]:
    """The weight files an HF shard index names. Only plain file names count: a name that
    points elsewhere (`../x`, `/dev/zero`, `sub/x`) is refused rather than opened."""
    weight_map = _read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: no 'weight_map' object of tensor name -> file name")
    files = []
    for name, fname in weight_map.items():
        if (not isinstance(fname, str) or fname in ("", ".", "..") or "/" in fname or "\\" in fname
                or fname.startswith("~")):
            raise CheckpointError(f"{index}: {name!r} is mapped to {str(fname)[:80]!r}, which is not a "
                                  "file name inside the checkpoint directory")
        files.append(fname)
    return [_regular_file(d / f) for f in sorted(set(files))]


def _hf_weight_files(d: Path) -> list[Path]:
    """The weight files of an HF directory, preferring safetensors over .bin."""
    for index, single in (("model.safetensors.index.json", "model.safetensors"),
                          ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        if (d / index).exists():
            return _index_files(d, d / index)
        if (d / single).exists() or (d / single).is_symlink():
            return [_regular_file(d / single)]
    raise CheckpointError(f"{d}: no model.safetensors[.index.json] or pytorch_model.bin[.index.json]")


def _check_dtype(path: Path, name: str, t: torch.Tensor) -> None:
    """Weights are floats: an int or bool tensor would be cast silently into nonsense."""
    if t.dtype not in _FLOAT_DTYPES:
        raise CheckpointError(f"{path}: {name} is stored as {str(t.dtype).removeprefix('torch.')}; "
                              "weights must be float32, bfloat16 or float16")


def _read_file(path: Path):
    """Yields (name, tensor) of one weight file; tensors are views of the mapped file."""
    if path.suffix != ".safetensors":
        for name, t in _torch_load(path).items():
            _check_dtype(path, name, t)
            yield name, t
        return
    try:
        f = safe_open(_regular_file(path), framework="pt")
        names = list(f.keys())
    except CheckpointError:
        raise
    except Exception as e:  # safetensors validates the header against the file size: truncation lands here
        raise CheckpointError(f"{path}: not a readable safetensors file ({_reason(e)})") from None
    with f:
        for name in names:
            try:
                t = f.get_tensor(name)
            except Exception as e:
                raise CheckpointError(f"{path}: cannot read tensor {name!r} ({_reason(e)})") from None
            _check_dtype(path, name, t)
            yield name, t


def _place(t: torch.Tensor, dtype, device, permute_heads: int | None) -> torch.Tensor:
    """Cast/move one tensor (a no-op when it already matches) and undo HF's q/k row order."""
    t = t.to(device=device, dtype=dtype or t.dtype)
    if permute_heads is not None:
        t.copy_(permute_hf_to_meta(t, permute_heads))  # in place: no second copy of the file
    return t


def _check_vocab(config: Path, args: ModelArgs, n_words: int | None) -> None:
    """A tokenizer with more ids than the embedding has rows fails at the first such token: say so now."""
    if n_words is not None and args.vocab_size < n_words:
        raise CheckpointError(f"{config}: vocab_size {args.vocab_size} (the rows of tok_embeddings.weight / "
                              f"model.embed_tokens.weight) is smaller than the tokenizer's {n_words} ids")


def _load_hf(d: Path, dtype, device, n_words=None) -> tuple[ModelArgs, dict[str, torch.Tensor]]:
    args = _args_from(d / "config.json", ModelArgs.from_hf_config)
    _check_vocab(d / "config.json", args, n_words)
    want = _expected(d / "config.json", args)
    sd: dict[str, torch.Tensor] = {}
    tied_output = None
    files = _hf_weight_files(d)
    for path in files:
        for name, t in _read_file(path):
            if _ROTARY_BUFFERS.fullmatch(name):
                continue
            meta = hf_to_meta_name(name)
            if meta == "output.weight" and args.tie_word_embeddings:
                tied_output = (name, t)  # redundant copy some writers keep; checked below
                continue
            if meta is None or meta not in want:
                raise CheckpointError(f"{path}: unknown key {name!r} (not a parameter of this Llama config)")
            if meta in sd:
                raise CheckpointError(f"{path}: key {name!r} appears in two weight files")
            if tuple(t.shape) != want[meta]:
                raise _shape_error(path, name, t.shape, want[meta], "config.json")
            sd[meta] = _place(t, dtype, device, _n_heads_to_permute(meta, args))
    for meta in want:
        if meta not in sd:
            raise CheckpointError(f"{d}: missing key {meta_to_hf_name(meta)!r} ({meta}) in "
                                  f"{', '.join(f.name for f in files)}")
    if tied_output is not None and not torch.equal(tied_output[1].to(sd["tok_embeddings.weight"]),
                                                   sd["tok_embeddings.weight"]):
        raise CheckpointError(f"{d}: config.json ties the embeddings but {tied_output[0]!r} "
                              "differs from model.embed_tokens.weight")
    return args, sd


# Model-parallel shards of Meta's consolidated.NN.pth: the dim each weight was split along
# (fairscale ColumnParallelLinear splits outputs = dim 0, RowParallelLinear inputs = dim 1).
# Norms are replicated. tok_embeddings: Llama-2's ParallelEmbedding splits dim 1 (Llama-3's
# vocab-parallel one dim 0), so it is chosen by shape.
_MP_DIM = {"wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "output": 0, "wo": 1, "w2": 1}


def _mp_dim(name: str, shard_shape, full_shape) -> int | None:
    if tuple(shard_shape) == tuple(full_shape):
        return None  # replicated (or a single shard)
    key = name.split(".")[-2]
    if key in _MP_DIM:
        return _MP_DIM[key]
    if key == "tok_embeddings":
        return 1 if shard_shape[0] == full_shape[0] else 0
    return None  # norms: replicated; a wrong shape is caught by the shape check


def _load_meta(d: Path, dtype, device, n_words=None) -> tuple[ModelArgs, dict[str, torch.Tensor]]:
    params = _read_json(d / "params.json")
    files = sorted(d.glob("consolidated.*.pth"))
    if not files:
        raise CheckpointError(f"{d}: params.json but no consolidated.NN.pth")
    shards = [{k: v for k, v in _torch_load(f).items() if not _ROTARY_BUFFERS.fullmatch(k)} for f in files]
    for f, shard in zip(files, shards):
        for name, t in shard.items():
            _check_dtype(f, name, t)
    args = _args_from(d / "params.json", ModelArgs.from_meta_params)
    if not isinstance(params.get("vocab_size", -1), int) or params.get("vocab_size", -1) <= 0:
        # Meta leaves it to the tokenizer: read it off the weights
        if "output.weight" not in shards[0]:
            raise CheckpointError(f"{files[0]}: missing key 'output.weight'")
        args = dataclasses.replace(args, vocab_size=sum(s["output.weight"].shape[0] for s in shards))
    _check_vocab(d / "params.json", args, n_words)
    want = _expected(d / "params.json", args)
    for f, shard in zip(files, shards):
        for name in shard:
            if name not in want:
                raise CheckpointError(f"{f}: unknown key {name!r} (not a parameter of this Llama config)")
        for name in want:
            if name not in shard:
                raise CheckpointError(f"{f}: missing key {name!r}")
    sd = {}
    for name, shape in want.items():
        parts = [s.pop(name) for s in shards]
        dim = _mp_dim(name, parts[0].shape, shape)
        where = files[0] if len(files) == 1 else d
        try:
            t = parts[0] if dim is None else torch.cat(parts, dim=dim)
        except RuntimeError:
            raise CheckpointError(f"{d}: {name} has shapes {', '.join(str(tuple(p.shape)) for p in parts)} "
                                  f"in {', '.join(f.name for f in files)}, which don't merge into {shape}") from None
        if tuple(t.shape) != shape:
            note = f" (merged from {len(parts)} shards)" if len(parts) > 1 else ""
            raise _shape_error(where, name, t.shape, shape, "params.json", note)
        sd[name] = _place(t, dtype, device, None)
        del parts, t
    return args, sd


def load_checkpoint(path: str | os.PathLike, dtype: torch.dtype | str | None = torch.float32,
                    device: str | torch.device = "cpu", n_words: int | None = None
                    ) -> tuple[ModelArgs, dict[str, torch.Tensor]]:
    """Read an HF (config.json + safetensors or .bin, single or sharded) or Meta (params.json +
    consolidated.NN.pth, any number of model-parallel shards) directory.

    Returns (args, state_dict with Meta names, q/k rows in Meta order). dtype None keeps the
    stored dtype. Tied models (args.tie_word_embeddings) get output.weight = tok_embeddings.weight.
    n_words: the tokenizer's id count, if known; a smaller vocabulary is refused up front.
    Raises CheckpointError, one line naming the file (and the tensor) for anything a checkpoint can
    get wrong: unreadable, truncated or non-regular files, index entries outside the directory,
    pickles holding more than tensors, non-float weights, missing, unknown or wrongly shaped tensors."""
    d = Path(path)
    if not d.is_dir():
        raise CheckpointError(f"{d}: no such checkpoint directory")
    dtype = as_dtype(dtype)
    if (d / "config.json").exists():
        args, sd = _load_hf(d, dtype, device, n_words)
    elif (d / "params.json").exists():
        args, sd = _load_meta(d, dtype, device, n_words)
    else:
        raise CheckpointError(f"{d}: neither an HF checkpoint (config.json) nor a Meta one (params.json)")
    if args.tie_word_embeddings:
        sd["output.weight"] = sd["tok_embeddings.weight"]
    return args, sd


def load_model(path: str | os.PathLike, dtype: torch.dtype | str | None = torch.float32,
               device: str | torch.device = "cpu", n_words: int | None = None) -> Transformer:
    """load_checkpoint + a Transformer built on the meta device that takes the tensors as its
    parameters (no random init, no copy)."""
    args, sd = load_checkpoint(path, dtype, device, n_words)
    with torch.device("meta"):
        model = Transformer(args)
    model.load_state_dict(sd, strict=True, assign=True)
    if args.tie_word_embeddings:  # assign=True made two Parameters; share one again
        model.output.weight = model.tok_embeddings.weight
    return model


# ---- writing ------------------------------------------------------------------------------------

def save_hf(model_or_state_dict: Transformer | dict[str, torch.Tensor], args: ModelArgs,
            out_dir: str | os.PathLike, dtype: torch.dtype | str | None = None,
            max_shard_bytes: int = 5_000_000_000, tokenizer: str | os.PathLike | None = None) -> Path:
    """Write an HF Llama directory that transformers.LlamaForCausalLM.from_pretrained loads:
    config.json, model.safetensors (or model-0000k-of-0000N.safetensors + index json when the
    weights pass max_shard_bytes; transformers' default is 5 GB), and tokenizer.model if given.

    dtype None keeps each tensor's dtype. Tied models write no lm_head.weight (as transformers).
    Each file is written under a temporary name and renamed, so a model memory-mapped from
    out_dir keeps its old files; earlier weight files that the new ones don't replace are removed."""
    sd = model_or_state_dict.state_dict() if isinstance(model_or_state_dict, torch.nn.Module) else model_or_state_dict
    dtype = as_dtype(dtype)
    want = expected_shapes(args)
    for name in sd:
        if name not in want and not (name == "output.weight" and args.tie_word_embeddings):
            raise CheckpointError(f"save_hf: unknown key {name!r} (not a parameter of this Llama config)")
    for name, shape in want.items():
        if name not in sd:
            raise CheckpointError(f"save_hf: missing key {name!r}")
        if tuple(sd[name].shape) != shape:
            raise _shape_error("save_hf", name, sd[name].shape, shape, "args")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    # Plan the shards by byte size first, then convert one shard at a time (bounded memory).
    shards, size = [[]], 0
    total = 0
    for name in want:
        nbytes = sd[name].numel() * (dtype or sd[name].dtype).itemsize
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
        total += nbytes
    n = len(shards)
    names = ["model.safetensors"] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    for stale in [*out.glob("model*.safetensors"), *out.glob("pytorch_model*.bin"), *out.glob("*.index.json")]:
        if stale.name not in names:
            stale.unlink()
    weight_map = {}
    for fname, shard in zip(names, shards):
        tensors = {}
        for name in shard:
            t = sd[name].detach().to(device="cpu", dtype=dtype or sd[name].dtype)
            heads = _n_heads_to_permute(name, args)
            tensors[meta_to_hf_name(name)] = permute_meta_to_hf(t, heads) if heads else t.contiguous()
            weight_map[meta_to_hf_name(name)] = fname
        _atomic(out / fname, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
        del tensors
    if n > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        _atomic(out / "model.safetensors.index.json", lambda tmp: Path(tmp).write_text(json.dumps(index, indent=2)))
    stored = dtype or sd["tok_embeddings.weight"].dtype
    config = args.to_hf_config(str(stored).removeprefix("torch."))
    _atomic(out / "config.json", lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n"))
    if tokenizer is not None:
        _atomic(out / "tokenizer.model", lambda tmp: shutil.copyfile(tokenizer, tmp))
    return out


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp))
    os.replace(tmp, path)
