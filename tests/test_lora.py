"""LoRA (lumos/model/lora.py) on tiny random Llamas: the zero-initialised adapter is the base model
exactly, merging changes nothing but speed, only adapters get gradients, the saved adapter loads back
(alone, onto its base, through the agent's LocalBackend), and train.py --lora-rank resumes exactly."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lumos.model.checkpoint import load_model, save_hf
from lumos.model.config import ModelArgs
from lumos.model.llama import Transformer
from lumos.model.lora import (LoRAConfig, LoRALinear, add_lora, adapter_state_dict, apply_adapter, init_lora,
                              load_with_adapter, merge_lora, save_adapter)

ROOT = Path(__file__).resolve().parents[1]
ARGS = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=320, multiple_of=32, max_seq_len=64)


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return Transformer(ModelArgs(**{**ARGS, **kw})).init_weights(seed).eval()


def _randomise_b(model, seed=1):
    """Give every B a non-zero value, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_b.copy_(torch.randn(m.lora_b.shape, generator=g) * 0.05)


TOKENS = torch.tensor([[5, 17, 99, 3, 250, 7, 7, 1], [2, 8, 44, 310, 61, 0, 12, 9]])


def test_lora_linear_is_w_plus_scaled_ba():
    torch.manual_seed(0)
    base = torch.nn.Linear(3, 2, bias=False)
    lin = LoRALinear(base, rank=1, alpha=4.0, dropout=0.0)
    with torch.no_grad():
        base.weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, -1.0, 1.0]]))
        lin.lora_a.copy_(torch.tensor([[1.0, 2.0, 0.0]]))
        lin.lora_b.copy_(torch.tensor([[0.5], [-1.0]]))
    x = torch.tensor([[1.0, 1.0, 1.0]])
    # by hand: x W^T = [3, 0]; x A^T = [3]; B (x A^T) = [1.5, -3]; scaling 4/1 -> [6, -12]
    assert torch.equal(lin(x), torch.tensor([[9.0, -12.0]]))
    assert lin.weight is base.weight  # the base Parameter itself, not a copy
    merged = lin.merged()
    assert type(merged) is torch.nn.Linear
    assert torch.equal(merged.weight, torch.tensor([[3.0, 4.0, 2.0], [-4.0, -9.0, 1.0]]))


def test_zero_b_reproduces_the_base_exactly_even_with_dropout():
    base = _model()
    with torch.no_grad():
        want = base(TOKENS)
    model = init_lora(add_lora(_model(), LoRAConfig(rank=4, alpha=8, dropout=0.5)), seed=3)
    assert all(m.lora_a.abs().sum() > 0 and not m.lora_b.any() for m in model.modules() if isinstance(m, LoRALinear))
    model.train()  # dropout active: it only touches the adapter path, which adds exact zeros
    with torch.no_grad():
        assert torch.equal(model(TOKENS), want)


def test_targets_counts_and_frozen_base():
    model = add_lora(_model(), LoRAConfig(rank=4, targets=("wq", "wv", "w2")))
    wrapped = sorted(n for n, m in model.named_modules() if isinstance(m, LoRALinear))
    assert wrapped == [f"layers.{i}.{m}" for i in (0, 1) for m in ("attention.wq", "attention.wv", "feed_forward.w2")]
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.endswith((".lora_a", ".lora_b")) for n in trainable)
    hidden = model.args.hidden_dim  # 192 here: 2/3 * 256 rounded up to 32
    # r * (in + out) per layer: wq 64->64, wv 64->32 (2 KV heads of 16), w2 192->64
    assert sum(trainable.values()) == 2 * 4 * ((64 + 64) + (64 + 32) + (hidden + 64))
    assert len(adapter_state_dict(model)) == 12


def test_only_adapter_parameters_get_gradients():
    model = init_lora(add_lora(_model(tie_word_embeddings=True), LoRAConfig(rank=4)), seed=0)
    _randomise_b(model)  # with B = 0 the gradient of A is exactly zero; make both visible
    model.train()
    logits = model(TOKENS)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), TOKENS.flatten()).backward()
    for name, p in model.named_parameters():
        if name.endswith((".lora_a", ".lora_b")):
            assert p.grad is not None and p.grad.abs().max() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


def test_merged_equals_unmerged_and_differs_from_base():
    with torch.no_grad():
        base_logits = _model()(TOKENS)
    model = init_lora(add_lora(_model(), LoRAConfig(rank=4, alpha=16, dropout=0.1)), seed=0)
    _randomise_b(model)
    with torch.no_grad():
        unmerged = model(TOKENS)
        merged = merge_lora(model)(TOKENS)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert set(model.state_dict()) == set(_model().state_dict())  # a plain Transformer again
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=1e-5)
    assert (merged - base_logits).abs().max() > 1e-2  # the adapter really changes the model


