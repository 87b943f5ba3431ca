"""Byte-level BPE: hand-computed pieces on a toy vocabulary, and token-identical output to HF
`tokenizers` (the test-only reference) on a vocabulary trained here and on SmolLM2's own (when the
converted base is in the cache: `python -m lumos.model.smollm2`; CI fetches it)."""
import json
from pathlib import Path

import pytest

from lumos.annotations.gsm8k import Unconvertible
from lumos.annotations.prepare import convert_example
from lumos.model.bpe import BPETokenizer, bytes_to_unicode
from lumos.model.smollm2 import base_dir, is_complete
from lumos.model.tokenizer import Tokenizer, load_tokenizer
from lumos.train.tokenize import serialize

tokenizers = pytest.importorskip("tokenizers", reason="HF tokenizers (installed with transformers) is the reference")
from tokenizers import AddedToken, decoders, models, pre_tokenizers, trainers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GSM8K_TEST = [json.loads(line)["question"] for line in (ROOT / "data/gsm8k/test.jsonl").read_text().splitlines()]
GSM8K_TRAIN = [json.loads(line) for line in (ROOT / "data/gsm8k/train.jsonl").read_text().splitlines()]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
EDGE_CASES = [
    "", " ", "  ", "\n", "\n\n\n", "\t", " \t ", "a  \t b\r\n", "trailing   ", "   leading", "x\u00a0y", "\u3000",
    "Hello world", "hello\nworld\n", "it's they'll I'M we've you'd SHE'S", "don't", "’s curly",
    "1234567890", " 3.14", "$1,000,000.50", "1/2 + ½ = ٣ or ३", "x²", "R1 = Calculator(48 / 2); R2 = Calculator(R1 + 48)",
    "naïve café résumé", "e\u0301 combining", "你好，世界！", "日本語のテキスト", "한국어", "Привет, мир", "مرحبا",
    "🙂👍🏽 emoji", "👨‍👩‍👧", "\u200b zero width", "\ufeffbom", "<|im_start|>user\nHi<|im_end|>\n",
    "<|im_start|><|im_end|>", "a<|endoftext|>b", "<|im_start", "</s>", "<s>", "<|user|>\n", "!!!???...", "@#$%^&*()",
    "    def f(x):\n        return x  # code\n", "\\n literal", "tab\tseparated\tvalues",
]


def hf_reference(tokens, merges, special):
    """SmolLM2's tokenizer.json recipe, built through the tokenizers API (not from our file)."""
    ref = tokenizers.Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, [tuple(m.split(" ")) for m in merges]))
    ref.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    ref.decoder = decoders.ByteLevel()
    ref.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False) for i in special])
    return ref


def annotation_texts(n=150):
    """Serialised Lumos conversations (all four maths datasets) of the first GSM8K train rows."""
    out = []
    for i, row in enumerate(GSM8K_TRAIN[:n]):
        try:
            _, rows = convert_example(f"t{i}", row)
        except Unconvertible:
            continue
        out.extend(serialize(r["messages"]).strip() for r in rows.values())
    return out


def assert_identical(ours, ref, texts):
    for text in texts:
        want = ref.encode(text).ids
        assert ours.encode(text) == want, repr(text)
        assert ours.decode(want) == ref.decode(want, skip_special_tokens=False), repr(text)


# ---- by hand -------------------------------------------------------------------------------------

def test_gpt2_byte_map():
    m = bytes_to_unicode()
    assert len(m) == 256 and len(set(m.values())) == 256
    assert (m[ord(" ")], m[ord("\n")], m[ord("\t")], m[0], m[ord("A")], m[0xFF]) == ("Ġ", "Ċ", "ĉ", "Ā", "A", "ÿ")


def toy():
    chars = sorted(set(bytes_to_unicode().values()))
    tokens = SPECIAL + chars + ["bc", "abc", "Ġa", "Ġabc"]
    return BPETokenizer(tokens, ["b c", "Ġ a", "a bc", "Ġa bc"], special=[0, 1, 2], bos_id=1, eos_id=2), tokens


def toy_ranked(merges):
    _, tokens = toy()
    return BPETokenizer(tokens, merges, special=[0, 1, 2], bos_id=1, eos_id=2)


