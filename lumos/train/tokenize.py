"""Conversation -> (tokens, labels): the serialisation and the loss mask of Lumos training.

Lumos fine-tuned with open-instruct's `encode_with_messages_format`. A conversation becomes ONE
string (turn templates from lumos/prompts.py, each content stripped, the whole thing stripped):

    <|user|>\\n{u1}\\n<|assistant|>\\n{a1}</s>\\n<|user|>\\n{u2}\\n<|assistant|>\\n{a2}</s>

which is tokenised in one piece, with BOS first when the tokenizer says so (add_bos: Llama-2
yes, SmolLM2 no). Every literal "</s>" becomes the EOS id (2) and each stretch of text between
them is encoded separately, as HF's Llama tokenizers do; with SentencePiece the dummy prefix "▁"
reappears at the start of every stretch. Two encodings of the text after a mid-sequence "</s>":

  - default (current transformers, fast or slow tokenizer, and open-instruct run with them):
    "</s>\\n<|user|>" -> [2, 29871 "▁", 13 "\\n", 29966 "<", 29989 "|", ...]
  - strip_around_eos=True (train.py --tokenization paper): what the released Lumos models were
    trained with. transformers < 4.34's slow LlamaTokenizer stripped the whitespace on both sides
    of a special token given as a plain string, so the "\\n" vanishes and the next turn starts like
    the first: [2, 529 "▁<", 29989 "|", ...]; the 2 tokens per mid-sequence turn that the default
    supervises do not exist.

With another tokenizer "</s>" becomes that tokenizer's eos id (SmolLM2: 2 = "<|im_end|>");
byte-level BPE adds no dummy prefix.

Labels are -100 (no loss) everywhere except each assistant turn's content, its "</s>" and the
"\\n" after it (when there is one: the default encoding); the "<|assistant|>\\n" header and all
user turns are masked. A token is trained when the text it spells starts inside such a span (byte
offsets of the one tokenisation). open-instruct found the same boundaries by tokenising every prefix of the string;
`labels_by_prefixes` does that too, as the reference in the tests and as the fallback.
"""
from __future__ import annotations

import numpy as np

from lumos.prompts import ASSISTANT_HEADER, EOS_TEXT, assistant_turn, user_turn

IGNORE_INDEX = -100  # label of a token that carries no loss (torch cross_entropy's default)


def serialize(messages: list[dict]) -> str:
    """Messages [{"role", "content"}] -> the open-instruct training string (not yet stripped)."""
    parts = []
    for i, m in enumerate(messages):
        if m["role"] == "user":
            parts.append(user_turn(m["content"]))
        elif m["role"] == "assistant":
            parts.append(assistant_turn(m["content"]))
        else:
            raise ValueError(f"message {i} has role {m['role']!r}; expected 'user' or 'assistant'")
    return "".join(parts)


def split_at_eos(text: str, strip_around_eos: bool = False) -> list[tuple[int, str]]:
    """`text` cut at every literal "</s>": (byte offset of the kept text, kept text) per stretch.
    strip_around_eos: whitespace next to a "</s>" is dropped (transformers < 4.34)."""
    out, pos, parts = [], 0, text.split(EOS_TEXT)
    for j, chunk in enumerate(parts):
        kept = chunk.lstrip() if strip_around_eos and j else chunk
        lead = len(chunk.encode()) - len(kept.encode())
        kept = kept.rstrip() if strip_around_eos and j < len(parts) - 1 else kept
        out.append((pos + lead, kept))
        pos += len(chunk.encode()) + len(EOS_TEXT)
    return out


def encode_text(tokenizer, text: str, bos: bool | None = None, strip_around_eos: bool = False) -> list[int]:
    """Tokenise like HF's Llama tokenizer: every literal "</s>" is the EOS id, and each stretch
    of text between them is a separate encode (SentencePiece: each starts with the dummy "▁").
    bos None: the tokenizer's own add_bos. strip_around_eos: the paper-era encoding (see above)."""
    ids = [tokenizer.bos_id] if (tokenizer.add_bos if bos is None else bos) else []
    for j, (_, piece) in enumerate(split_at_eos(text, strip_around_eos)):
        if j:
            ids.append(tokenizer.eos_id)
        if piece:
            ids.extend(tokenizer.encode(piece))
    return ids


def encode_conversation(tokenizer, messages: list[dict], max_seq_len: int | None = None,
                        strip_around_eos: bool = False) -> tuple[list[int], list[int]]:
    """Messages -> (input_ids, labels), both of length <= max_seq_len (truncated from the right).
    strip_around_eos: the released models' encoding (module docstring).

    labels[t] = input_ids[t] where the loss applies (assistant content, "</s>", the "\n" after),
    else IGNORE_INDEX. Labels are not shifted: the model's prediction at t is scored on labels[t+1].
    """
    text = serialize(messages).strip()
    spans = _trained_spans(messages, len(text.encode()))
    ids, starts = _encode_with_offsets(tokenizer, text, strip_around_eos)
    if starts is None or not _on_token_boundaries(starts, spans, len(text.encode())):
        labels = labels_by_prefixes(tokenizer, messages, strip_around_eos)  # exotic tokenizers: the slow way
    else:
        starts, trained = np.asarray(starts), np.zeros(len(ids), dtype=bool)
        for lo, hi in spans:
            trained |= (starts >= lo) & (starts < hi)
        labels = np.where(trained, ids, IGNORE_INDEX).tolist()
    if max_seq_len is not None:
        ids, labels = ids[:max_seq_len], labels[:max_seq_len]
    return ids, labels


