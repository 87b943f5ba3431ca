"""Corrupt and wrong checkpoints, as a stranger's download or an attacker could make them: each of
the variants below must be refused with one CheckpointError line that names the file (and the
tensor, when one is at fault), load nothing, run no pickled code, and make run_agent.py exit 2.

A variant is (name, layout, mutate, expected substrings): `mutate(d)` spoils a copy of a small valid
checkpoint of that layout (HF safetensors, HF .bin, HF sharded safetensors, or Meta .pth)."""
import json
import os
import pickle
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lumos.model.checkpoint import CheckpointError, load_checkpoint, load_model, save_hf
from lumos.model.config import ModelArgs
from lumos.model.llama import Transformer

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / "data" / "tokenizer" / "llama2.model"  # 32000 ids
ARGS = ModelArgs(dim=16, n_layers=1, n_heads=2, n_kv_heads=1, vocab_size=32000, multiple_of=16, max_seq_len=64)
MARKER = "pwned-marker"  # a pickled payload would create this file if it ever ran


def _model(args=ARGS):
    with torch.device("meta"):
        m = Transformer(args)
    m.to_empty(device="cpu")
    m.init_weights(0)
    return m


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    model = _model()
    st = save_hf(model, ARGS, root / "st", tokenizer=TOKENIZER)
    sharded = save_hf(model, ARGS, root / "sharded", max_shard_bytes=300_000, tokenizer=TOKENIZER)
    assert len(list(sharded.glob("model-*.safetensors"))) > 1
    binary = root / "bin"
    shutil.copytree(st, binary)
    torch.save(load_file(binary / "model.safetensors"), binary / "pytorch_model.bin")
    (binary / "model.safetensors").unlink()
    meta = root / "meta"
    meta.mkdir()
    (meta / "params.json").write_text(json.dumps(ARGS.to_meta_params()))
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, meta / "consolidated.00.pth")
    shutil.copy(TOKENIZER, meta / "tokenizer.model")
    for d in (st, sharded, binary, meta):  # each base loads: the variants fail for their one defect
        load_model(d, n_words=32000)
    return {"st": st, "sharded": sharded, "bin": binary, "meta": meta}


# ---- ways to spoil a file --------------------------------------------------------------------------

def edit_st(fname, fn):
    """Rewrite safetensors file `fname` with fn(state_dict) applied."""
    def mutate(d):
        sd = load_file(d / fname)
        fn(sd)
        save_file(sd, d / fname, metadata={"format": "pt"})
    return mutate


def edit_pt(fname, fn):
    def mutate(d):
        sd = torch.load(d / fname, weights_only=True)
        out = fn(sd)
        torch.save(sd if out is None else out, d / fname)
    return mutate


def edit_json(fname, fn):
    def mutate(d):
        obj = json.loads((d / fname).read_text())
        fn(obj)
        (d / fname).write_text(json.dumps(obj))
    return mutate


def write_bytes(fname, data):
    def mutate(d):
        (d / fname).write_bytes(data(d / fname) if callable(data) else data)
    return mutate


def truncate(fname, keep):
    return write_bytes(fname, lambda p: p.read_bytes()[:keep if keep >= 0 else p.stat().st_size + keep])


def first_shard(d):
    return sorted(d.glob("model-*.safetensors"))[0].name


def edit_index(fn):
    return edit_json("model.safetensors.index.json", lambda idx: fn(idx["weight_map"]))


class Payload:
    """Unpickling this calls open(MARKER, 'w'): code execution, if the loader allowed it."""
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def pickled_code(fname, wrap):
    def mutate(d):
        torch.save(wrap(Payload(str(d / MARKER))), d / fname)
    return mutate


def raw_pickle(fname):
    """A pre-zip (legacy) pickle file that calls open() when loaded."""
    def mutate(d):
        with open(d / fname, "wb") as f:
            pickle.dump({"x": Payload(str(d / MARKER))}, f)
    return mutate


def symlink(fname, target):
    def mutate(d):
        (d / fname).unlink(missing_ok=True)
        os.symlink(target, d / fname)
    return mutate


def outside_file(d):
    """A valid safetensors file next to (not inside) the checkpoint directory."""
    save_file({"model.norm.weight": torch.ones(16)}, d.parent / f"{d.name}-outside.safetensors")
    return f"../{d.name}-outside.safetensors"


