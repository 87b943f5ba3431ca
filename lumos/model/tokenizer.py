"""Tokenizer: the Llama-2 SentencePiece model, plus the `<pad>` id the Lumos checkpoints add.

Ids: unk 0, bos 1, eos 2. SentencePiece prepends a dummy-prefix space, so "Hello" is one piece
"▁Hello" (15043), and text is split only at the start: encoding a whole conversation gives other
ids at the joins than encoding its pieces and concatenating (e.g. "\\n" after a word is 13, but a
string that starts with "\\n" becomes 29871 "▁" + 13).
"""
from __future__ import annotations

import json
import os

import sentencepiece as spm


class Tokenizer:
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

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        ids = self.sp.encode(text)
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids) -> str:
        """Text of ids; ids outside the SentencePiece vocabulary (the added pad) are dropped."""
        n = self.sp.vocab_size()
        return self.sp.decode([i for i in ids if 0 <= i < n])

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(i) if 0 <= i < self.sp.vocab_size() else "<pad>"


def _added_pad_id(directory: str) -> int | None:
    """The id of `<pad>` declared next to tokenizer.model in an HF checkpoint, if any."""
    added = os.path.join(directory, "added_tokens.json")
    if os.path.isfile(added):
        with open(added) as f:
            pad = json.load(f).get("<pad>")
        if pad is not None:
            return int(pad)
    config = os.path.join(directory, "tokenizer_config.json")
    if os.path.isfile(config):
        with open(config) as f:
            decoder = json.load(f).get("added_tokens_decoder", {})
        for i, tok in decoder.items():
            if tok.get("content") == "<pad>":
                return int(i)
    return None