def _trained_spans(messages: list[dict], text_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges [lo, hi) of the serialised text that carry loss: each assistant turn from the
    end of its header to the end of its "</s>\n" (clipped at the stripped text's end)."""
    spans, pos = [], 0
    for i, m in enumerate(messages):
        turn = len(serialize(messages[i:i + 1]).encode())
        if m["role"] == "assistant":
            spans.append((pos + len(ASSISTANT_HEADER.encode()), min(pos + turn, text_bytes)))
        pos += turn
    return spans


def _encode_with_offsets(tokenizer, text: str, strip_around_eos: bool = False) -> tuple[list[int], list[int] | None]:
    """encode_text(text) and, per token, the byte offset in `text` where its surface starts
    (BOS: -1; "</s>": where the literal stood; a chunk's dummy "▁": where the chunk starts).

    Offsets come from the pieces' own bytes (tokenizer.token_bytes: SentencePiece's "▁" is a
    space, "<0x0A>" one byte; BPE's "Ċ" a newline), which spell out the chunk exactly (after a
    " " for a dummy prefix) for an un-normalising tokenizer; if they don't, the offsets are None
    and the caller falls back to tokenising prefixes."""
    ids, starts = ([tokenizer.bos_id], [-1]) if tokenizer.add_bos else ([], [])
    prefix = b" " if tokenizer.add_dummy_prefix else b""
    for j, (base, chunk) in enumerate(split_at_eos(text, strip_around_eos)):
        if j:
            ids.append(tokenizer.eos_id)
            starts.append(text.encode().rfind(EOS_TEXT.encode(), 0, base))  # where the literal stood
        if not chunk:
            continue
        chunk_ids = tokenizer.encode(chunk)
        pieces = [tokenizer.token_bytes(i) for i in chunk_ids]
        if b"".join(pieces) != prefix + chunk.encode():
            return encode_text(tokenizer, text, strip_around_eos=strip_around_eos), None
        # A dummy prefix " " sits just before the chunk: piece k starts at base - 1 + bytes before it.
        ends = np.cumsum([len(b) for b in pieces]) + (base - len(prefix))
        ids.extend(chunk_ids)
        starts.extend(np.maximum(ends - [len(b) for b in pieces], base).tolist())
    return ids, starts


def _on_token_boundaries(starts: list[int], spans, text_bytes: int) -> bool:
    """Every span edge must fall where a token starts (or at the very end of the text)."""
    edges = set(starts)
    return all(lo in edges and (hi in edges or hi >= text_bytes) for lo, hi in spans)


def labels_by_prefixes(tokenizer, messages: list[dict], strip_around_eos: bool = False) -> list[int]:
    """The labels of encode_conversation computed as open-instruct did: a turn's token boundary
    is the token count of the text before it (slow: one tokenisation per boundary). Kept as the
    reference the fast offset method is tested against, and as its fallback."""
    ids = encode_text(tokenizer, serialize(messages).strip(), strip_around_eos=strip_around_eos)
    labels = [IGNORE_INDEX] * len(ids)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = _prefix_len(tokenizer, ids, serialize(messages[:i]) + ASSISTANT_HEADER, strip_around_eos)
        end = min(_prefix_len(tokenizer, ids, serialize(messages[:i + 1]), strip_around_eos), len(ids))
        labels[start:end] = ids[start:end]
    return labels


def _prefix_len(tokenizer, full_ids: list[int], prefix: str, strip_around_eos: bool = False) -> int:
    """Number of tokens of `prefix` inside the full tokenisation (open-instruct's method).

    The prefix's tokens must be a prefix of the full tokens (or, for the final "\n" that the
    whole string loses to .strip(), run past its end); otherwise the mask would be misaligned."""
    p = encode_text(tokenizer, prefix, strip_around_eos=strip_around_eos)
    n = min(len(p), len(full_ids))
    if p[:n] != full_ids[:n]:
        raise ValueError("a turn boundary tokenises differently inside the conversation than alone; "
                         "cannot place the loss mask exactly")
    return len(p)


def train_sentencepiece(conversations: list[list[dict]], model_prefix: str, vocab_size: int = 4096) -> str:
    """Train a small Llama-style SentencePiece BPE on the conversations' text (for from-scratch
    demo models): byte fallback (no unknown characters), digits split one per token (as Llama),
    no normalisation (newlines and spaces survive), unk/bos/eos = 0/1/2, no pad.
    The chat headers become single pieces. Returns the path of the .model file."""
    interrupted = []

    def lines():
        try:
            for messages in conversations:
                for line in serialize(messages).replace(EOS_TEXT, "\n").split("\n"):
                    if line.strip():
                        yield line
        except KeyboardInterrupt:  # SentencePiece's C++ turns it into a RuntimeError; remember it
            interrupted.append(True)
            raise

    try:
        _train_sp(lines(), model_prefix, vocab_size)
    except RuntimeError as e:  # e.g. a vocabulary smaller than 256 bytes + the data's characters
        if interrupted:  # a Ctrl-C while SentencePiece read our sentences is a Ctrl-C, not a bad vocabulary
            raise KeyboardInterrupt from None
        raise ValueError(f"SentencePiece training failed: {str(e).splitlines()[-1]}") from None
    return model_prefix + ".model"


def _train_sp(sentences, model_prefix: str, vocab_size: int) -> None:
    import sentencepiece as spm
    spm.SentencePieceTrainer.train(
        sentence_iterator=sentences, model_prefix=model_prefix, model_type="bpe", vocab_size=vocab_size,
        byte_fallback=True, split_digits=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, allow_whitespace_only_pieces=True,
        character_coverage=0.9999, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        user_defined_symbols=["<|user|>", "<|assistant|>"], max_sentence_length=1 << 14,
        input_sentence_size=2_000_000, shuffle_input_sentence=True, num_threads=1, minloglevel=2)
