"""Checkpoint I/O against transformers: tiny random Llamas saved by transformers (or by this test,
in the layouts people actually have) must give HF's logits once loaded by lumos.model.checkpoint.

The Meta layout is written here independently of checkpoint.py: key names spelled out, q/k rows
reordered by inverting the permutation in HF's convert_llama_weights_to_hf.py, and model-parallel
shards split the way fairscale's parallel layers split them."""
import json
import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

transformers = pytest.importorskip("transformers")
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from lumos.model.checkpoint import CheckpointError, load_checkpoint, load_model, save_hf  # noqa: E402

torch.set_num_threads(1)

# GQA (4 query heads, 2 kv heads), 32001 vocab rows (Lumos' <pad>), and an intermediate size that
# Meta's multiple_of rule gives: int(2 * (4 * 128) / 3) = 341, rounded up to 256 -> 512.
CFG = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
           num_key_value_heads=2, vocab_size=32001, rms_norm_eps=1e-5, max_position_embeddings=256)


def hf_model(seed=0, **over):
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**{**CFG, **over})).eval()
    with torch.no_grad():  # norms too, so that a swapped norm name can't hide behind all-ones
        for name, p in model.named_parameters():
            p.normal_(1.0 if name.endswith("norm.weight") else 0.0, 0.1 if p.ndim == 1 else 0.05)
    return model


TOKENS = torch.tensor([[1, 450, 4996, 17354, 1701, 432, 17204, 975, 278, 17366, 11203, 32000, 29889]])


def hf_logits(model, tokens=TOKENS):
    with torch.no_grad():
        return model(tokens).logits.float()


def our_logits(model, tokens=TOKENS):
    with torch.no_grad():
        return model(tokens).float()


def assert_rel_close(a, b, tol=1e-5):
    rel = ((a - b).abs().max() / b.abs().max()).item()
    assert rel <= tol, f"max |diff| / max |ref| = {rel:.2e}"


# ---- writing the formats, independently of checkpoint.py -----------------------------------------

META_NAMES = {"self_attn.q_proj": "attention.wq", "self_attn.k_proj": "attention.wk",
              "self_attn.v_proj": "attention.wv", "self_attn.o_proj": "attention.wo",
              "mlp.gate_proj": "feed_forward.w1", "mlp.down_proj": "feed_forward.w2",
              "mlp.up_proj": "feed_forward.w3", "input_layernorm": "attention_norm",
              "post_attention_layernorm": "ffn_norm"}


