"""GGUF reader: llama.cpp's single-file format -> our ModelArgs, state dict and tokenizer spec.

    g = read_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")
    g.metadata["llama.embedding_length"]        # 576
    args, sd = to_checkpoint(g)                  # Meta names, fp32, ready for Transformer.load_state_dict

The file (version 2 or 3, little-endian):
    "GGUF", version u32, n_tensors u64, n_kv u64
    n_kv x      key (string), value type u32, value         (string = u64 length + UTF-8 bytes;
                                                             array = item type u32, count u64, items)
    n_tensors x name (string), n_dims u32, dims u64 x n_dims, ggml type u32, offset u64
    padding to `general.alignment` (default 32), then the tensor data; offsets count from there.
Dims are ggml's: dims[0] is the contiguous one, so a torch shape is the dims reversed.

Quantised types store blocks of 32 values sharing fp16 scales (ggml-common.h):
    Q8_0: d, 32 x int8                  value = d * q
    Q4_1: d, m, 16 bytes of nibbles     value = d * q + m; byte j holds value j (low nibble)
                                        and value j + 16 (high nibble)

Rotary layout: llama.cpp's convert_hf_to_gguf.py reorders HF's q/k rows back into Meta's
interleaved order, which is what lumos/model uses; so tensors are taken as they are (the
real-weights test compares against transformers reading the same GGUF with its own un-permute).
"""
from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import rename
from .config import ModelArgs

MAGIC = b"GGUF"
F32, F16, Q4_0, Q4_1, Q8_0, BF16 = 0, 1, 2, 3, 8, 30
TYPE_NAMES = {F32: "F32", F16: "F16", Q4_0: "Q4_0", Q4_1: "Q4_1", Q8_0: "Q8_0", BF16: "BF16"}
# ggml type -> (values per block, bytes per block)
BLOCK = {F32: (1, 4), F16: (1, 2), BF16: (1, 2), Q4_1: (32, 20), Q8_0: (32, 34)}

# metadata value types: id -> struct format (8 = string and 9 = array are read by hand)
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8", 12: "<f8"}
_STRING, _ARRAY = 8, 9


class GGUFError(ValueError):
    """A file that is not a GGUF we can read; the message is one line."""


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # torch order (ggml dims reversed)
    type: int               # ggml type id
    offset: int             # absolute byte offset in the file
    nbytes: int


@dataclass
class GGUFFile:
    path: Path
    version: int
    metadata: dict
    tensors: dict[str, TensorInfo]

    def tensor(self, name: str) -> torch.Tensor:
        """The named tensor, dequantised to fp32, in its torch shape."""
        info = self.tensors[name]
        raw = np.memmap(self.path, dtype=np.uint8, mode="r", offset=info.offset, shape=(info.nbytes,))
        return dequantize(np.array(raw), info.type, info.shape)