def test_save_and_load_onto_base(tmp_path):
    base_dir = save_hf(_model(), ModelArgs(**ARGS), tmp_path / "base")
    cfg = LoRAConfig(rank=2, alpha=4, targets=("wq", "wk", "w3"), base=str(base_dir))
    model = init_lora(add_lora(load_model(base_dir), cfg), seed=0)
    _randomise_b(model)
    with torch.no_grad():
        want = model(TOKENS)
    out = save_adapter(model, cfg, tmp_path / "adapter")
    conf = json.loads((out / "adapter_config.json").read_text())
    assert conf["rank"] == 2 and conf["targets"] == ["wq", "wk", "w3"] and conf["base"] == str(base_dir)
    assert conf["n_params"] == 2 * 2 * ((64 + 64) + (64 + 32) + (64 + 192))
    loaded = load_with_adapter(out).eval()  # base named by the config
    with torch.no_grad():
        torch.testing.assert_close(loaded(TOKENS), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):  # a base of another width does not take it
        apply_adapter(_model(dim=32, n_heads=2, n_kv_heads=1), out)
    with pytest.raises(ValueError, match="does not fit"):  # other layers than the adapter's
        apply_adapter(_model(n_layers=3), out)


def test_local_backend_loads_base_plus_adapter(tmp_path):
    from lumos.agent.backends import LocalBackend
    from lumos.model.tokenizer import Tokenizer
    tok = ROOT / "data/tokenizer/llama2.model"
    n = Tokenizer(str(tok)).n_words
    base_dir = save_hf(_model(vocab_size=n), ModelArgs(**{**ARGS, "vocab_size": n}), tmp_path / "base", tokenizer=tok)
    cfg = LoRAConfig(rank=4, base=str(base_dir))
    model = init_lora(add_lora(load_model(base_dir), cfg), seed=0)
    _randomise_b(model)
    save_adapter(model, cfg, tmp_path / "adapter")  # no tokenizer in it: the base's is used
    backend = LocalBackend(str(tmp_path / "adapter"), max_new_tokens=4)
    assert not any(isinstance(m, LoRALinear) for m in backend.model.modules())  # merged for inference
    ids = torch.tensor([backend.tokenizer.encode("R1 = Calculator(3 + 4)", bos=True)])
    with torch.no_grad():
        torch.testing.assert_close(backend.model(ids), merge_lora(model)(ids), rtol=1e-5, atol=1e-5)
    assert len(backend.complete(["Subgoal 1: add 3 and 4."])) == 1


def test_config_refuses_bad_values():
    for kw, msg in [({"rank": 0}, "rank"), ({"alpha": -1}, "alpha"), ({"dropout": 1.0}, "dropout"),
                    ({"targets": ("wq", "output")}, "output")]:
        with pytest.raises(ValueError, match=msg):
            LoRAConfig(**kw)


# ---- train.py --lora-rank ------------------------------------------------------------------------

STEPS, SAVE_EVERY, KILL_AFTER = 6, 3, 5
FLAGS = ["--max-steps", str(STEPS), "--save-every", str(SAVE_EVERY), "--global-batch-size", "8",
         "--micro-batch-size", "4", "--lr", "1e-2", "--threads", "1", "--no-progress", "--seed", "1"]
LORA = ["--lora-rank", "4", "--lora-dropout", "0.1", "--lora-targets", "wq,wv,w1,w2"]


def _train(*args, env=None):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})}, cwd=ROOT)


def _losses(out):
    return [json.loads(line)["loss"] for line in open(Path(out, "log.jsonl"))]


@pytest.fixture(scope="module")
def base_and_data(tmp_path_factory):
    """A random tiny base with the Llama-2 tokenizer, and toy grounding conversations."""
    from lumos.model.tokenizer import Tokenizer
    tmp = tmp_path_factory.mktemp("lora")
    tok = ROOT / "data/tokenizer/llama2.model"
    args = ModelArgs(**{**ARGS, "vocab_size": Tokenizer(str(tok)).n_words, "tie_word_embeddings": True})
    torch.manual_seed(0)
    base = save_hf(Transformer(args).init_weights(7), args, tmp / "base", tokenizer=tok)
    rows = []
    for i in range(24):
        a, b = 3 + (7 * i) % 41, 5 + (11 * i) % 37
        msgs = [{"role": "user", "content": f"Subgoal to be grounded: Subgoal 1: add {a} and {b}."},
                {"role": "assistant", "content": f"R1 = Calculator({a} + {b})"}]
        rows.append({"dataset": "toy", "id": str(i), "messages": msgs})
    data = tmp / "toy.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return base, data