def test_merges_by_rank_by_hand():
    tok, tokens = toy()
    # "abc": "b c" (rank 0), then "a bc" (2). "Ġabc": "b c" (0) -> Ġ a bc; "Ġ a" (1) beats "a bc" (2)
    # -> Ġa bc; "Ġa bc" (3) -> Ġabc.
    assert tok.merge("abc") == ["abc"]
    assert tok.merge("Ġabc") == ["Ġabc"]
    assert toy_ranked(["b c", "a bc", "Ġ a", "Ġa bc"]).merge("Ġabc") == ["Ġ", "abc"]  # "a bc" first: stuck
    assert tok.merge("Ġabab") == ["Ġa", "b", "a", "b"]  # no "a b" merge: "ab" stays apart
    assert tok.merge("bcbc") == ["bc", "bc"]
    ids = tok.encode("abc abc<|im_end|>")
    assert [tokens[i] for i in ids] == ["abc", "Ġabc", "<|im_end|>"]
    assert tok.decode(ids) == "abc abc<|im_end|>"
    assert (tok.add_bos, tok.add_dummy_prefix, tok.encode("a", bos=True, eos=True)) == (False, False, [1, tokens.index("a"), 2])


def test_smollm_pre_tokenizer_by_hand():
    tok, _ = toy()
    assert tok.pre_tokenize("a 12") == ["a", " ", "1", "2"]
    assert tok.pre_tokenize("I'll pay $3.50!") == ["I", "'ll", " pay", " $", "3", ".", "5", "0", "!"]
    # a whitespace run ends one short of the next word, which keeps its space
    assert tok.pre_tokenize("x  \n y") == ["x", "  \n", " y"]
    assert tok.pre_tokenize("x   y") == ["x", "  ", " y"]


def test_token_bytes_and_partial_utf8():
    tok, tokens = toy()
    assert tok.token_bytes(tokens.index("Ċ")) == b"\n"
    assert tok.token_bytes(2) == b"<|im_end|>"
    ids = tok.encode("é")  # two byte-level pieces, one per UTF-8 byte
    assert [tok.token_bytes(i) for i in ids] == [b"\xc3", b"\xa9"]
    assert tok.decode(ids[:1]) == "\ufffd" and tok.decode(ids) == "é"


# ---- against HF tokenizers -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 1,500-piece byte-level BPE trained by HF on GSM8K train questions, saved as tokenizer.json."""
    ref = hf_reference([], [], [])
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    ref.train_from_iterator([r["question"] for r in GSM8K_TRAIN[:2000]], trainer)
    d = tmp_path_factory.mktemp("bpe")
    ref.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>", "bos_token": "<|im_start|>"}))
    return ref, d


def test_identical_to_hf_on_a_trained_vocabulary(trained):
    ref, d = trained
    ours = load_tokenizer(str(d))
    assert isinstance(ours, BPETokenizer) and (ours.bos_id, ours.eos_id, ours.add_bos) == (1, 2, False)
    assert_identical(ours, ref, EDGE_CASES + GSM8K_TEST[:400] + annotation_texts(60))


def test_save_writes_a_file_hf_reads_identically(trained, tmp_path):
    ref, d = trained
    load_tokenizer(str(d)).save(tmp_path)
    again = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert_identical(load_tokenizer(str(tmp_path)), again, EDGE_CASES + GSM8K_TEST[:100])
    assert_identical(load_tokenizer(str(tmp_path)), ref, EDGE_CASES)


def test_load_tokenizer_picks_by_files(trained, tmp_path):
    _, d = trained
    assert isinstance(load_tokenizer(str(ROOT / "data/tokenizer/llama2.model")), Tokenizer)
    (tmp_path / "tokenizer.model").write_bytes((ROOT / "data/tokenizer/llama2.model").read_bytes())
    (tmp_path / "tokenizer.json").write_text((d / "tokenizer.json").read_text())
    assert isinstance(load_tokenizer(str(tmp_path)), Tokenizer)  # HF Llama-2 dirs hold both: .model wins
    assert load_tokenizer(str(tmp_path)).add_bos is True
    assert isinstance(load_tokenizer(str(tmp_path / "meta-7b")), Tokenizer)  # Meta layout: one level up
    (tmp_path / "x" / "y").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no tokenizer.model or tokenizer.json"):
        load_tokenizer(str(tmp_path / "x" / "y"))


