"""Conversation -> (tokens, labels): the serialisation and the loss mask of Lumos training.

Lumos fine-tuned with open-instruct's `encode_with_messages_format`. A conversation becomes ONE
string (turn templates from lumos/prompts.py, each content stripped, the whole thing stripped):

    <|user|>\\n{u1}\\n<|assistant|>\\n{a1}</s>\\n<|user|>\\n{u2}\\n<|assistant|>\\n{a2}</s>

which is tokenised in one piece with BOS first. The HF Llama tokenizer turned the literal "</s>"
into the EOS id (2) and encoded each stretch of text between special tokens separately, so the
SentencePiece dummy prefix "▁" reappears after every "</s>" ("</s>\\n" -> [2, 29871, 13]). We do
the same, so the model learns to emit EOS and sees the exact token sequences Lumos trained on.

Labels are -100 (no loss) everywhere except each assistant turn's content, its "</s>" and the
"\\n" after it; the "<|assistant|>\\n" header and all user turns are masked. Token boundaries come
from tokenising prefixes of the string (as open-instruct did), checked against the full
tokenisation so a boundary that a prefix tokenises differently can never shift the mask silently.
"""
from __future__ import annotations

from lumos.prompts import ASSISTANT_HEADER, ASSISTANT_TURN, EOS_TEXT, USER_TURN

IGNORE_INDEX = -100  # label of a token that carries no loss (torch cross_entropy's default)


def serialize(messages: list[dict]) -> str:
    """Messages [{"role", "content"}] -> the open-instruct training string (not yet stripped)."""
    parts = []
    for i, m in enumerate(messages):
        if m["role"] == "user":
            parts.append(USER_TURN.format(content=m["content"].strip()))
        elif m["role"] == "assistant":
            parts.append(ASSISTANT_TURN.format(content=m["content"].strip()))
        else:
            raise ValueError(f"message {i} has role {m['role']!r}; expected 'user' or 'assistant'")
    return "".join(parts)


def encode_text(tokenizer, text: str, bos: bool = True) -> list[int]:
    """Tokenise like HF's Llama tokenizer: every literal "</s>" is the EOS id, and each stretch
    of text between them is a separate SentencePiece encode (so each starts with the dummy "▁")."""
    ids = [tokenizer.bos_id] if bos else []
    for j, piece in enumerate(text.split(EOS_TEXT)):
        if j:
            ids.append(tokenizer.eos_id)
        if piece:
            ids.extend(tokenizer.encode(piece))
    return ids


def encode_conversation(tokenizer, messages: list[dict], max_seq_len: int | None = None) -> tuple[list[int], list[int]]:
    """Messages -> (input_ids, labels), both of length <= max_seq_len (truncated from the right).

    labels[t] = input_ids[t] where the loss applies (assistant content, "</s>", the "\\n" after),
    else IGNORE_INDEX. Labels are not shifted: the model's prediction at t is scored on labels[t+1].
    """
    ids = encode_text(tokenizer, serialize(messages).strip())
    labels = [IGNORE_INDEX] * len(ids)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        # Trained span of assistant turn i: from after its header to the end of its "</s>\n".
        start = _prefix_len(tokenizer, ids, serialize(messages[:i]) + ASSISTANT_HEADER)
        end = min(_prefix_len(tokenizer, ids, serialize(messages[:i + 1])), len(ids))
        labels[start:end] = ids[start:end]
    if max_seq_len is not None:
        ids, labels = ids[:max_seq_len], labels[:max_seq_len]
    return ids, labels


def _prefix_len(tokenizer, full_ids: list[int], prefix: str) -> int:
    """Number of tokens of `prefix` inside the full tokenisation (open-instruct's method).

    The prefix's tokens must be a prefix of the full tokens (or, for the final "\\n" that the
    whole string loses to .strip(), run past its end); otherwise the mask would be misaligned."""
    p = encode_text(tokenizer, prefix)
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
    import sentencepiece as spm

    def lines():
        for messages in conversations:
            for line in serialize(messages).replace(EOS_TEXT, "\n").split("\n"):
                if line.strip():
                    yield line

    spm.SentencePieceTrainer.train(
        sentence_iterator=lines(), model_prefix=model_prefix, model_type="bpe", vocab_size=vocab_size,
        byte_fallback=True, split_digits=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, allow_whitespace_only_pieces=True,
        character_coverage=0.9999, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        user_defined_symbols=["<|user|>", "<|assistant|>"], max_sentence_length=1 << 14,
        input_sentence_size=2_000_000, shuffle_input_sentence=True, num_threads=1, minloglevel=2)
    return model_prefix + ".model"
