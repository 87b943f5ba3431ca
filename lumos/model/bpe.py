"""Byte-level BPE (GPT-2 style), the tokenizer of SmolLM2 and most recent small Llamas.

Text -> ids in four steps:
  1. special tokens ("<|im_start|>", ...) are cut out of the text first and map to their ids;
  2. pre-tokenization splits the rest into words: `smollm` isolates every digit (\\p{N}) as its
     own word, then GPT-2's regex splits each stretch ("'s", " word", " 123", " !!", spaces);
  3. each word's UTF-8 bytes become printable characters through GPT-2's byte<->unicode map
     (space -> "Ġ", newline -> "Ċ"), so the vocabulary needs no unknown token;
  4. merges: repeatedly join the adjacent pair with the lowest merge rank, then look the pieces up.
Decoding maps pieces back to bytes and decodes UTF-8. There is no dummy-prefix space (unlike
SentencePiece): "Hello" is "Hello", " Hello" is "ĠHello".

On disk: HF's tokenizer.json (vocab, merges, added tokens, pre-tokenizer) and
tokenizer_config.json (bos/eos/pad, add_bos_token), so `tokenizers`/transformers read it too.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import regex

# GPT-2's pre-tokenizer (HF ByteLevel use_regex): contractions, letters, numbers, other symbols,
# whitespace not followed by a non-space (so " word" keeps its space), any leftover whitespace.
GPT2_SPLIT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
DIGIT = regex.compile(r"(\p{N})")
PRE_TOKENIZERS = ("gpt2", "smollm")  # smollm: digits one per word, then GPT-2 (StarCoder's scheme)


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map byte -> printable character: the 188 bytes that are printable Latin-1 map to
    themselves, the other 68 (controls, space, ...) to chr(256), chr(257), ... in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class BPETokenizer:
    """Same small interface as the SentencePiece `Tokenizer`: encode, decode, id_to_piece,
    token_bytes, save; bos_id, eos_id, pad_id, n_words, add_bos, add_dummy_prefix."""

    add_dummy_prefix = False  # no space is invented in front of the text

    def __init__(self, tokens: list[str], merges: list[str] | list[list[str]], special: list[int],
                 bos_id: int | None, eos_id: int, pad_id: int | None = None, add_bos: bool = False,
                 pre: str = "smollm", chat_template: str | None = None):
        """tokens: piece of every id (byte-level characters); merges: "a b" (or [a, b]) in rank
        order; special: ids matched verbatim in text (and never produced by merges)."""
        if pre not in PRE_TOKENIZERS:
            raise ValueError(f"pre-tokenizer {pre!r} is not implemented; known: {', '.join(PRE_TOKENIZERS)}")
        self.tokens, self.pre, self.chat_template = list(tokens), pre, chat_template
        self.vocab = {t: i for i, t in enumerate(self.tokens)}
        pairs = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
        self.ranks = {p: r for r, p in enumerate(pairs)}
        self.special = {self.tokens[i]: i for i in special}
        self.special_ids = set(special)
        # Longest first, so that a special token that contains another wins (as HF's leftmost-longest).
        names = sorted(self.special, key=len, reverse=True)
        self._special_split = regex.compile("(" + "|".join(regex.escape(s) for s in names) + ")") if names else None
        self.bos_id = -1 if bos_id is None else bos_id
        self.eos_id = eos_id
        self.pad_id = -1 if pad_id is None else pad_id
        self.add_bos = add_bos
        self.n_words = len(self.tokens)
        self._byte_of = {c: b for b, c in bytes_to_unicode().items()}
        self._char_of = bytes_to_unicode()
        self._cache: dict[str, list[int]] = {}

    # ---- encoding -----------------------------------------------------------------------------

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        ids = [self.bos_id] if bos else []
        chunks = self._special_split.split(text) if self._special_split else [text]
        for j, chunk in enumerate(chunks):
            if j % 2:  # the split's captured group: a special token
                ids.append(self.special[chunk])
                continue
            for word in self.pre_tokenize(chunk):
                ids.extend(self._word_ids(word))
        return ids + ([self.eos_id] if eos else [])

    def pre_tokenize(self, text: str) -> list[str]:
        """Text (no special tokens) -> words, before the byte map. "a 12" -> ["a", " ", "1", "2"]."""
        stretches = DIGIT.split(text) if self.pre == "smollm" else [text]
        return [w for s in stretches if s for w in GPT2_SPLIT.findall(s)]

    def _word_ids(self, word: str) -> list[int]:
        ids = self._cache.get(word)
        if ids is None:
            pieces = self.merge("".join(self._char_of[b] for b in word.encode("utf-8")))
            try:
                ids = [self.vocab[p] for p in pieces]
            except KeyError as e:
                raise ValueError(f"piece {e.args[0]!r} of {word!r} is not in the vocabulary") from None
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[word] = ids
        return ids

    def merge(self, word: str) -> list[str]:
        """Byte-level characters of one word -> its pieces: while some adjacent pair has a merge
        rank, join every occurrence (left to right) of the lowest-ranked one."""
        parts = list(word)
        while len(parts) > 1:
            best, best_rank = None, None
            for pair in zip(parts, parts[1:]):
                r = self.ranks.get(pair)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = pair, r
            if best is None:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    # ---- decoding -----------------------------------------------------------------------------

    def token_bytes(self, i: int) -> bytes:
        """The bytes id i spells ("Ċ" -> b"\\n"); a special token spells its own text."""
        piece = self.tokens[i]
        if i in self.special_ids:
            return piece.encode("utf-8")
        return bytes(self._byte_of[c] for c in piece)

    def decode(self, ids) -> str:
        """Text of ids (special tokens included, as their text); invalid UTF-8 becomes U+FFFD."""
        n = self.n_words
        return b"".join(self.token_bytes(i) for i in ids if 0 <= i < n).decode("utf-8", errors="replace")

    def id_to_piece(self, i: int) -> str:
        return self.tokens[i]

    # ---- files --------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        """Write tokenizer.json + tokenizer_config.json (HF's format) into directory."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        pre = byte_level if self.pre == "gpt2" else {
            "type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level]}
        special = sorted(self.special_ids)
        tok = {
            "version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": i, "content": self.tokens[i], "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True} for i in special],
            "normalizer": None, "pre_tokenizer": pre, "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": False, "vocab": self.vocab,
                      "merges": [" ".join(p) for p in sorted(self.ranks, key=self.ranks.get)]},
        }
        name = lambda i: self.tokens[i] if 0 <= i < self.n_words else None  # noqa: E731
        config = {
            "tokenizer_class": "GPT2Tokenizer", "add_bos_token": self.add_bos, "add_eos_token": False,
            "add_prefix_space": False, "clean_up_tokenization_spaces": False,
            "bos_token": name(self.bos_id), "eos_token": name(self.eos_id), "pad_token": name(self.pad_id),
            "unk_token": None, "model_max_length": 1 << 30,
            "added_tokens_decoder": {str(i): {"content": self.tokens[i], "lstrip": False, "normalized": False,
                                              "rstrip": False, "single_word": False, "special": True}
                                     for i in special},
        }
        if self.chat_template:
            config["chat_template"] = self.chat_template
        (d / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False) + "\n", encoding="utf-8")
        (d / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n",
                                                 encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> "BPETokenizer":
        """Read a directory's tokenizer.json (a byte-level BPE) and tokenizer_config.json."""
        d = Path(directory)
        tok = json.loads((d / "tokenizer.json").read_text(encoding="utf-8"))
        model = tok.get("model", {})
        if model.get("type") != "BPE" or model.get("byte_fallback") or tok.get("normalizer"):
            raise ValueError(f"{d / 'tokenizer.json'}: not a byte-level BPE (model {model.get('type')!r})")
        pre = _pre_name(tok.get("pre_tokenizer"))
        if pre is None:
            raise ValueError(f"{d / 'tokenizer.json'}: pre-tokenizer {json.dumps(tok.get('pre_tokenizer'))[:120]} "
                             f"is not one of {', '.join(PRE_TOKENIZERS)}")
        vocab = model["vocab"]
        tokens = [None] * (max(vocab.values()) + 1)
        for t, i in vocab.items():
            tokens[i] = t
        added = tok.get("added_tokens", [])
        for a in added:
            if a["id"] >= len(tokens):
                tokens.extend([None] * (a["id"] + 1 - len(tokens)))
            tokens[a["id"]] = a["content"]
        if any(t is None for t in tokens):
            raise ValueError(f"{d / 'tokenizer.json'}: the vocabulary has holes (ids without a piece)")
        config_file = d / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
        ids = {t: i for i, t in enumerate(tokens)}

        def token_id(key):
            v = config.get(key)
            v = v.get("content") if isinstance(v, dict) else v
            return ids.get(v) if v is not None else None

        eos = token_id("eos_token")
        if eos is None:
            raise ValueError(f"{config_file}: no eos_token that is in the vocabulary")
        return cls(tokens, model["merges"], [a["id"] for a in added if a.get("special", True)],
                   bos_id=token_id("bos_token"), eos_id=eos, pad_id=token_id("pad_token"),
                   add_bos=bool(config.get("add_bos_token", False)), pre=pre,
                   chat_template=config.get("chat_template"))


def _pre_name(node) -> str | None:
    """The PRE_TOKENIZERS name of an HF pre_tokenizer description, or None if it's another one."""
    def byte_level(n):
        return (isinstance(n, dict) and n.get("type") == "ByteLevel" and not n.get("add_prefix_space")
                and n.get("use_regex", True))
    if byte_level(node):
        return "gpt2"
    if isinstance(node, dict) and node.get("type") == "Sequence":
        steps = node.get("pretokenizers", [])
        if len(steps) == 2 and steps[0] == {"type": "Digits", "individual_digits": True} and byte_level(steps[1]):
            return "smollm"
    return None
