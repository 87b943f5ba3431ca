"""Batched decoding in gpt-fast's two phases: `prefill` the prompts through the KV cache in one pass,
then `decode_one_token` per step, each new token reading the cache instead of recomputing the prompt.

    generate(model, tokenizer, ["<|user|>\\n...\\n<|assistant|>\\n", ...])  ->  [Generation, ...]

Rows stop independently: on EOS, on a stop string (Lumos stops every turn at the first "\\n"), on
degenerate repetition when asked (`repeats`: a pattern of at most 8 tokens repeated that many times in
a row, e.g. the digit loop "1000000000000..." of a small model), or after max_new_tokens.
Greedy unless temperature > 0 (then optionally nucleus / top-p).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .kv_cache import KVCache
from .prefix_cache import common_prefix

MAX_PERIOD = 8  # longest repeating pattern (in tokens) that `degenerate` looks for
REPEATS = 16    # repetitions that stop an agent turn (lumos.agent.backends.LocalBackend); see `degenerate`


@dataclass
class Generation:
    text: str  # the new text, cut before the stop string
    n_prompt_tokens: int
    n_new_tokens: int  # tokens decoded, including the EOS / stop-string token
    finish_reason: str  # "eos" | "stop" | "repeat" | "length"
    tokens: list[int] = field(default_factory=list, repr=False)  # the new token ids
    n_cached_tokens: int = 0  # prompt tokens whose keys/values came from the prefix cache (not prefilled)


@torch.inference_mode()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 512, stop=("\n",),
             temperature: float = 0.0, top_p: float = 1.0, bos: bool | None = None,
             seed: int | None = None, repeats: int | None = None, prefix_cache=None,
             keys: list | None = None) -> list[Generation]:
    """Continue each prompt; prompts of different lengths share one batch (left padding).
    bos None: BOS first iff the tokenizer's add_bos (Llama-2 yes, SmolLM2 no).
    repeats: stop a row (finish_reason "repeat") once it repeats a pattern that many times (see degenerate).
    prefix_cache (a lumos.model.prefix_cache.PrefixCache): reuse keys/values of earlier turns of the
    conversation keys[i] (e.g. an example id; None: only the prefix the batch shares), and keep this
    turn's for the next. The tokens are the same as without it."""
    if not prompts:
        return []
    bos = tokenizer.add_bos if bos is None else bos
    prompt_ids = [tokenizer.encode(p, bos=bos) for p in prompts]
    prefixes = kv_out = None
    keys = keys or [None] * len(prompts)
    if prefix_cache is not None:
        share_prefix(model, prefix_cache, prompt_ids)
        found = [prefix_cache.match(key, ids) for key, ids in zip(keys, prompt_ids)]
        prefixes = [(e.k[:, :, :n], e.v[:, :, :n]) if n else None for e, n in found]
        kv_out = []
    stop = tuple(s for s in ((stop,) if isinstance(stop, str) else (stop or ())) if s)
    could_end = _stop_tokens(tokenizer, stop) if stop else None

    def stop_at(ids: list[int]) -> int | None:
        """Index in the decoded text where the earliest stop string begins, or None."""
        if not could_end.get(ids[-1], False):  # only a token carrying a stop string's last char can end one
            return None
        text = tokenizer.decode(ids)
        hits = [i for i in (text.find(s) for s in stop) if i >= 0]
        return min(hits) if hits else None

    new_ids, reasons = decode_tokens(model, prompt_ids, max_new_tokens, tokenizer.eos_id,
                                     stop_fn=(lambda ids: stop_at(ids) is not None) if stop else None,
                                     temperature=temperature, top_p=top_p, seed=seed, repeats=repeats,
                                     prefixes=prefixes, kv_out=kv_out)
    out = []
    for i, (p, ids, why) in enumerate(zip(prompt_ids, new_ids, reasons)):
        body = ids[:-1] if why == "eos" else ids
        text = tokenizer.decode(body)
        if why == "stop":
            text = text[: stop_at(ids)]
        n_cached = 0
        if prefix_cache is not None:
            n_cached = found[i][1]
            if keys[i] is not None and kv_out[i] is not None:
                prefix_cache.put(keys[i], p + ids[:-1], *kv_out[i])
        out.append(Generation(text, len(p), len(ids), why, ids, n_cached))
    return out


MIN_SHARED = 8  # tokens a batch's common prefix needs before share_prefix computes it once for all