def to_meta(hf_sd, n_heads, n_kv_heads):
    """HF state dict -> Meta's names and q/k row order (interleaved rotary pairs)."""
    def unpermute(w, h):  # inverse of HF's permute(w) = w.view(h, r/h/2, 2, c).transpose(1, 2)
        r, c = w.shape
        return w.reshape(h, 2, r // h // 2, c).transpose(1, 2).reshape(r, c)

    out = {"tok_embeddings.weight": hf_sd["model.embed_tokens.weight"],
           "norm.weight": hf_sd["model.norm.weight"], "output.weight": hf_sd["lm_head.weight"]}
    for name, t in hf_sd.items():
        if name.startswith("model.layers."):
            i, rest = name[len("model.layers."):].split(".", 1)
            module = META_NAMES[rest.removesuffix(".weight")]
            if module == "attention.wq":
                t = unpermute(t, n_heads)
            elif module == "attention.wk":
                t = unpermute(t, n_kv_heads)
            out[f"layers.{i}.{module}.weight"] = t.clone()
    return out


def write_meta(meta_sd, d, n_shards, params):
    """consolidated.NN.pth, split as fairscale's parallel layers split them, with Meta's rope.freqs."""
    d.mkdir()
    (d / "params.json").write_text(json.dumps(params))
    split_dim = {"wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "output": 0, "wo": 1, "w2": 1,
                 "tok_embeddings": 1}
    shards = [{} for _ in range(n_shards)]
    for name, t in meta_sd.items():
        dim = split_dim.get(name.split(".")[-2])
        parts = [t] * n_shards if dim is None else t.chunk(n_shards, dim=dim)
        for shard, part in zip(shards, parts):
            shard[name] = part.clone()
    for k, shard in enumerate(shards):
        shard["rope.freqs"] = torch.randn(16)
        torch.save(shard, d / f"consolidated.{k:02d}.pth")


def write_sharded_bin(model, d, n_files=3):
    """The released ai2lumos layout: transformers 4.x config.json (rope_theta, torch_dtype),
    pytorch_model-0000k-of-0000N.bin + index, and the rotary_emb.inv_freq buffers 4.x saved."""
    d.mkdir()
    cfg = json.loads(model.config.to_json_string())
    cfg.pop("rope_parameters", None)
    cfg.pop("dtype", None)
    cfg.update(rope_theta=10000.0, torch_dtype="float32", transformers_version="4.33.2")
    (d / "config.json").write_text(json.dumps(cfg))
    items = list(model.state_dict().items())
    for i in range(model.config.num_hidden_layers):
        items.append((f"model.layers.{i}.self_attn.rotary_emb.inv_freq", torch.rand(16)))
    weight_map = {}
    for k in range(n_files):
        fname = f"pytorch_model-{k + 1:05d}-of-{n_files:05d}.bin"
        chunk = dict(items[k::n_files])
        torch.save({n: t.clone() for n, t in chunk.items()}, d / fname)
        weight_map.update({n: fname for n in chunk})
    (d / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


@pytest.fixture(scope="module")
def ref():
    model = hf_model()
    return model, hf_logits(model)


# ---- loading: parity with transformers -----------------------------------------------------------

def test_hf_safetensors_single(ref, tmp_path):
    model, logits = ref
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    ours = load_model(tmp_path)
    assert ours.args.vocab_size == 32001 and ours.args.kv_heads == 2 and ours.args.hidden_dim == 512 and ours.args.multiple_of == 256
    assert_rel_close(our_logits(ours), logits)


def test_hf_safetensors_sharded(ref, tmp_path):
    model, logits = ref
    model.save_pretrained(tmp_path, max_shard_size="5MB")
    assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) > 1
    assert_rel_close(our_logits(load_model(tmp_path)), logits)


def test_hf_bin_sharded_4x_config(ref, tmp_path):
    model, logits = ref
    write_sharded_bin(model, tmp_path / "bin")
    assert_rel_close(our_logits(load_model(tmp_path / "bin")), logits)


@pytest.mark.parametrize("n_shards", [1, 2])
def test_meta_consolidated(ref, tmp_path, n_shards):
    model, logits = ref
    meta = to_meta(model.state_dict(), CFG["num_attention_heads"], CFG["num_key_value_heads"])
    params = {"dim": 128, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "multiple_of": 256,
              "norm_eps": 1e-5, "vocab_size": -1}  # -1 as in Meta's Llama-2 params.json
    write_meta(meta, tmp_path / "meta", n_shards, params)
    args, sd = load_checkpoint(tmp_path / "meta")
    assert args.vocab_size == 32001 and "rope.freqs" not in sd
    for name, t in meta.items():  # merged shards give back exactly the unsplit tensors
        assert torch.equal(sd[name], t), name
    assert_rel_close(our_logits(load_model(tmp_path / "meta")), logits)


def test_dtype_choice(ref, tmp_path):
    model, _ = ref
    model.save_pretrained(tmp_path)
    args, sd = load_checkpoint(tmp_path, dtype="bf16")
    assert all(t.dtype == torch.bfloat16 for t in sd.values())
    assert torch.equal(sd["norm.weight"], model.model.norm.weight.detach().bfloat16())


# ---- export round trip ---------------------------------------------------------------------------

def test_export_roundtrip_sharded(ref, tmp_path):
    model, logits = ref
    model.save_pretrained(tmp_path / "in")
    ours = load_model(tmp_path / "in")
    tok = tmp_path / "tokenizer.model"
    tok.write_bytes(b"sentencepiece model bytes")
    save_hf(ours, ours.args, tmp_path / "out", dtype=torch.float32, max_shard_bytes=4_000_000, tokenizer=tok)
    out = tmp_path / "out"
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert (out / "tokenizer.model").read_bytes() == b"sentencepiece model bytes"
    back = LlamaForCausalLM.from_pretrained(out).eval()
    hf_sd = model.state_dict()
    for name, t in back.state_dict().items():  # the very tensors transformers started from
        assert torch.equal(t, hf_sd[name]), name
    assert_rel_close(hf_logits(back), our_logits(ours))
    assert_rel_close(our_logits(load_model(out)), logits)


def test_export_bf16(ref, tmp_path):
    model, _ = ref
    model.save_pretrained(tmp_path / "in")
    ours = load_model(tmp_path / "in")
    save_hf(ours.state_dict(), ours.args, tmp_path / "out", dtype="bf16")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["torch_dtype"] == "bfloat16"
    with safe_open(tmp_path / "out" / "model.safetensors", "pt") as f:
        q = f.get_tensor("model.layers.1.self_attn.q_proj.weight")
    assert q.dtype == torch.bfloat16
    assert torch.equal(q, model.model.layers[1].self_attn.q_proj.weight.detach().bfloat16())


def test_tied_embeddings_roundtrip(tmp_path):
    model = hf_model(seed=1, tie_word_embeddings=True)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    model.save_pretrained(tmp_path / "in")
    ours = load_model(tmp_path / "in")
    assert ours.args.tie_word_embeddings and ours.output.weight is ours.tok_embeddings.weight
    assert_rel_close(our_logits(ours), hf_logits(model))
    save_hf(ours, ours.args, tmp_path / "out")
    with safe_open(tmp_path / "out" / "model.safetensors", "pt") as f:
        assert "lm_head.weight" not in f.keys()
    back = LlamaForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert back.lm_head.weight is back.model.embed_tokens.weight
    assert_rel_close(hf_logits(back), our_logits(ours))


# ---- errors --------------------------------------------------------------------------------------

def one_line(e):
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_error_shape_mismatch(ref, tmp_path):
    model, _ = ref
    model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["intermediate_size"] = 768
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path)
    msg = one_line(e)
    # whichever FFN weight comes first in the file: its name, its shape, the shape config.json implies
    m = re.search(r"model\.layers\.\d\.mlp\.(\w+)_proj\.weight has shape (\(.*?\)) .* but (\(.*?\))", msg)
    assert m, msg
    assert (m[2], m[3]) == {"gate": ("(512, 128)", "(768, 128)"), "up": ("(512, 128)", "(768, 128)"),
                            "down": ("(128, 512)", "(128, 768)")}[m[1]]


