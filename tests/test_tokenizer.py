"""The SentencePiece wrapper against llama.cpp's reference tokenizations of the Llama-2 vocabulary."""
import json
import os

import pytest

from lumos.model.tokenizer import Tokenizer
from lumos.prompts import ASSISTANT_HEADER, ASSISTANT_TURN, USER_TURN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "data", "tokenizer", "llama2.model")
DATA = os.path.join(ROOT, "tests", "data")


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(MODEL)


def reference_cases():
    with open(os.path.join(DATA, "reference.inp"), encoding="utf-8") as f:
        texts = f.read().split("\n__ggml_vocab_test__\n")
    if texts[-1] == "":  # the file ends with a separator line
        texts.pop()
    with open(os.path.join(DATA, "reference.out"), encoding="utf-8") as f:
        ids = [[int(t) for t in line.split()] for line in f.read().split("\n")]
    return texts, ids[: len(texts)]


def test_special_ids(tok):
    assert (tok.sp.unk_id(), tok.bos_id, tok.eos_id, tok.pad_id, tok.n_words) == (0, 1, 2, -1, 32000)
    assert tok.encode("Hello", bos=True, eos=True) == [1, 15043, 2]


def test_llama_cpp_reference_tokenizations(tok):
    texts, expected = reference_cases()
    assert len(texts) == 46
    for text, ids in zip(texts, expected):
        assert tok.encode(text) == ids, repr(text)
        # Decoding drops exactly the dummy-prefix space that encoding added: the text comes back.
        assert tok.decode(ids) == text, repr(text)


def test_newline_ids(tok):
    assert tok.encode("\n") == [29871, 13]  # dummy prefix "▁" then the byte <0x0A>
    assert tok.encode("Hello\n") == [15043, 13]
    assert tok.decode([15043, 13, 10994]) == "Hello\nHello"
    assert tok.decode([15043, 13, 15043]) == "Hello\n Hello"  # "▁Hello" mid-text is " Hello"


def test_conversation_tokenized_in_one_piece_differs_from_concatenated_pieces(tok):
    user, answer = "What is 2 + 3?", "Subgoal 1: Calculate 2 + 3."
    pieces = [USER_TURN.format(content=user), ASSISTANT_TURN.format(content=answer)]
    whole = tok.encode("".join(pieces))
    joined = [i for p in pieces for i in tok.encode(p)]
    assert whole != joined
    assert tok.decode(whole) == "".join(pieces)
    # At the join, the whole string continues "...?\n" + "<|assistant|>" without a dummy prefix;
    # the separately encoded piece starts with "▁<": a different id at the boundary.
    header = tok.encode(ASSISTANT_HEADER)
    assert tok.id_to_piece(header[0]).startswith("▁")
    assert tok.encode("Hello\nHello") == [15043, 13, 10994]  # "Hello" after "\n" has no "▁": 10994
    assert tok.encode("Hello") == [15043]


def test_pad_from_checkpoint_directory(tmp_path, tok):
    (tmp_path / "tokenizer.model").write_bytes(open(MODEL, "rb").read())
    (tmp_path / "added_tokens.json").write_text(json.dumps({"<pad>": 32000}))
    t = Tokenizer(str(tmp_path))
    assert (t.pad_id, t.n_words) == (32000, 32001)
    assert t.decode([15043, 32000, 32000]) == "Hello"  # pads are dropped on decoding
