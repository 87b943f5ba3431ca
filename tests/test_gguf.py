"""GGUF reader: hand-built blocks, tiny files written by the `gguf` package (llama.cpp's own Python
writer and quantiser, the reference) in every type we read, and a tiny Llama whose logits must
equal transformers' after transformers' own GGUF loader (which un-permutes q/k for HF's rotary)."""
import struct

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf", reason="the gguf package (test extra) writes the reference files")
from gguf import GGMLQuantizationType as Q  # noqa: E402

from lumos.model.gguf import (BF16, F16, F32, Q4_1, Q8_0, GGUFError, dequantize, gguf_to_meta_name,  # noqa: E402
                              model_args, read_gguf, to_checkpoint, tokenizer_spec)

torch.set_num_threads(1)


# ---- blocks by hand ------------------------------------------------------------------------------

def test_q4_1_block_by_hand():
    # d = 0.5 (fp16 0x3800), m = -1.0 (0xBC00); byte j: low nibble j -> value j, high 15-j -> value j+16
    block = struct.pack("<HH", 0x3800, 0xBC00) + bytes(j | ((15 - j) << 4) for j in range(16))
    got = dequantize(np.frombuffer(block, np.uint8), Q4_1, (32,))
    want = [j * 0.5 - 1 for j in range(16)] + [(15 - j) * 0.5 - 1 for j in range(16)]
    assert got.tolist() == want


def test_q8_0_block_by_hand():
    block = struct.pack("<H", 0x3400) + np.arange(-16, 16, dtype=np.int8).tobytes()  # d = 0.25
    assert dequantize(np.frombuffer(block, np.uint8), Q8_0, (32,)).tolist() == [q * 0.25 for q in range(-16, 16)]


def test_float_types_by_hand():
    assert dequantize(np.frombuffer(struct.pack("<HH", 0x3FC0, 0xC080), np.uint8), BF16, (2,)).tolist() == [1.5, -4.0]
    assert dequantize(np.frombuffer(struct.pack("<HH", 0x3E00, 0xC400), np.uint8), F16, (2,)).tolist() == [1.5, -4.0]
    assert dequantize(np.frombuffer(struct.pack("<ff", 1.5, -4.0), np.uint8), F32, (1, 2)).tolist() == [[1.5, -4.0]]


# ---- files written by llama.cpp's gguf package ------------------------------------------------------

TYPES = {"F32": Q.F32, "F16": Q.F16, "BF16": Q.BF16, "Q8_0": Q.Q8_0, "Q4_1": Q.Q4_1}