@pytest.fixture(scope="module")
def straight(base_and_data, tmp_path_factory):
    base, data = base_and_data
    out = tmp_path_factory.mktemp("straight") / "run"
    r = _train("--data", str(data), "--init", str(base), "--out", str(out), *FLAGS, *LORA)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_train_lora_exports_a_small_adapter_and_the_base_is_untouched(base_and_data, straight):
    from safetensors.torch import load_file
    base, _ = base_and_data
    losses = _losses(straight)
    assert len(losses) == STEPS and losses[-1] < losses[0]
    assert not (straight / "model.safetensors").exists()
    conf = json.loads((straight / "adapter_config.json").read_text())
    assert conf["rank"] == 4 and conf["alpha"] == 8 and conf["base"] == str(base)
    assert conf["meta"]["steps"] == STEPS and conf["meta"]["final_loss"] == losses[-1]
    sd = load_file(straight / "adapter.safetensors")
    assert len(sd) == 2 * 4 * 2 and all(k.endswith((".lora_a", ".lora_b")) for k in sd)
    assert all(v.abs().max() > 0 for k, v in sd.items())  # B moved away from zero
    # the checkpoint holds adapter + optimizer state only, not the frozen base
    ckpt = next((straight / "checkpoints").glob("step-*"))
    assert sum(f.stat().st_size for f in ckpt.iterdir()) < 0.2 * (base / "model.safetensors").stat().st_size


def test_first_lora_step_has_the_base_models_loss(base_and_data, straight, tmp_path):
    """B = 0: step 1's loss is the base model's, i.e. that of full fine-tuning's step 1 (same data order)."""
    base, data = base_and_data
    r = _train("--data", str(data), "--init", str(base), "--out", str(tmp_path / "full"),
               *[f if f != str(STEPS) else "1" for f in FLAGS])
    assert r.returncode == 0, r.stderr[-3000:]
    assert _losses(tmp_path / "full")[0] == _losses(straight)[0]