class _Reader:
    """Sequential little-endian reads from a bytes-like buffer."""

    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise GGUFError(f"file ends at byte {len(self.buf)} inside a field at {self.pos}")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def scalar(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.take(self.scalar("<Q")).decode("utf-8", errors="replace")

    def value(self, vtype: int):
        if vtype == 6:  # f32: the shortest decimal that is this f32 (1e-05, not 9.999999747378752e-06)
            return float(str(np.float32(self.scalar("<f"))))
        if vtype in _SCALAR:
            return self.scalar(_SCALAR[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype, n = self.scalar("<I"), self.scalar("<Q")
            if itype in _NUMPY:  # numbers: one numpy read, not n struct calls
                dt = np.dtype(_NUMPY[itype])
                items = np.frombuffer(self.take(n * dt.itemsize), dtype=dt)
                return [float(str(x)) for x in items] if itype == 6 else items.tolist()
            return [self.value(itype) for _ in range(n)]
        raise GGUFError(f"unknown metadata value type {vtype} at byte {self.pos}")


def read_gguf(path: str | Path) -> GGUFFile:
    """Parse the header, metadata and tensor table (tensor data stays on disk until .tensor())."""
    path = Path(path)
    with open(path, "rb") as f:
        if f.read(4) != MAGIC:
            raise GGUFError(f"{path}: not a GGUF file (no 'GGUF' magic)")
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    r = _Reader(buf)
    r.take(4)
    version = r.scalar("<I")
    if version not in (2, 3):
        raise GGUFError(f"{path}: GGUF version {version}; this reader knows versions 2 and 3")
    n_tensors, n_kv = r.scalar("<Q"), r.scalar("<Q")
    metadata = {}
    for _ in range(n_kv):
        key = r.string()
        metadata[key] = r.value(r.scalar("<I"))
    table = []
    for _ in range(n_tensors):
        name = r.string()
        dims = [r.scalar("<Q") for _ in range(r.scalar("<I"))]
        table.append((name, tuple(reversed(dims)), r.scalar("<I"), r.scalar("<Q")))
    align = int(metadata.get("general.alignment", 32))
    data_start = -(-r.pos // align) * align
    tensors = {}
    for name, shape, gtype, offset in table:
        if gtype not in BLOCK:
            raise GGUFError(f"{path}: tensor {name} has ggml type {TYPE_NAMES.get(gtype, gtype)}; "
                            f"this reader dequantises {', '.join(TYPE_NAMES[t] for t in BLOCK)}")
        per_block, block_bytes = BLOCK[gtype]
        n = int(np.prod(shape))
        if n % per_block:
            raise GGUFError(f"{path}: tensor {name} of {n} values is not whole blocks of {per_block}")
        info = TensorInfo(name, shape, gtype, data_start + offset, n // per_block * block_bytes)
        if info.offset + info.nbytes > len(buf):
            raise GGUFError(f"{path}: tensor {name} runs past the end of the file (truncated download?)")
        tensors[name] = info
    buf.close()
    return GGUFFile(path, version, metadata, tensors)


def dequantize(raw: np.ndarray, gtype: int, shape: tuple[int, ...]) -> torch.Tensor:
    """raw: the tensor's bytes (uint8) -> fp32 tensor of `shape`, with ggml's arithmetic (fp16
    scales widened to fp32, then one fp32 multiply (and add))."""
    if gtype == F32:
        out = raw.view("<f4")
    elif gtype == F16:
        out = raw.view("<f2").astype(np.float32)
    elif gtype == BF16:  # the top half of an fp32
        out = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    elif gtype == Q8_0:
        blocks = raw.reshape(-1, 34)
        d = blocks[:, :2].copy().view("<f2").astype(np.float32)    # (n, 1)
        q = blocks[:, 2:].view(np.int8).astype(np.float32)          # (n, 32)
        out = q * d
    elif gtype == Q4_1:
        blocks = raw.reshape(-1, 20)
        d = blocks[:, 0:2].copy().view("<f2").astype(np.float32)
        m = blocks[:, 2:4].copy().view("<f2").astype(np.float32)
        qs = blocks[:, 4:]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)  # values 0..15, 16..31
        out = q * d + m
    else:
        raise GGUFError(f"cannot dequantise ggml type {TYPE_NAMES.get(gtype, gtype)}")
    out = np.ascontiguousarray(out, dtype=np.float32)
    return torch.from_numpy(out if out.flags.writeable else out.copy()).reshape(shape)


# ---- llama.cpp's names and metadata -> ours ------------------------------------------------------

_TOP = {"token_embd.weight": "tok_embeddings.weight", "output_norm.weight": "norm.weight",
        "output.weight": "output.weight"}
_LAYER = {"attn_norm": "attention_norm", "attn_q": "attention.wq", "attn_k": "attention.wk",
          "attn_v": "attention.wv", "attn_output": "attention.wo", "ffn_norm": "ffn_norm",
          "ffn_gate": "feed_forward.w1", "ffn_down": "feed_forward.w2", "ffn_up": "feed_forward.w3"}
_BLK = re.compile(r"blk\.(\d+)\.(\w+)\.weight")


def gguf_to_meta_name(name: str) -> str | None:
    """'blk.3.ffn_up.weight' -> 'layers.3.feed_forward.w3.weight'; None for a name we don't use."""
    return rename(name, _TOP, _BLK, _LAYER, "layers.")


def model_args(g: GGUFFile) -> ModelArgs:
    """ModelArgs from the `llama.*` metadata. No output.weight in the file = tied embeddings."""
    md = g.metadata
    arch = md.get("general.architecture")
    if arch != "llama":
        raise GGUFError(f"{g.path}: architecture {arch!r}; only 'llama' is supported")
    if md.get("llama.rope.scaling.type", "none") != "none":
        raise GGUFError(f"{g.path}: rope scaling {md['llama.rope.scaling.type']!r} is not supported")
    n_heads = md["llama.attention.head_count"]
    n_kv = md.get("llama.attention.head_count_kv", n_heads)
    dim = md["llama.embedding_length"]
    rot = md.get("llama.rope.dimension_count", dim // n_heads)
    if rot != dim // n_heads:
        raise GGUFError(f"{g.path}: rotary dimension {rot} != head dim {dim // n_heads} (partial rotary)")
    vocab = md.get("llama.vocab_size", len(md.get("tokenizer.ggml.tokens", [])))
    return ModelArgs(dim=dim, n_layers=md["llama.block_count"], n_heads=n_heads,
                     n_kv_heads=None if n_kv == n_heads else n_kv, vocab_size=vocab,
                     norm_eps=float(md.get("llama.attention.layer_norm_rms_epsilon", 1e-5)),
                     rope_theta=float(md.get("llama.rope.freq_base", 10000.0)),
                     max_seq_len=md.get("llama.context_length", 4096),
                     tie_word_embeddings="output.weight" not in g.tensors,
                     ffn_hidden_dim=md["llama.feed_forward_length"])


def to_checkpoint(g: GGUFFile, progress=None) -> tuple[ModelArgs, dict[str, torch.Tensor]]:
    """(args, state dict with Meta names, fp32). Tied models get output.weight =
    tok_embeddings.weight, as load_checkpoint returns them. `progress(name)` is called per tensor."""
    from .checkpoint import expected_shapes
    args = model_args(g)
    want = expected_shapes(args)
    sd = {}
    for name, info in g.tensors.items():
        meta = gguf_to_meta_name(name)
        if meta is None or meta not in want:
            raise GGUFError(f"{g.path}: unknown tensor {name!r} (not a parameter of this Llama)")
        if info.shape != want[meta]:
            raise GGUFError(f"{g.path}: {name} has shape {info.shape} but the metadata implies {want[meta]}")
        sd[meta] = g.tensor(name)
        if progress is not None:
            progress(name)
    missing = [k for k in want if k not in sd]
    if missing:
        raise GGUFError(f"{g.path}: missing tensor for {missing[0]} ({len(missing)} missing)")
    if args.tie_word_embeddings:
        sd["output.weight"] = sd["tok_embeddings.weight"]
    return args, sd


def tokenizer_spec(g: GGUFFile) -> dict:
    """The byte-level BPE vocabulary the file carries: tokens (id order), merges ("a b", rank
    order), special token ids (ggml token type 3 = control), bos/eos/pad, add_bos, pre-tokenizer."""
    md = g.metadata
    if md.get("tokenizer.ggml.model") != "gpt2":
        raise GGUFError(f"{g.path}: tokenizer model {md.get('tokenizer.ggml.model')!r}; only byte-level BPE "
                        "('gpt2') is read from GGUF")
    tokens, types = md["tokenizer.ggml.tokens"], md.get("tokenizer.ggml.token_type", [])
    return {
        "tokens": tokens,
        "merges": md["tokenizer.ggml.merges"],
        "special": [i for i, t in enumerate(types) if t == 3],
        "bos_id": md.get("tokenizer.ggml.bos_token_id"),
        "eos_id": md.get("tokenizer.ggml.eos_token_id"),
        "unk_id": md.get("tokenizer.ggml.unknown_token_id"),
        "pad_id": md.get("tokenizer.ggml.padding_token_id"),
        "add_bos": bool(md.get("tokenizer.ggml.add_bos_token", False)),
        "pre": md.get("tokenizer.ggml.pre", "gpt2"),
        "chat_template": md.get("tokenizer.chat_template"),
    }
