"""The training data path: serialisation, the loss mask, truncation, batching, the sampler, CLI errors."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lumos.model.tokenizer import Tokenizer
from lumos.train.data import StepSampler, collate, tokenize_conversations
from lumos.train.tokenize import IGNORE_INDEX, encode_conversation, encode_text, labels_by_prefixes, serialize
from lumos.train.trainer import lr_at

ROOT = Path(__file__).resolve().parents[1]
LLAMA = ROOT / "data" / "tokenizer" / "llama2.model"

TWO_TURNS = [
    {"role": "user", "content": "Hi 2+3?"},
    {"role": "assistant", "content": "R1 = 5"},
    {"role": "user", "content": "Next"},
    {"role": "assistant", "content": " Done. "},  # contents are stripped
]


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(str(LLAMA))


def test_serialize_is_open_instructs_string():
    assert serialize(TWO_TURNS).strip() == (
        "<|user|>\nHi 2+3?\n<|assistant|>\nR1 = 5</s>\n<|user|>\nNext\n<|assistant|>\nDone.</s>")


def test_mask_two_turn_conversation(tok):
    ids, labels = encode_conversation(tok, TWO_TURNS)
    # BOS, then the whole string in one piece; "</s>" is the EOS id 2 and the text after it is
    # encoded on its own, so "\n" right after EOS is "▁" (29871) + "\n" (13), as HF's Llama tokenizer.
    assert ids == [1,
                   529, 29989, 1792, 29989, 29958, 13,             # ▁< | user | > \n
                   18567, 29871, 29906, 29974, 29941, 29973, 13,   # Hi ▁ 2 + 3 ? \n
                   29966, 29989, 465, 22137, 29989, 29958, 13,     # < | ass istant | > \n
                   29934, 29896, 353, 29871, 29945,                # R 1 ▁= ▁ 5
                   2, 29871, 13,                                   # </s> ▁ \n
                   29966, 29989, 1792, 29989, 29958, 13,           # < | user | > \n
                   9190, 13,                                       # Next \n
                   29966, 29989, 465, 22137, 29989, 29958, 13,     # < | ass istant | > \n
                   25632, 29889, 2]                                # Done . </s>
    trained = [t for t, lab in enumerate(labels) if lab != IGNORE_INDEX]
    # Turn 1: content (21-25), its EOS (26) and the "\n" after it (27, 28); turn 2: content + EOS.
    assert trained == [21, 22, 23, 24, 25, 26, 27, 28, 44, 45, 46]
    assert all(labels[t] == ids[t] for t in trained)
    assert tok.decode([ids[t] for t in trained[:5]]) == "R1 = 5"


def test_paper_tokenization_strips_the_whitespace_around_eos(tok):
    """--tokenization paper: transformers < 4.34's slow Llama tokenizer (the released Lumos models'
    trainer) stripped whitespace next to a plain-string special token, so after a mid-sequence
    "</s>" the "\n" is gone and "<|user|>" starts with "▁<" (529) exactly as the first turn does.
    Ids by hand from the Llama-2 vocabulary: only [2, 29871, 13, 29966] -> [2, 529] changes."""
    ids, labels = encode_conversation(tok, TWO_TURNS, strip_around_eos=True)
    assert ids == [1,
                   529, 29989, 1792, 29989, 29958, 13,             # ▁< | user | > \n
                   18567, 29871, 29906, 29974, 29941, 29973, 13,   # Hi ▁ 2 + 3 ? \n
                   29966, 29989, 465, 22137, 29989, 29958, 13,     # < | ass istant | > \n
                   29934, 29896, 353, 29871, 29945,                # R 1 ▁= ▁ 5
                   2,                                              # </s>  (no ▁ \n after it)
                   529, 29989, 1792, 29989, 29958, 13,             # ▁< | user | > \n
                   9190, 13,                                       # Next \n
                   29966, 29989, 465, 22137, 29989, 29958, 13,     # < | ass istant | > \n
                   25632, 29889, 2]                                # Done . </s>
    assert [tok.id_to_piece(i) for i in ids[26:28]] == ["</s>", "▁<"]
    trained = [t for t, lab in enumerate(labels) if lab != IGNORE_INDEX]
    assert trained == [21, 22, 23, 24, 25, 26, 42, 43, 44]  # 2 labels fewer than the default's 11
    assert labels == labels_by_prefixes(tok, TWO_TURNS, strip_around_eos=True)  # open-instruct's method agrees
    assert encode_text(tok, "a </s> \n b </s>\n", strip_around_eos=True) == [1, *tok.encode("a"), 2, *tok.encode("b"), 2]
    ds = tokenize_conversations([{"id": "x", "messages": TWO_TURNS}], tok, 1024, strip_around_eos=True)
    assert ds.tokens[0].tolist() == ids[:-1] and ds.n_labels.tolist() == [9]


def test_train_config_tokenization_reaches_the_dataset(tok, tmp_path):
    from lumos.train.trainer import TrainConfig, load_dataset
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"dataset": "toy", "id": "x", "messages": TWO_TURNS}) + "\n")
    counts = {t: load_dataset(TrainConfig(data=str(data), out="", tokenizer="", tokenization=t), tok).n_labels.tolist()
              for t in ("current", "paper")}
    assert counts == {"current": [11], "paper": [9]}


def test_eos_text_becomes_the_eos_id(tok):
    assert encode_text(tok, "a</s>b</s>") == [1] + tok.encode("a") + [2] + tok.encode("b") + [2]
    assert 2 not in tok.encode("</s>")  # plain SentencePiece would spell it out: the reason for the split


def test_truncation_and_dropping(tok):
    long_user = {"role": "user", "content": "word " * 200}
    rows = [{"id": "keep", "messages": TWO_TURNS},
            {"id": "cut", "messages": [long_user, {"role": "assistant", "content": "yes"}]}]
    ds = tokenize_conversations(rows, tok, max_seq_len=64)
    assert ds.ids == ["keep"] and ds.n_dropped == 1 and ds.n_truncated == 1 and ds.n_rows == 2
    ids, labels = encode_conversation(tok, TWO_TURNS)
    # stored pre-shifted: tokens[t] predicts targets[t] = labels[t + 1]
    assert ds.tokens[0].tolist() == ids[:-1] and ds.targets[0].tolist() == labels[1:]
    assert ds.n_labels.tolist() == [11]
    ds = tokenize_conversations(rows[:1], tok, max_seq_len=27)  # cut inside the first answer
    assert ds.n_truncated == 1 and ds.n_labels.tolist() == [27 - 21]


def test_collate_pads_right(tok):
    ds = tokenize_conversations([{"id": "a", "messages": TWO_TURNS}, {"id": "b", "messages": TWO_TURNS[:2]}], tok, 1024)
    tokens, targets = collate(ds, [1, 0], pad_id=2)
    n = len(ds.tokens[1])
    assert tokens.shape == targets.shape == (2, len(ds.tokens[0]))
    assert (tokens[0, n:] == 2).all() and (targets[0, n:] == IGNORE_INDEX).all()
    assert tokens[1].tolist() == ds.tokens[0].tolist()


def test_sampler_partitions_global_batches():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 100, size=50)
    s = StepSampler(lengths, global_batch=12, micro_batch=3, world_size=2, seed=7)
    assert s.grad_accum == 2 and s.steps_per_epoch == 4
    epoch0 = np.concatenate([s.global_batch_indices(k) for k in range(4)])
    assert len(set(epoch0.tolist())) == 48  # an epoch never repeats an example
    for step in range(6):
        g = s.global_batch_indices(step)
        assert (np.diff(lengths[g]) <= 0).all()  # longest first: micro-batches of similar lengths
        parts = [m for r in range(2) for m in s.micro_batches(step, r)]
        assert all(len(m) == 3 for m in parts)
        assert sorted(np.concatenate(parts).tolist()) == sorted(g.tolist())
        # A one-process run with the same global batch sees the same examples.
        single = StepSampler(lengths, 12, 3, 1, seed=7)
        assert sorted(np.concatenate(single.micro_batches(step, 0)).tolist()) == sorted(g.tolist())
    assert not np.array_equal(s.global_batch_indices(0), s.global_batch_indices(4))  # reshuffled per epoch
    assert np.array_equal(s.global_batch_indices(5), StepSampler(lengths, 12, 3, 2, 7).global_batch_indices(5))
    with pytest.raises(ValueError, match="different --seed"):
        s.check_state_dict(StepSampler(lengths, 12, 3, 2, seed=8).state_dict())
    with pytest.raises(ValueError, match="multiple"):
        StepSampler(lengths, 12, 5, 1, 0)


def test_linear_schedule_with_warmup():
    assert [lr_at(s, 100, 3, 1.0) for s in (0, 1, 3, 50, 99)] == [0.0, 1 / 3, 1.0, 50 / 97, 1 / 97]


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def _load_cli():
    spec = importlib.util.spec_from_file_location("train_cli", ROOT / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("argv, message", [
    (["--module", "grounding"], "exactly one of --init"),
    (["--module", "planning", "--task", "unified", "--formulation", "onetime", "--preset", "tiny"], "only iterative"),
    (["--data", "x.jsonl", "--preset", "tiny", "--global-batch-size", "10", "--micro-batch-size", "4"],
     "multiple of --micro-batch-size"),
    (["--preset", "tiny"], "give --module"),
    (["--init", "/nonexistent", "--module", "planning"], "no such directory"),
])
def test_cli_bad_flags(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        _load_cli().parse_args(argv + ["--out", str(tmp_path)])
    assert e.value.code == 2 and message in capsys.readouterr().err.strip().splitlines()[-1]


def test_cli_bad_row_is_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = {"dataset": "t", "id": "a", "messages": TWO_TURNS}
    bad.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "b", "messages": TWO_TURNS[:1]}) + "\n")
    r = subprocess.run([sys.executable, str(ROOT / "train.py"), "--data", str(bad), "--preset", "tiny",
                        "--tokenizer", str(LLAMA), "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("train.py: error: ") and f"{bad}:2: last message must be from the assistant" in lines[0]


def _varied_conversations():
    """Multi-turn conversations with the awkward bits: unicode, digits, runs of spaces and
    newlines, a literal "</s>" inside a content, contents that need stripping."""
    texts = ["R1 = Calculator(48 / 2)", "café costs 3.50 €; 漢字 ok", "a  b   c\n\nd", "  padded  ",
             "x</s>y", "Subgoal 2: Calculate 12 * 7.", "Yes, I will stop planning.", "100%"]
    convs = []
    for i in range(12):
        msgs = []
        for k in range(1 + i % 3):
            msgs.append({"role": "user", "content": texts[(i + k) % len(texts)] + f" turn {k}"})
            msgs.append({"role": "assistant", "content": texts[(3 * i + k + 1) % len(texts)]})
        convs.append(msgs)
    return convs


def test_offset_labels_equal_open_instructs_prefix_labels(tok, tmp_path):
    from lumos.train.tokenize import labels_by_prefixes, train_sentencepiece
    convs = _varied_conversations()
    small = Tokenizer(train_sentencepiece(convs * 4, str(tmp_path / "sp"), vocab_size=400))
    for t in (tok, small):
        for msgs in convs:
            ids, labels = encode_conversation(t, msgs)
            assert ids == encode_text(t, serialize(msgs).strip())
            assert labels == labels_by_prefixes(t, msgs)
            assert sum(lab != IGNORE_INDEX for lab in labels) > 0


def test_ctrl_c_while_sentencepiece_reads_is_a_ctrl_c(tmp_path):
    """SentencePiece's C++ reader turns a KeyboardInterrupt raised in our sentence iterator into a
    RuntimeError; train_sentencepiece must hand it back as KeyboardInterrupt (exit 130 in the CLIs),
    not as "training failed", while a real failure stays a ValueError."""
    from lumos.train.tokenize import train_sentencepiece
    convs = _varied_conversations()

    class Interrupted(list):
        def __iter__(self):
            yield from convs[:2]
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_sentencepiece(Interrupted(), str(tmp_path / "sp"), vocab_size=400)
    with pytest.raises(ValueError, match="SentencePiece training failed"):
        train_sentencepiece(convs, str(tmp_path / "sp2"), vocab_size=10)  # smaller than 256 bytes