def write(path, tensors, arch="llama", kv=()):
    """tensors: name -> (fp32 array in torch shape, ggml type). Quantised by gguf.quants."""
    w = gguf.GGUFWriter(str(path), arch)
    for key, value in kv:
        getattr(w, f"add_{key}")(*value) if isinstance(value, tuple) else getattr(w, f"add_{key}")(value)
    for name, (a, qtype) in tensors.items():
        if qtype in (Q.F32,):
            w.add_tensor(name, a.astype(np.float32))
        elif qtype == Q.F16:
            w.add_tensor(name, a.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(a.astype(np.float32), qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("name", TYPES)
def test_every_type_equals_the_reference_dequantiser(tmp_path, name):
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (3, 64)).astype(np.float32)
    write(tmp_path / "t.gguf", {"x.weight": (a, TYPES[name])})
    g = read_gguf(tmp_path / "t.gguf")
    info = g.tensors["x.weight"]
    assert (info.shape, info.type) == ((3, 64), int(TYPES[name]))
    ref = gguf.GGUFReader(str(tmp_path / "t.gguf")).tensors[0]
    want = gguf.quants.dequantize(ref.data, ref.tensor_type).reshape(3, 64).astype(np.float32)
    got = g.tensor("x.weight")
    assert torch.equal(got, torch.from_numpy(want))  # bit for bit: the same fp32 arithmetic
    err = (got - torch.from_numpy(a)).abs().max().item()
    assert err < {"F32": 1e-9, "F16": 2e-3, "BF16": 2e-2, "Q8_0": 3e-2, "Q4_1": 0.3}[name]


def test_metadata_values(tmp_path):
    kv = [("string", ("general.name", "tiny ünïcode")), ("uint32", ("a.u32", 7)), ("int32", ("a.i32", -3)),
          ("float32", ("a.f32", 1e-5)), ("bool", ("a.flag", True)), ("uint64", ("a.u64", 1 << 40)),
          ("array", ("a.strings", ["x y", "Ġz", ""])), ("array", ("a.ints", [1, 2, 3]))]
    write(tmp_path / "m.gguf", {"x.weight": (np.zeros((1, 32), np.float32), Q.F32)}, kv=kv)
    md = read_gguf(tmp_path / "m.gguf").metadata
    assert md["general.architecture"] == "llama"
    assert md["general.name"] == "tiny ünïcode"
    assert (md["a.u32"], md["a.i32"], md["a.f32"], md["a.flag"], md["a.u64"]) == (7, -3, 1e-5, True, 1 << 40)
    assert md["a.strings"] == ["x y", "Ġz", ""] and md["a.ints"] == [1, 2, 3]


def test_bad_files_fail_in_one_line(tmp_path):
    (tmp_path / "no.gguf").write_bytes(b"GGML" + bytes(20))
    with pytest.raises(GGUFError, match="not a GGUF"):
        read_gguf(tmp_path / "no.gguf")
    write(tmp_path / "t.gguf", {"x.weight": (np.ones((4, 64), np.float32), Q.Q4_1)})
    data = (tmp_path / "t.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[:-10])
    with pytest.raises(GGUFError, match="runs past the end"):
        read_gguf(tmp_path / "cut.gguf")
    write(tmp_path / "q4_0.gguf", {"x.weight": (np.ones((1, 32), np.float32), Q.Q4_0)})
    with pytest.raises(GGUFError, match="Q4_0"):
        read_gguf(tmp_path / "q4_0.gguf")


def test_names_map_to_meta_keys():
    assert gguf_to_meta_name("token_embd.weight") == "tok_embeddings.weight"
    assert gguf_to_meta_name("output_norm.weight") == "norm.weight"
    assert gguf_to_meta_name("blk.12.attn_k.weight") == "layers.12.attention.wk.weight"
    assert gguf_to_meta_name("blk.0.ffn_gate.weight") == "layers.0.feed_forward.w1.weight"
    assert gguf_to_meta_name("blk.0.ffn_down.weight") == "layers.0.feed_forward.w2.weight"
    assert gguf_to_meta_name("blk.0.ffn_up.weight") == "layers.0.feed_forward.w3.weight"
    assert gguf_to_meta_name("rope_freqs.weight") is None


# ---- a tiny Llama in GGUF against transformers -------------------------------------------------------

DIM, LAYERS, HEADS, KV, HIDDEN, VOCAB = 64, 2, 4, 2, 128, 96
TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [f"t{i}" for i in range(VOCAB - 3)]


def tiny_llama(path, tied=True):
    """Meta-order weights (as llama.cpp's converter writes them): matrices Q4_1 / Q8_0, norms F32."""
    rng = np.random.default_rng(1)
    mat = lambda *s: rng.normal(0, 0.08, s).astype(np.float32)  # noqa: E731
    t = {"token_embd.weight": (mat(VOCAB, DIM), Q.Q8_0), "output_norm.weight": (1 + mat(DIM), Q.F32)}
    if not tied:
        t["output.weight"] = (mat(VOCAB, DIM), Q.F16)
    hd = DIM // HEADS
    for i in range(LAYERS):
        t.update({f"blk.{i}.attn_norm.weight": (1 + mat(DIM), Q.F32), f"blk.{i}.ffn_norm.weight": (1 + mat(DIM), Q.F32),
                  f"blk.{i}.attn_q.weight": (mat(HEADS * hd, DIM), Q.Q4_1), f"blk.{i}.attn_k.weight": (mat(KV * hd, DIM), Q.Q4_1),
                  f"blk.{i}.attn_v.weight": (mat(KV * hd, DIM), Q.Q8_0), f"blk.{i}.attn_output.weight": (mat(DIM, DIM), Q.BF16),
                  f"blk.{i}.ffn_gate.weight": (mat(HIDDEN, DIM), Q.Q4_1), f"blk.{i}.ffn_up.weight": (mat(HIDDEN, DIM), Q.Q4_1),
                  f"blk.{i}.ffn_down.weight": (mat(DIM, HIDDEN), Q.Q4_1)})
    kv = [("block_count", LAYERS), ("context_length", 256), ("embedding_length", DIM), ("feed_forward_length", HIDDEN),
          ("head_count", HEADS), ("head_count_kv", KV), ("rope_freq_base", 100000.0), ("rope_dimension_count", hd),
          ("layer_norm_rms_eps", 1e-5), ("vocab_size", VOCAB), ("tokenizer_model", "gpt2"), ("tokenizer_pre", "smollm"),
          ("token_list", TOKENS), ("token_types", [3, 3, 3] + [1] * (VOCAB - 3)), ("token_merges", ["t 1", "t1 0"]),
          ("bos_token_id", 1), ("eos_token_id", 2), ("pad_token_id", 2), ("add_bos_token", False)]
    write(path, t, kv=kv)
    return path


@pytest.mark.parametrize("tied", [True, False])
def test_tiny_llama_logits_equal_transformers_gguf_loader(tmp_path, tied):
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    from lumos.model import Transformer
    g = read_gguf(tiny_llama(tmp_path / "tiny.gguf", tied))
    args, sd = to_checkpoint(g)
    assert (args.dim, args.n_layers, args.n_heads, args.kv_heads, args.hidden_dim, args.vocab_size) == \
        (DIM, LAYERS, HEADS, KV, HIDDEN, VOCAB)
    assert args.tie_word_embeddings is tied and args.rope_theta == 100000.0 and args.norm_eps == 1e-5
    ours = Transformer(args).eval()
    ours.load_state_dict(sd, strict=True)

    cfg = LlamaConfig(hidden_size=DIM, intermediate_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                      num_key_value_heads=KV, vocab_size=VOCAB, rms_norm_eps=1e-5, rope_theta=100000.0,
                      max_position_embeddings=256, tie_word_embeddings=tied)
    hf = LlamaForCausalLM(cfg).eval()
    ref = load_gguf_checkpoint(str(g.path), return_tensors=True, model_to_load=hf)["tensors"]
    missing, unexpected = hf.load_state_dict({k: v.float() for k, v in ref.items()}, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}
    if tied:
        hf.tie_weights()
    tokens = torch.tensor([[1, 5, 17, 42, 3, 88, 60, 2, 9, 33, 71]])
    with torch.no_grad():
        a, b = ours(tokens).float(), hf(tokens).logits.float()
    assert ((a - b).abs().max() / b.abs().max()).item() <= 1e-5


def test_tokenizer_spec_from_metadata(tmp_path):
    spec = tokenizer_spec(read_gguf(tiny_llama(tmp_path / "tiny.gguf")))
    assert spec["tokens"] == TOKENS and spec["merges"] == ["t 1", "t1 0"]
    assert spec["special"] == [0, 1, 2]
    assert (spec["bos_id"], spec["eos_id"], spec["pad_id"], spec["add_bos"], spec["pre"]) == (1, 2, 2, False, "smollm")


def test_model_args_refuses_other_architectures(tmp_path):
    write(tmp_path / "g.gguf", {"x.weight": (np.zeros((1, 32), np.float32), Q.F32)}, arch="gpt2")
    with pytest.raises(GGUFError, match="architecture 'gpt2'"):
        model_args(read_gguf(tmp_path / "g.gguf"))