def test_other_pre_tokenizers_are_refused(trained, tmp_path):
    _, d = trained
    tj = json.loads((d / "tokenizer.json").read_text())
    tj["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁"}
    (tmp_path / "tokenizer.json").write_text(json.dumps(tj))
    (tmp_path / "tokenizer_config.json").write_text((d / "tokenizer_config.json").read_text())
    with pytest.raises(ValueError, match="pre-tokenizer"):
        load_tokenizer(str(tmp_path))


# ---- SmolLM2's own vocabulary -----------------------------------------------------------------------

needs_base = pytest.mark.skipif(not is_complete(base_dir()),
                                reason=f"SmolLM2 base not in {base_dir()} (python -m lumos.model.smollm2)")


@needs_base
def test_smollm2_identical_to_hf_on_gsm8k_annotations_and_edge_cases():
    ours = load_tokenizer(str(base_dir()))
    spec = json.loads((base_dir() / "tokenizer.json").read_text())
    tokens = [None] * ours.n_words
    for t, i in spec["model"]["vocab"].items():
        tokens[i] = t
    ref = hf_reference(tokens, spec["model"]["merges"], sorted(ours.special_ids))
    assert (ours.n_words, len(ours.ranks), sorted(ours.special_ids)) == (49152, 48900, list(range(17)))
    assert (ours.bos_id, ours.eos_id, ours.add_bos) == (1, 2, False)
    ids = ours.encode("<|im_start|>user\n12 apples<|im_end|>\n")
    assert [ours.id_to_piece(i) for i in ids] == ["<|im_start|>", "user", "Ċ", "1", "2", "Ġapples", "<|im_end|>", "Ċ"]
    assert (ids[0], ids[2], ids[-2]) == (1, 198, 2)
    assert_identical(ours, ref, EDGE_CASES + GSM8K_TEST + annotation_texts(300))
    hf_file = tokenizers.Tokenizer.from_file(str(base_dir() / "tokenizer.json"))  # our file, read by HF
    assert_identical(ours, hf_file, EDGE_CASES + GSM8K_TEST[:200])


# ---- the Lumos serialisation, loss mask and stop strings with a byte-level BPE ---------------------

def test_loss_mask_with_bpe_no_bos_and_eos_for_the_literal(trained):
    from lumos.train.tokenize import IGNORE_INDEX, _encode_with_offsets, encode_conversation, labels_by_prefixes
    tok = load_tokenizer(str(trained[1]))
    msgs = [{"role": "user", "content": "Tom has 3 apples."}, {"role": "assistant", "content": "R1 = Calculator(3 + 4)"},
            {"role": "user", "content": "Next"}, {"role": "assistant", "content": "Done"}]
    ids, labels = encode_conversation(tok, msgs)
    text = serialize(msgs).strip()
    assert ids[0] != tok.bos_id  # add_bos false: no BOS
    assert ids.count(tok.eos_id) == 2 and tok.eos_id == 2  # each "</s>" -> <|im_end|>
    assert tok.decode(ids) == text.replace("</s>", "<|im_end|>")
    assert _encode_with_offsets(tok, text)[1] is not None  # the fast offset path applies (no fallback)
    assert labels == labels_by_prefixes(tok, msgs)
    trained_text = tok.decode([t for t in labels if t != IGNORE_INDEX])
    assert trained_text == "R1 = Calculator(3 + 4)<|im_end|>\nDone<|im_end|>"
    for i, row in enumerate(GSM8K_TRAIN[:15]):
        try:
            _, rows = convert_example(f"t{i}", row)
        except Unconvertible:
            continue
        for r in rows.values():
            assert encode_conversation(tok, r["messages"])[1] == labels_by_prefixes(tok, r["messages"])


def test_stop_table_uses_the_bytes_each_piece_spells(trained):
    from lumos.model.generate import _stop_tokens
    tok = load_tokenizer(str(trained[1]))
    table = _stop_tokens(tok, ("\n",))
    newline = tok.encode("\n")[0]
    assert tok.id_to_piece(newline) == "Ċ" and table.get(newline)
    assert set(table) == {i for i in range(tok.n_words) if "Ċ" in tok.id_to_piece(i)}