def test_kill_and_resume_lora_gives_identical_losses(base_and_data, straight, tmp_path):
    from safetensors.torch import load_file
    base, data = base_and_data
    out = tmp_path / "resumed"
    args = ["--data", str(data), "--init", str(base), "--out", str(out), *FLAGS, *LORA]
    r = _train(*args, env={"LUMOS_TRAIN_KILL_AFTER_STEP": str(KILL_AFTER)})
    assert r.returncode == -9, r.stderr[-3000:]
    r = _train(*args, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    steps = [json.loads(line)["step"] for line in open(out / "log.jsonl")]
    assert steps == [1, 2, 3, 4, 5, 6]  # resumed at the step-3 checkpoint; the lost 4-5 logged once
    assert _losses(out) == _losses(straight)  # dropout's RNG and AdamW's moments came back too
    a, b = load_file(straight / "adapter.safetensors"), load_file(out / "adapter.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # --export-only rebuilds the same adapter from the last checkpoint
    (out / "adapter.safetensors").unlink()
    r = _train("--export-only", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    c = load_file(out / "adapter.safetensors")
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_cli_refuses_lora_without_init_and_bad_targets(base_and_data, tmp_path):
    base, data = base_and_data
    r = _train("--data", str(data), "--preset", "tiny", "--lora-rank", "4", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "--lora-rank adapts a pretrained model" in r.stderr
    r = _train("--data", str(data), "--init", str(base), "--lora-rank", "4", "--lora-targets", "wq,q_proj",
               "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "--lora-targets: q_proj" in r.stderr


def test_lora_init_warm_starts_from_a_saved_adapter(base_and_data, straight, tmp_path):
    from safetensors.torch import load_file
    base, data = base_and_data
    one = [f if f != str(STEPS) else "1" for f in FLAGS]
    one[one.index("--lr") + 1] = "1e-12"  # one step that changes nothing measurable: the export is the start
    r = _train("--data", str(data), "--init", str(base), "--out", str(tmp_path / "warm"), *one,
               "--lora-init", str(straight))
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = load_file(straight / "adapter.safetensors"), load_file(tmp_path / "warm" / "adapter.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-9) for k in a)
    assert _losses(tmp_path / "warm")[0] < _losses(straight)[0]  # it starts where the first run ended
    r = _train("--data", str(data), "--init", str(base), "--out", str(tmp_path / "x"), "--lora-init", str(straight),
               "--lora-rank", "8")
    assert r.returncode == 2 and "--lora-rank 8 contradicts --lora-init's 4" in r.stderr


# ---- the shipped adapter (checkpoints/lumos-smollm2-ground-lora) on the real base --------------------

SHIPPED = ROOT / "checkpoints/lumos-smollm2-ground-lora"


def test_shipped_adapter_is_small_fp16_and_names_the_portable_base():
    from safetensors import safe_open
    conf = json.loads((SHIPPED / "adapter_config.json").read_text())
    assert conf["base"] == "smollm2" and conf["rank"] == 8 and conf["n_params"] == 2_442_240
    with safe_open(str(SHIPPED / "adapter.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert {f.get_slice(k).get_dtype() for k in keys} == {"F16"}
    assert len(keys) == 30 * 7 * 2 and (SHIPPED / "adapter.safetensors").stat().st_size < 6e6


def _base_ready():
    from lumos.model.smollm2 import base_dir, is_complete
    return is_complete(base_dir())


@pytest.mark.skipif(not _base_ready(), reason="SmolLM2 base not in the cache (python -m lumos.model.smollm2; CI fetches it)")
def test_shipped_adapter_grounds_gold_subgoals_into_executable_calculator_actions():
    """Base + shipped adapter (merged, through the agent's LocalBackend): the first gold subgoal of the first
    4 GSM8K test questions becomes 'R1 = Calculator(...)' that executes, with operands from the question."""
    import re
    from lumos.agent.backends import LocalBackend, load_gold
    from lumos.agent.executor import maths_executor
    from lumos.agent.grounder import ground_prompt_first
    from lumos.agent.tasks import load_task
    torch.set_num_threads(2)
    backend = LocalBackend(str(SHIPPED), batch_size=4, max_new_tokens=48)
    gold = load_gold(ROOT / "data/gold/gsm8k_test.jsonl")
    examples = [e for e in load_task("gsm8k", 6) if e.id in gold][:4]
    gens = backend.complete([ground_prompt_first("maths", e.question, gold[e.id]["subgoals"][0]) for e in examples])
    copied = 0
    for e, g in zip(examples, gens):
        assert g.text.startswith("R1 = Calculator("), g.text
        records = maths_executor().run(g.text, {})
        assert records[0].tool == "Calculator" and records[0].error is None and records[0].result, g.text
        question_numbers = set(re.findall(r"\d+", e.question.replace(",", "")))  # "$80,000" -> 80000
        copied += bool(question_numbers & set(re.findall(r"\d+", records[0].args)))
    assert copied >= 3, [g.text for g in gens]  # measured at step 35: 4 of 4


SHIPPED_PLAN = ROOT / "checkpoints/lumos-smollm2-plan-lora"


@pytest.mark.skipif(not _base_ready(), reason="SmolLM2 base not in the cache (python -m lumos.model.smollm2; CI fetches it)")
def test_shipped_planner_starts_a_plan_keeps_planning_and_stops():
    """Base + shipped planner adapter, Lumos-I turns of 4 GSM8K test questions with >= 2 gold subgoals:
    the first turn is 'Subgoal 1: ...'; fed gold subgoal 1 and its result it keeps planning with
    'Subgoal 2: ...'; fed every gold subgoal and result it says 'Yes, I will stop planning.'."""
    from lumos.agent.backends import LocalBackend, load_gold
    from lumos.agent.planner import parse_plan_step, plan_prompt_append, plan_prompt_first
    from lumos.agent.tasks import load_task
    torch.set_num_threads(2)
    backend = LocalBackend(str(SHIPPED_PLAN), batch_size=4, max_new_tokens=64)
    gold = load_gold(ROOT / "data/gold/gsm8k_test.jsonl")
    examples = [e for e in load_task("gsm8k", 8) if len(gold.get(e.id, {}).get("subgoals", [])) >= 2][:4]

    def after(e, n):
        """The planner's prompt once gold subgoals 1..n were planned and executed."""
        g, p = gold[e.id], plan_prompt_first(e.question)
        for k in range(1, n + 1):
            said = g["subgoals"][0] if k == 1 else "No, I will keep planning. " + g["subgoals"][k - 1]
            p += plan_prompt_append(said, k, g["results"][k - 1])
        return p

    first = backend.complete([after(e, 0) for e in examples])
    assert all(g.text.startswith("Subgoal 1: ") and parse_plan_step(g.text).kind == "subgoal" for g in first), first
    second = backend.complete([after(e, 1) for e in examples])
    assert all(g.text.startswith("No, I will keep planning. Subgoal 2: ") for g in second), second
    last = backend.complete([after(e, len(gold[e.id]["subgoals"])) for e in examples])
    assert all(parse_plan_step(g.text).kind == "stop" for g in last), last  # measured at steps 85 and 200: 4 of 4