def shrink_vocab(d):
    """config.json and both matrices agree on 31999 rows: consistent, but the tokenizer has 32000 ids."""
    edit_json("config.json", lambda c: c.update(vocab_size=31999))(d)
    edit_st("model.safetensors", lambda sd: sd.update({k: sd[k][:31999].clone() for k in
                                                       ("model.embed_tokens.weight", "lm_head.weight")}))(d)


E, Q, K, N = "model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight", "model.norm.weight"
ST = "model.safetensors"

VARIANTS = [
    # -- non-float dtypes: never cast silently
    ("int32 embedding", "st", edit_st(ST, lambda sd: sd.update({E: sd[E].to(torch.int32)})), [ST, E, "int32"]),
    ("int64 q_proj", "st", edit_st(ST, lambda sd: sd.update({Q: sd[Q].to(torch.int64)})), [ST, Q, "int64"]),
    ("bool norm", "st", edit_st(ST, lambda sd: sd.update({N: sd[N] > 0})), [ST, N, "bool"]),
    ("int8 k_proj", "st", edit_st(ST, lambda sd: sd.update({K: sd[K].to(torch.int8)})), [ST, K, "int8"]),
    ("uint8 norm", "st", edit_st(ST, lambda sd: sd.update({N: sd[N].to(torch.uint8)})), [ST, N, "uint8"]),
    ("float8 q_proj", "st", edit_st(ST, lambda sd: sd.update({Q: sd[Q].to(torch.float8_e4m3fn)})), [ST, Q, "float8"]),
    ("int16 .bin tensor", "bin", edit_pt("pytorch_model.bin", lambda sd: sd.update({N: sd[N].to(torch.int16)})),
     ["pytorch_model.bin", N, "int16"]),
    ("int32 Meta tensor", "meta", edit_pt("consolidated.00.pth", lambda sd: sd.update({"norm.weight": sd["norm.weight"].int()})),
     ["consolidated.00.pth", "norm.weight", "int32"]),
    # -- truncated or garbage files
    ("safetensors cut by 100 bytes", "st", truncate(ST, -100), [ST]),
    ("safetensors cut to 8 bytes", "st", truncate(ST, 8), [ST]),
    ("safetensors empty", "st", write_bytes(ST, b""), [ST]),
    ("safetensors header length 2^60", "st", write_bytes(ST, struct.pack("<Q", 2**60) + b"{}"), [ST]),
    ("safetensors random bytes", "st", write_bytes(ST, os.urandom(4096)), [ST]),
    ("safetensors header not JSON", "st", write_bytes(ST, struct.pack("<Q", 5) + b"{oops"), [ST]),
    ("shard cut in half", "sharded", lambda d: truncate(first_shard(d), -(d / first_shard(d)).stat().st_size // 2)(d),
     ["model-00001-of-"]),
    (".bin cut by 100 bytes", "bin", truncate("pytorch_model.bin", -100), ["pytorch_model.bin"]),
    (".bin cut to 10 bytes", "bin", truncate("pytorch_model.bin", 10), ["pytorch_model.bin"]),
    (".bin random bytes", "bin", write_bytes("pytorch_model.bin", os.urandom(4096)), ["pytorch_model.bin"]),
    ("consolidated.pth cut", "meta", truncate("consolidated.00.pth", -100), ["consolidated.00.pth"]),
    # -- pickles that are not just tensors: refused, nothing runs
    (".bin with pickled code (zip)", "bin", pickled_code("pytorch_model.bin", lambda p: {"x": p}), ["pytorch_model.bin", "unpickle"]),
    (".bin with pickled code (legacy)", "bin", raw_pickle("pytorch_model.bin"), ["pytorch_model.bin"]),
    (".pth with pickled code", "meta", pickled_code("consolidated.00.pth", lambda p: p), ["consolidated.00.pth", "unpickle"]),
    (".bin holding a list", "bin", edit_pt("pytorch_model.bin", lambda sd: list(sd.values())), ["pytorch_model.bin", "list"]),
    (".bin nested dict", "bin", edit_pt("pytorch_model.bin", lambda sd: {"state_dict": sd}), ["pytorch_model.bin", "state_dict"]),
    (".bin with an int entry", "bin", edit_pt("pytorch_model.bin", lambda sd: sd.update(step=3)), ["pytorch_model.bin", "step"]),
    # -- shard index paths: only plain file names inside the directory
    ("index names ../outside", "sharded", lambda d: edit_index(lambda m: m.update({N: outside_file(d)}))(d),
     ["model.safetensors.index.json", N, "outside"]),
    ("index names /dev/zero", "sharded", edit_index(lambda m: m.update({N: "/dev/zero"})), ["model.safetensors.index.json", "/dev/zero"]),
    ("index names /etc/passwd", "sharded", edit_index(lambda m: m.update({N: "/etc/passwd"})), ["model.safetensors.index.json", "/etc/passwd"]),
    ("index names a subdirectory file", "sharded", edit_index(lambda m: m.update({N: "sub/x.safetensors"})), ["index.json", "sub/x"]),
    ("index names a missing file", "sharded", edit_index(lambda m: m.update({N: "model-00099-of-00099.safetensors"})),
     ["model-00099-of-00099.safetensors"]),
    ("index names a number", "sharded", edit_index(lambda m: m.update({N: 7})), ["index.json", N]),
    ("index weight_map a list", "sharded", edit_json("model.safetensors.index.json", lambda i: i.update(weight_map=[])),
     ["model.safetensors.index.json", "weight_map"]),
    ("index not JSON", "sharded", write_bytes("model.safetensors.index.json", b"{\"weight_map\": "), ["model.safetensors.index.json"]),
    ("shard symlinked to /dev/zero", "sharded", lambda d: symlink(first_shard(d), "/dev/zero")(d), ["model-00001-of-", "regular"]),
    ("model.safetensors symlinked to /dev/zero", "st", symlink(ST, "/dev/zero"), [ST, "regular"]),
    ("model.safetensors a directory", "st", lambda d: ((d / ST).unlink(), (d / ST).mkdir()), [ST, "regular"]),
    ("pytorch_model.bin a FIFO", "bin", lambda d: ((d / "pytorch_model.bin").unlink(), os.mkfifo(d / "pytorch_model.bin")),
     ["pytorch_model.bin", "regular"]),
    # -- wrong shapes, missing and unexpected keys
    ("q_proj transposed", "st", edit_st(ST, lambda sd: sd.update({K: sd[K].t().contiguous()})), [ST, K, "shape"]),
    ("norm of the wrong length", "st", edit_st(ST, lambda sd: sd.update({N: torch.ones(17)})), [ST, N, "(17,)"]),
    ("embedding as a vector", "st", edit_st(ST, lambda sd: sd.update({E: sd[E][:, 0].clone()})), [ST, E, "shape"]),
    ("missing down_proj", "st", edit_st(ST, lambda sd: sd.pop("model.layers.0.mlp.down_proj.weight")),
     [ST, "model.layers.0.mlp.down_proj.weight", "missing"]),
    ("unexpected bias", "st", edit_st(ST, lambda sd: sd.update({"model.layers.0.self_attn.q_proj.bias": torch.zeros(16)})),
     [ST, "q_proj.bias", "unknown"]),
    ("layer past n_layers", "st", edit_st(ST, lambda sd: sd.update({"model.layers.1.input_layernorm.weight": torch.ones(16)})),
     [ST, "model.layers.1.input_layernorm.weight"]),
    ("Meta shard missing a key", "meta", edit_pt("consolidated.00.pth", lambda sd: {k: v for k, v in sd.items() if k != "layers.0.ffn_norm.weight"}),
     ["consolidated.00.pth", "layers.0.ffn_norm.weight"]),
    ("Meta wrong shape", "meta", edit_pt("consolidated.00.pth", lambda sd: sd.update({"norm.weight": torch.ones(3)})),
     ["consolidated.00.pth", "norm.weight", "(3,)"]),
    # -- configs that describe no such model
    ("config.json not JSON", "st", write_bytes("config.json", b"{\"hidden_size\": 16,"), ["config.json", "JSON"]),
    ("config.json a list", "st", write_bytes("config.json", b"[1, 2]"), ["config.json", "list"]),
    ("config.json without hidden_size", "st", edit_json("config.json", lambda c: c.pop("hidden_size")), ["config.json", "hidden_size"]),
    ("config.json model_type gpt2", "st", edit_json("config.json", lambda c: c.update(model_type="gpt2")), ["config.json", "gpt2"]),
    ("config.json zero heads", "st", edit_json("config.json", lambda c: c.update(num_attention_heads=0)), ["config.json", "n_heads"]),
    ("config.json negative layers", "st", edit_json("config.json", lambda c: c.update(num_hidden_layers=-2)), ["config.json", "n_layers"]),
    ("config.json hidden_size a string", "st", edit_json("config.json", lambda c: c.update(hidden_size="16")), ["config.json", "dim"]),
    ("config.json heads not dividing", "st", edit_json("config.json", lambda c: c.update(num_attention_heads=3)), ["config.json", "n_heads"]),
    ("params.json not JSON", "meta", write_bytes("params.json", b"dim: 16"), ["params.json"]),
    ("config.json vocab larger than weights", "st", edit_json("config.json", lambda c: c.update(vocab_size=32001)), [ST, "(32001, 16)"]),
    ("vocab smaller than the tokenizer", "st", shrink_vocab, ["config.json", "embed_tokens", "31999", "32000"]),
    ("no weight files", "st", lambda d: (d / ST).unlink(), [str(Path("ckpt")), "model.safetensors"]),
]


@pytest.fixture
def spoiled(bases, tmp_path, request):
    name, layout, mutate, _ = request.param
    d = tmp_path / "ckpt"
    shutil.copytree(bases[layout], d, symlinks=True)
    mutate(d)
    return d


def ids(v):
    return v[0]


@pytest.mark.parametrize("spoiled", VARIANTS, ids=ids, indirect=True)
def test_corrupt_checkpoint_is_one_line(spoiled, request):
    _, _, _, expect = request.node.callspec.params["spoiled"]
    with pytest.raises(CheckpointError) as e:
        load_model(spoiled, n_words=32000)
    msg = str(e.value)
    assert "\n" not in msg and len(msg.replace(str(spoiled), "")) < 300, msg
    for s in expect:
        assert s in msg, f"{s!r} not in {msg!r}"
    assert not (spoiled / MARKER).exists(), "pickled code ran"


def test_variant_count():
    """The issue's goal: at least 30 corrupt variants."""
    assert len(VARIANTS) >= 30 and len({v[0] for v in VARIANTS}) == len(VARIANTS)


@pytest.mark.parametrize("spoiled", [v for v in VARIANTS if v[1] in ("bin", "meta", "sharded")
                                     or v[0] in ("vocab smaller than the tokenizer", "int32 embedding",
                                                 "safetensors cut by 100 bytes")], ids=ids, indirect=True)
def test_run_agent_exits_2(spoiled, request, capsys, tmp_path):
    """The CLI: exit status 2 and one 'run_agent.py: error:' line naming the file; nothing written."""
    import run_agent
    _, _, _, expect = request.node.callspec.params["spoiled"]
    out = tmp_path / "trace.jsonl"
    with pytest.raises(SystemExit) as e:
        run_agent.main(["--task", "gsm8k", "--planner", str(spoiled), "--grounder", str(spoiled), "--limit", "1",
                        "--out", str(out), "--device", "cpu"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("run_agent.py: error: cannot load"), err
    assert expect[0] in err[0]
    assert not out.exists() and not (spoiled / MARKER).exists()


def test_symlinked_weights_inside_a_cache_still_load(bases, tmp_path):
    """The HF hub cache keeps files as symlinks into ../../blobs: a link to a regular file is fine."""
    blobs, snap = tmp_path / "blobs", tmp_path / "snapshots" / "rev"
    blobs.mkdir()
    snap.mkdir(parents=True)
    for f in bases["sharded"].iterdir():
        shutil.copy(f, blobs / f.name)
        os.symlink(Path("../..") / "blobs" / f.name, snap / f.name)
    args, sd = load_checkpoint(snap)
    want_args, want = load_checkpoint(bases["sharded"])
    assert args == want_args and all(torch.equal(sd[k], want[k]) for k in want)


TRAIN_VARIANTS = ("int32 embedding", ".bin with pickled code (zip)", "index names /dev/zero", "config.json not JSON",
                  "vocab smaller than the tokenizer")


@pytest.mark.parametrize("spoiled", [v for v in VARIANTS if v[0] in TRAIN_VARIANTS], ids=ids, indirect=True)
def test_train_init_exits_2_before_writing_anything(spoiled, request, tmp_path):
    """train.py --init BAD: exit 2, one 'train.py: error: --init ...' line naming the file, no --out made."""
    from test_train_loop import _toy_rows, _train
    _, _, _, expect = request.node.callspec.params["spoiled"]
    data, out = tmp_path / "toy.jsonl", tmp_path / "run"
    data.write_text("".join(json.dumps(r) + "\n" for r in _toy_rows(4)))
    r = _train("--data", str(data), "--init", str(spoiled), "--max-steps", "1", "--global-batch-size", "2",
               "--micro-batch-size", "2", "--threads", "1", "--no-progress", "--out", str(out))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    assert lines[0].startswith(f"train.py: error: --init {spoiled}: ") and expect[0] in lines[0], lines
    assert not out.exists() and not (spoiled / MARKER).exists()