def test_error_meta_shape_mismatch(ref, tmp_path):
    model, _ = ref
    meta = to_meta(model.state_dict(), 4, 2)
    write_meta(meta, tmp_path / "meta", 2, {"dim": 128, "n_layers": 2, "n_heads": 4, "n_kv_heads": 4,
                                             "multiple_of": 256, "norm_eps": 1e-5, "vocab_size": 32001})
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "meta")
    msg = one_line(e)
    assert "layers.0.attention.wk.weight" in msg and "(64, 128)" in msg and "(128, 128)" in msg


def test_error_missing_key(ref, tmp_path):
    model, _ = ref
    model.save_pretrained(tmp_path)
    sd = load_file(tmp_path / "model.safetensors")
    del sd["model.layers.1.mlp.up_proj.weight"]
    save_file(sd, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path)
    assert "model.layers.1.mlp.up_proj.weight" in one_line(e)


def test_error_unknown_key(ref, tmp_path):
    model, _ = ref
    model.save_pretrained(tmp_path)
    sd = load_file(tmp_path / "model.safetensors")
    sd["model.layers.0.self_attn.q_proj.bias"] = torch.zeros(128)
    save_file(sd, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path)
    assert "model.layers.0.self_attn.q_proj.bias" in one_line(e)


def test_error_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path)
    assert "config.json" in one_line(e)
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "nowhere")
