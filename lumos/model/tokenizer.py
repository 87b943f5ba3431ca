"""Tokenizers: the Llama-2 SentencePiece model (plus the `<pad>` id the Lumos checkpoints add),
and `load_tokenizer(dir)`, which picks SentencePiece or byte-level BPE (bpe.py) by the files present.

Both share one small interface: encode(text, bos, eos), decode(ids), id_to_piece(i),
token_bytes(i) (the bytes an id spells), save(dir); bos_id, eos_id, pad_id, n_words, and two
properties of the tokenizer files rather than of the caller: add_bos (does a prompt start with
BOS: Llama-2 yes, SmolLM2 no) and add_dummy_prefix (does encode invent a leading space).

Ids: unk 0, bos 1, eos 2. SentencePiece prepends a dummy-prefix space, so "Hello" is one piece
"▁Hello" (15043), and text is split only at the start: encoding a whole conversation gives other
ids at the joins than encoding its pieces and concatenating (e.g. "\\n" after a word is 13, but a
string that starts with "\\n" becomes 29871 "▁" + 13).
"""
from __future__ import annotations

import json
import os
import shutil

import sentencepiece as spm


class Tokenizer:
    add_dummy_prefix = True  # "Hello" is encoded as "▁Hello"

    def __init__(self, path: str, pad_id: int | None = None):
        """path: a SentencePiece .model file, or a checkpoint directory holding tokenizer.model
        (its added_tokens.json / tokenizer_config.json may define `<pad>`, 32000 for Lumos).
        pad_id: override; -1 when the vocabulary has no pad."""
        model_file = os.path.join(path, "tokenizer.model") if os.path.isdir(path) else path
        if not os.path.isfile(model_file):
            raise FileNotFoundError(f"no SentencePiece model at {model_file}")
        self.sp = spm.SentencePieceProcessor(model_file=model_file)
        self.bos_id, self.eos_id = self.sp.bos_id(), self.sp.eos_id()
        if pad_id is None:
            pad_id = _added_pad_id(path) if os.path.isdir(path) else None
        if pad_id is None:
            pad_id = self.sp.pad_id()  # -1 for Llama-2
        self.pad_id = pad_id
        # Ids the embedding must hold: SentencePiece's pieces plus an added pad past their end.
        self.n_words = max(self.sp.vocab_size(), self.pad_id + 1)
        self.add_bos = _config(path).get("add_bos_token", True) if os.path.isdir(path) else True
        self._model_file = model_file

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        ids = self.sp.encode(text)
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids) -> str:
        """Text of ids; ids outside the SentencePiece vocabulary (the added pad) are dropped."""
        n = self.sp.vocab_size()
        return self.sp.decode([i for i in ids if 0 <= i < n])

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(i) if 0 <= i < self.sp.vocab_size() else "<pad>"

    def token_bytes(self, i: int) -> bytes:
        """The bytes id i spells: "▁" is a space, a byte-fallback piece "<0x0A>" is that byte,
        control pieces (<s>, </s>) and the added pad spell nothing."""
        if not 0 <= i < self.sp.vocab_size() or self.sp.is_control(i):
            return b""
        piece = self.sp.id_to_piece(i)
        if self.sp.is_byte(i):
            return bytes([int(piece[3:5], 16)])
        return piece.replace("\u2581", " ").encode()

    def save(self, directory: str) -> None:
        """Copy tokenizer.model into directory (with added_tokens.json when the pad is added)."""
        os.makedirs(directory, exist_ok=True)
        target = os.path.join(directory, "tokenizer.model")
        if os.path.abspath(self._model_file) != os.path.abspath(target):
            shutil.copyfile(self._model_file, target)
        if self.pad_id >= self.sp.vocab_size():
            with open(os.path.join(directory, "added_tokens.json"), "w") as f:
                json.dump({"<pad>": self.pad_id}, f)


def load_tokenizer(path: str):
    """The tokenizer of a checkpoint directory (or a SentencePiece .model file): tokenizer.model
    -> SentencePiece (HF Llama-2 directories also hold a tokenizer.json; the .model wins), else
    tokenizer.json -> byte-level BPE, else a tokenizer.model one level up (Meta's layout)."""
    if os.path.isfile(path):
        return Tokenizer(path)
    if os.path.isfile(os.path.join(path, "tokenizer.model")):
        return Tokenizer(path)
    if os.path.isfile(os.path.join(path, "tokenizer.json")):
        from .bpe import BPETokenizer
        return BPETokenizer.load(path)
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isfile(os.path.join(parent, "tokenizer.model")):
        return Tokenizer(parent)
    raise FileNotFoundError(f"{path}: no tokenizer.model or tokenizer.json in it (or tokenizer.model in its parent)")


def _config(directory: str) -> dict:
    config = os.path.join(directory, "tokenizer_config.json")
    if not os.path.isfile(config):
        return {}
    with open(config) as f:
        return json.load(f)


def _added_pad_id(directory: str) -> int | None:
    """The id of `<pad>` declared next to tokenizer.model in an HF checkpoint, if any."""
    added = os.path.join(directory, "added_tokens.json")
    if os.path.isfile(added):
        with open(added) as f:
            pad = json.load(f).get("<pad>")
        if pad is not None:
            return int(pad)
    for i, tok in _config(directory).get("added_tokens_decoder", {}).items():
        if tok.get("content") == "<pad>":
            return int(i)
    return None
