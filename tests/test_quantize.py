"""Decode layouts: transposed float weights compute nn.Linear's output; int8 weights with per-channel
scales follow the gpt-fast recipe (hand-computed), and a quantized model stays close to fp32."""
from pathlib import Path

import pytest
import torch
from torch import nn

from lumos.agent.backends import LocalBackend
from lumos.model import ModelArgs, Transformer, decode_tokens
from lumos.model.kv_cache import KVCache
from lumos.model.quantize import (INT8_KERNEL_ROWS, Int8Linear, TransposedLinear, quantize_per_channel,
                                  to_decode_layout)

torch.set_num_threads(1)
ROOT = Path(__file__).parents[1]


def test_per_channel_int8_by_hand():
    w = torch.tensor([[1.27, -0.5, 0.2], [0.1, 0.254, -0.3]])
    q, s = quantize_per_channel(w)
    torch.testing.assert_close(s, torch.tensor([1.27, 0.3]) / 127)  # max |row| / 127
    # row 0: scale 0.01 -> 127, -50, 20; row 1: 0.1 / (0.3/127) = 42.3 -> 42, 107.5 -> 108, -127
    assert q.dtype == torch.int8 and q.tolist() == [[127, -50, 20], [42, 108, -127]]
    assert quantize_per_channel(torch.zeros(1, 4))[0].tolist() == [[0, 0, 0, 0]]  # an all-zero row: no NaN


@pytest.mark.parametrize("rows", [1, 3, INT8_KERNEL_ROWS + 5])  # the int8 kernel and the bf16-GEMM path
def test_int8_linear_computes_bf16_inputs_times_dequantised_weights(rows):
    g = torch.Generator().manual_seed(0)
    lin = nn.Linear(64, 96, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(96, 64, generator=g))
    x = torch.randn(2, rows, 64, generator=g)
    q, s = quantize_per_channel(lin.weight)
    ref = x.bfloat16().float() @ (q.float() * s[:, None]).T  # what int8 weight-only promises
    out = Int8Linear(lin)(x)
    assert out.shape == (2, rows, 96) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-2, atol=2e-2)  # the product is rounded to bf16 once
    exact = x @ lin.weight.T
    assert (out - exact).abs().max() / exact.abs().max() < 0.02  # int8 + bf16 inputs: ~1 % of the range


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch has no oneDNN")
def test_packed_transposed_linear_equals_nn_linear_at_one_and_many_rows():
    lin = nn.Linear(64, 96, bias=False)
    t = TransposedLinear(lin, packed=True)
    assert t.packed is not None
    for shape in ((1, 1, 64), (8, 1, 64), (2, 5, 64), (1, 64), (3, 64)):
        x = torch.randn(*shape)
        torch.testing.assert_close(t(x), lin(x), rtol=1e-5, atol=1e-5)


def test_transposed_linear_and_int8_models_against_fp32():
    args = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=500, max_seq_len=64)
    ref = Transformer(args).init_weights(seed=1).eval()
    tr = Transformer(args).eval()
    tr.load_state_dict(ref.state_dict())
    q8 = Transformer(args).eval()
    q8.load_state_dict(ref.state_dict())
    to_decode_layout(tr), to_decode_layout(q8, int8=True)
    assert not any(type(m) is nn.Linear for m in tr.modules()) and isinstance(tr.layers[0].attention.wq, TransposedLinear)
    assert isinstance(q8.output, Int8Linear) and q8.layers[1].feed_forward.w2.weight_int8.dtype == torch.int8
    tokens = torch.randint(0, 500, (3, 20), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got_tr, got_q8 = ref(tokens), tr(tokens), q8(tokens)
    torch.testing.assert_close(got_tr, want, rtol=1e-4, atol=1e-4)
    assert (got_q8 - want).abs().max() / want.abs().max() < 0.05
    # the cache stays float (from the embedding table), and decoding runs
    assert KVCache.for_model(q8, 1, 8).k[0].dtype == torch.float32
    assert decode_tokens(tr, tokens[:, :5].tolist(), 6, eos_id=None)[0] == decode_tokens(ref, tokens[:, :5].tolist(), 6, eos_id=None)[0]
    assert all(len(r) == 6 for r in decode_tokens(q8, tokens[:, :5].tolist(), 6, eos_id=None)[0])


def test_local_backend_int8_loads_and_decodes_the_demo_grounder():
    b = LocalBackend(str(ROOT / "checkpoints/lumos-demo-ground"), dtype="int8", max_new_tokens=24)
    assert isinstance(b.model.layers[0].attention.wq, Int8Linear)
    assert b.model.tok_embeddings.weight.dtype == torch.float32  # gathered, not streamed: stays float
    f = LocalBackend(str(ROOT / "checkpoints/lumos-demo-ground"), max_new_tokens=24)
    assert isinstance(f.model.output, TransposedLinear)  # fp32 on the CPU: the decode layout
    assert f.model.output.packed is not None or not torch.backends.mkldnn.is_available()
    prompt = ("<|user|>\nPlease ground the given subgoal to corresponding executable actions for solving the given task. "
              "The grounded actions must be the one in available action list.\n\nThe available action list is "
              "'Calculator', 'SetEquation', 'SolveEquation', 'Count', 'SolveInequality', 'Code', and 'Define'.\n"
              "Calculator(formula): Calculate the input formula; SetEquation(equation): Set up an equation to be "
              "solved; SolveEquation(equation): Solve the previous set equation; Count(list): Count the number of "
              "elements in the given list; SolveInequality(inequality): Solve the previous set inequality; "
              "Code(pseudo_code): Generate a Python function that corresponds to the pseudo code; "
              "Define(variable/number): Define a variable or a number for latter usage.\n\n"
              "Task: Tom has 3 apples and buys 4 more. How many apples does he have? \n"
              "Subgoal to be grounded: Subgoal 1: Calculate the apples Tom has.\n<|assistant|>\n")
    got = b.complete([prompt])[0]
    assert got.finish_reason in ("stop", "eos") and got.text.startswith("R1 = ")