@torch.inference_mode()
def share_prefix(model, prefix_cache, prompt_ids: list[list[int]], min_len: int = MIN_SHARED) -> int:
    """Compute the keys/values of the prefix all prompts share (the instruction every example repeats)
    once and keep it as a shared prefix_cache entry, unless one already covers it. Returns the tokens
    computed (0 or its length; they are added to prefix_cache.shared_tokens)."""
    if len(prompt_ids) < 2:
        return 0
    first = prompt_ids[0]
    n = min(min(common_prefix(first, p) for p in prompt_ids[1:]), min(map(len, prompt_ids)) - 1)
    if n < min_len or prefix_cache.match(None, first[:n + 1])[1] >= n:
        return 0
    cache = KVCache.for_model(model, 1, n)
    prefill(model, torch.tensor([first[:n]], device=cache.device), cache, 0)
    prefix_cache.put(None, first[:n], *cache.read(0, n))
    prefix_cache.shared_tokens += n
    return n


def prefill(model, tokens: torch.Tensor, cache: KVCache, input_pos: int) -> torch.Tensor:
    """Phase 1: the prompt window `tokens` (B, T) goes through the model in one pass, writing its keys/values
    into cache slots input_pos..input_pos+T-1. Returns the logits (B, vocab) of each row's last token."""
    return model(tokens, cache=cache, input_pos=input_pos, last_only=True)[:, -1]


def decode_one_token(model, token: torch.Tensor, cache: KVCache, input_pos: int) -> torch.Tensor:
    """Phase 2, once per new token: each row's latest token (B,) attends to everything cached and adds its
    own keys/values at slot input_pos. Returns the logits (B, vocab) of the next token."""
    return model(token[:, None], cache=cache, input_pos=input_pos, last_only=True)[:, -1]


@torch.inference_mode()
def decode_tokens(model, prompts: list[list[int]], max_new_tokens: int, eos_id: int | None = 2,
                  stop_fn=None, temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
                  pad_token: int = 0, repeats: int | None = None, prefixes: list | None = None,
                  kv_out: list | None = None) -> tuple[list[list[int]], list[str]]:
    """Token-level decoding. prompts: B lists of ids (each non-empty). Returns, per row, the new
    ids (ending with EOS or the token that made stop_fn(ids) true) and the finish reason.

    prefixes: per row None or (k, v), each (n_layers, Hkv, r, D): keys/values of the row's first r
    prompt tokens computed earlier (r < len(prompt); lumos/model/prefix_cache.py); only the other
    tokens are prefilled. kv_out: a list that receives, per row, (k, v) of its prompt and new tokens
    but the last (whose keys/values were never computed), for the next turn to reuse.

    Rows are left-padded: the reused prefixes right-aligned at slot R (the longest prefix), the new
    prompt tokens right-aligned at P = R + the most new prompt tokens, so row b's k-th new token sits
    in cache slot P+k-1 for every row and one `input_pos` drives the batch. The prefill runs in groups
    of rows with similar numbers of new tokens (prefill_groups), each over its own window. Finished
    rows are dropped from the batch (and the cache) once at most half of it is still running."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (use bos=True for empty text)")
    device = model.tok_embeddings.weight.device
    B, lens = len(prompts), [len(p) for p in prompts]
    if kv_out is not None:
        kv_out[:] = [None] * B
    if max_new_tokens <= 0:
        return [[] for _ in prompts], ["length"] * B
    max_new_tokens = min(max_new_tokens, model.args.max_seq_len - max(lens))
    if max_new_tokens <= 0:
        raise ValueError(f"prompt of {max(lens)} tokens leaves no room within max_seq_len {model.args.max_seq_len}")
    prefixes = prefixes or [None] * B
    reused = [0 if kv is None else kv[0].shape[2] for kv in prefixes]
    if any(r >= n for r, n in zip(reused, lens)):
        raise ValueError("a reused prefix must leave at least one prompt token to prefill")
    R, T = max(reused), max(n - r for n, r in zip(lens, reused))
    P = R + T
    # Batch rows in order of new prompt tokens, most first, so that rows of similar length are neighbours
    # and prefill in groups (below). rows[i] = the original index of batch row i.
    rows = sorted(range(B), key=lambda b: reused[b] - lens[b])
    tokens = torch.full((B, T), pad_token, dtype=torch.long)  # the prefill window, slots R..P-1
    valid = torch.zeros(B, P + max_new_tokens, dtype=torch.bool)
    valid[:, P:] = True
    for i, b in enumerate(rows):
        n_new = lens[b] - reused[b]
        tokens[i, T - n_new:] = torch.tensor(prompts[b][reused[b]:], dtype=torch.long)
        valid[i, R - reused[b]:R] = True
        valid[i, P - n_new:P] = True
    pad = [P - lens[b] for b in rows]  # every non-token slot of a row lies left of its new prompt tokens
    cache = KVCache.for_model(model, B, P + max_new_tokens, pad=pad, valid=valid if R else None)
    for i, b in enumerate(rows):
        if reused[b]:
            cache.write(i, R - reused[b], *prefixes[b])
    gen = torch.Generator(device=device).manual_seed(seed) if seed is not None and temperature > 0 else None

    logits = None
    for lo, hi, t in prefill_groups([lens[b] - reused[b] for b in rows]):  # each group computes only its window
        out = prefill(model, tokens[lo:hi, T - t:].to(device), cache.rows(lo, hi), P - t)
        logits = out.new_empty(B, out.shape[-1]) if logits is None else logits
        logits[lo:hi] = out
    new_ids: list[list[int]] = [[] for _ in range(B)]
    reasons = ["length"] * B
    running = [True] * B

    def save_kv(batch_rows):
        """kv_out[r] = row r's keys/values, before the row leaves the cache."""
        if kv_out is not None:
            for i in batch_rows:
                kv_out[rows[i]] = cache.read(i, P + len(new_ids[rows[i]]) - 1)

    for step in range(max_new_tokens):
        nxt = _pick(logits, temperature, top_p, gen)  # (b,)
        for i, t in enumerate(nxt.tolist()):  # one device->host sync per step
            r = rows[i]
            if not running[r]:
                continue
            new_ids[r].append(t)
            if t == eos_id:
                reasons[r], running[r] = "eos", False
            elif stop_fn is not None and stop_fn(new_ids[r]):
                reasons[r], running[r] = "stop", False
            elif repeats and degenerate(new_ids[r], repeats):
                reasons[r], running[r] = "repeat", False
        alive = [i for i, r in enumerate(rows) if running[r]]
        if not alive or step == max_new_tokens - 1:
            break
        if len(alive) <= len(rows) // 2:  # shrink the batch: fewer rows through every matmul
            save_kv([i for i, r in enumerate(rows) if not running[r]])
            idx = torch.tensor(alive, device=device)
            cache.keep(idx)
            nxt, rows = nxt[idx], [rows[i] for i in alive]
        logits = decode_one_token(model, nxt, cache, P + step)
    save_kv(range(len(rows)))
    return new_ids, reasons


GROUP_RATIO = 2 / 3  # a prefill group takes rows while they have at least this share of its first row's tokens


def prefill_groups(n_new: list[int], ratio: float = GROUP_RATIO) -> list[tuple[int, int, int]]:
    """Split rows sorted by new prompt tokens (most first) into prefill groups (lo, hi, tokens of row lo):
    a group's rows are padded to its longest, so at most 1/ratio of its window is padding. With KV reuse a
    batch mixes first turns (~150 new tokens) and later turns (~35): one window for all would be ~3x padding."""
    groups, lo = [], 0
    for i in range(1, len(n_new) + 1):
        if i == len(n_new) or n_new[i] < ratio * n_new[lo]:
            groups.append((lo, i, n_new[lo]))
            lo = i
    return groups


def degenerate(ids: list[int], repeats: int, max_period: int = MAX_PERIOD) -> bool:
    """True when ids end with some pattern of p <= max_period tokens repeated `repeats` times in a row.
    The agent uses REPEATS = 16: no turn of the gold maths annotations repeats anything more than 12 times
    (`1 * 2 * 2 * ... * 2`), while a looping model ("0000...") is stopped 16 tokens into its loop."""
    for p in range(1, max_period + 1):
        n = repeats * p
        if len(ids) >= n and ids[-n + p:] == ids[-n:-p]:  # the last n tokens have period p
            return True
    return False


def _pick(logits: torch.Tensor, temperature: float, top_p: float, gen) -> torch.Tensor:
    """logits (B, V) fp32 -> next ids (B,): argmax, or a sample from the top-p nucleus."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        p_sorted, idx = probs.sort(dim=-1, descending=True)
        outside = p_sorted.cumsum(-1) - p_sorted > top_p  # keep the smallest prefix reaching top_p
        p_sorted = p_sorted.masked_fill(outside, 0.0)
        choice = torch.multinomial(p_sorted, 1, generator=gen)
        return idx.gather(-1, choice).squeeze(-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


def _stop_tokens(tokenizer, stop: tuple[str, ...]) -> dict[int, bool]:
    """id -> True if the token can complete a stop string: the bytes it spells hold the last byte
    of one (a byte token may finish a multi-byte character; "\\n" is the byte token 13 in Llama-2,
    "Ċ" 198 in SmolLM2). Computed once per (tokenizer, stop)."""
    memo = tokenizer.__dict__.setdefault("_stop_token_memo", {})
    if stop not in memo:
        last = {s.encode()[-1] for s in stop}
        memo[stop] = {i: True for i in range(tokenizer.n_words) if last.intersection(tokenizer.token_bytes(i))}
    return memo[stop]
