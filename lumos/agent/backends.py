"""Where the planner's and grounder's text comes from: one small interface, three backends.

    backend.complete(prompts: list[str], ids: list[str] | None = None,
                     max_new_tokens: int | None = None) -> list[Completion]

Every backend continues each prompt greedily up to the first newline, as the paper's inference does,
with at most `max_new_tokens` new tokens (the call's, else the backend's own; the paper: 512; the
agent passes each module's budget from lumos.agent.budget). Planner and grounder each get their own
backend, so e.g. gold subgoals with a trained grounder measures the grounder alone.

- LocalBackend:  our Llama (lumos.model) with KV-cached greedy decoding, a whole batch per call.
- OpenAIBackend: any OpenAI-compatible /v1/completions server (vLLM, TGI) over `requests`.
- GoldBackend:   replays annotated subgoals/actions by example id (data/gold/gsm8k_test.jsonl).
"""
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lumos import http, prompts

MAX_NEW_TOKENS = 512
STOP = ("\n",)
KV_REUSE_BYTES = 4 << 30  # keys/values a LocalBackend keeps for reuse across turns (lumos/model/prefix_cache.py)


class BackendError(RuntimeError):
    """A backend cannot produce text at all (missing checkpoint, unreachable server): one line, stop the run."""


@dataclass
class Completion:
    text: str                  # the new text, without the stop newline
    n_tokens: int = 0          # tokens generated (0 for gold)
    finish_reason: str = "stop"  # "stop" (newline), "eos", "length" (hit max_new_tokens), "repeat" (a
    #   degenerate loop, lumos.model.generate.degenerate), "too_long" (prompt fills the context), "no_gold"


# ---------------------------------------------------------------------------------------------------------
class LocalBackend:
    """Our hand-written Llama. `path`: a checkpoint directory (HF or Meta layout), a hub id `owner/name`,
    or a LoRA adapter directory (train.py --lora-rank), loaded onto its base and merged.

    All prompts of one call are decoded together in batches of `batch_size`, sorted by length so that
    rows of a batch need little left padding. A row that loops (a pattern repeated REPEATS times) stops
    at once with finish_reason "repeat" instead of holding the batch until max_new_tokens.

    dtype "int8": int8 weights with per-channel scales (lumos/model/quantize.py); fp32 weights on the CPU
    are stored transposed and packed by oneDNN, the layouts its GEMMs run fastest at one and at a few rows
    (the same file; two copies of the weights).

    KV reuse (lumos/model/prefix_cache.py): each example's conversation keeps its keys/values (by the
    `ids` of `complete`) in up to `kv_reuse_bytes`, so a Lumos-I turn prefills only its new tokens, and
    the instruction every prompt starts with is computed once; the text generated is the same.
    `stats` counts prompt tokens and the tokens actually prefilled. kv_reuse_bytes=0 turns reuse off.
    """

    def __init__(self, path: str, device: str = "cpu", dtype: str = "float32", bos: bool | None = None,
                 batch_size: int = 32, max_new_tokens: int = MAX_NEW_TOKENS, cache_dir: str | None = None,
                 kv_reuse_bytes: int = KV_REUSE_BYTES):
        import torch

        from lumos.hub import resolve_checkpoint
        from lumos.model.checkpoint import load_model
        from lumos.model.lora import apply_adapter, is_adapter_dir, read_adapter_config
        from lumos.model.prefix_cache import PrefixCache
        from lumos.model.quantize import to_decode_layout
        from lumos.model.tokenizer import load_tokenizer
        self.path = resolve_checkpoint(path, cache_dir)
        # A LoRA run's directory holds only the adapter: its config names the base it goes on.
        base = self.path
        if is_adapter_dir(self.path):
            try:
                name = read_adapter_config(self.path).base
            except (ValueError, TypeError) as e:
                raise BackendError(f"{self.path}: bad adapter_config.json ({e})") from None
            if not name:
                raise BackendError(f"{self.path}/adapter_config.json names no base model")
            base = resolve_checkpoint(name, cache_dir)
        # tokenizer.model or tokenizer.json in the directory (or tokenizer.model one up), else the base's
        for d in dict.fromkeys((self.path, base)):
            try:
                self.tokenizer = load_tokenizer(str(d))
                break
            except FileNotFoundError:
                continue
        else:
            raise BackendError(f"no tokenizer.model or tokenizer.json in {self.path} (or tokenizer.model in its "
                               "parent): a checkpoint directory needs its tokenizer")
        try:
            float_dtype = "float32" if dtype == "int8" else dtype
            self.model = load_model(str(base), dtype=float_dtype, device=device, n_words=self.tokenizer.n_words)
            if base != self.path:
                self.model = apply_adapter(self.model, self.path, merge=True)
            if dtype == "int8" or (self.model.tok_embeddings.weight.dtype == torch.float32 and device == "cpu"):
                to_decode_layout(self.model, int8=dtype == "int8", packed=True)  # after the merge: weights are final
        except Exception as e:  # a broken or mismatched checkpoint: the loader's one-line reason
            msg = (str(e).splitlines() or [""])[0]
            if isinstance(e, (KeyError, TypeError, AttributeError)) or not msg:  # bare 'hidden_size' says little
                msg = f"{type(e).__name__} {msg}".strip()
            raise BackendError(f"cannot load {self.path}: {msg}") from None
        self.model.eval()
        self.bos = self.tokenizer.add_bos if bos is None else bos  # None: the checkpoint's tokenizer decides
        self.name, self.batch_size, self.max_new_tokens = f"local:{path}", batch_size, max_new_tokens
        self.prefix_cache = PrefixCache(kv_reuse_bytes) if kv_reuse_bytes > 0 else None
        self.stats = {"calls": 0, "prompt_tokens": 0, "prefill_tokens": 0, "new_tokens": 0}

    def forget(self, ids: list[str]):
        """The examples `ids` are finished: drop their kept keys/values (the shared prefix stays)."""
        if self.prefix_cache is not None:
            self.prefix_cache.forget(ids)

    def prefill_tokens(self) -> int:
        """Prompt tokens run through the model so far, the shared prefixes' included."""
        shared = self.prefix_cache.shared_tokens if self.prefix_cache is not None else 0
        return self.stats["prefill_tokens"] + shared

    def complete(self, prompts: list[str], ids: list[str] | None = None,
                 max_new_tokens: int | None = None) -> list[Completion]:
        from lumos.model.generate import REPEATS, generate
        n_tok = [len(self.tokenizer.encode(p, bos=self.bos)) for p in prompts]
        out: list[Completion | None] = [None] * len(prompts)
        room = self.model.args.max_seq_len
        for i, n in enumerate(n_tok):  # no room for even one new token: a failure, not an exception
            if n >= room:
                out[i] = Completion("", 0, "too_long")
        order = sorted((i for i in range(len(prompts)) if out[i] is None), key=lambda i: n_tok[i])
        for s in range(0, len(order), self.batch_size):
            chunk = order[s:s + self.batch_size]
            gens = generate(self.model, self.tokenizer, [prompts[i] for i in chunk],
                            max_new_tokens=max_new_tokens or self.max_new_tokens, stop=STOP, bos=self.bos,
                            repeats=REPEATS, prefix_cache=self.prefix_cache,
                            keys=[ids[i] for i in chunk] if ids is not None else None)
            for i, g in zip(chunk, gens):
                out[i] = Completion(g.text, g.n_new_tokens, g.finish_reason)
                self.stats["prompt_tokens"] += g.n_prompt_tokens
                self.stats["prefill_tokens"] += g.n_prompt_tokens - g.n_cached_tokens
                self.stats["new_tokens"] += g.n_new_tokens
            self.stats["calls"] += 1
        return out


# ---------------------------------------------------------------------------------------------------------
class OpenAIBackend:
    """An OpenAI-compatible completions endpoint (e.g. `vllm serve ai2lumos/lumos_maths_plan_iterative`).

    One request per prompt, `batch_size` in flight at once (the server batches them itself); temperature 0,
    stop "\\n", max_tokens 512. Connection errors, timeouts, 429 and 5xx are retried with exponential
    backoff; after `retries` attempts the run stops with a BackendError. `model=None` asks the server's
    /models for its (first) model, which also checks that the server is reachable.
    """

    def __init__(self, url: str, model: str | None = None, api_key: str | None = None, timeout: float = 120.0,
                 retries: int = 5, backoff: float = 1.0, batch_size: int = 32, max_new_tokens: int = MAX_NEW_TOKENS):
        url = url.rstrip("/")
        if url.endswith("/completions"):
            url = url[: -len("/completions")]
        self.base = url if url.endswith("/v1") else url + "/v1"
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.model = model or os.environ.get("OPENAI_MODEL")
        self._check_server()  # fail fast (2 attempts) when nothing answers at all
        self.name = f"openai:{self.base}:{self.model}"

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _request(self, method: str, path: str, body: dict | None = None, retries: int | None = None) -> dict:
        url = self.base + path
        try:  # retries connection errors, timeouts, 429 and 5xx with exponential backoff
            r = http.request(method, url, json=body, headers=self._headers(), timeout=self.timeout,
                             retries=max(retries or self.retries, 1) - 1, backoff=self.backoff)
        except http.HTTPRetryError as e:
            last = f"{url} answered {e.cause}" if e.status else f"cannot reach {url} ({e.cause})"
            raise BackendError(f"{last}; gave up after {e.attempts} attempts") from None
        if r.status_code != 200:
            raise BackendError(f"{url} answered HTTP {r.status_code}: {r.text[:200].strip()}")
        try:
            return r.json()
        except ValueError:
            raise BackendError(f"{url} did not answer JSON: {r.text[:200]!r}") from None

    def _check_server(self):
        """GET /models: proves the server is up, and names the model when none was given."""
        try:
            data = self._request("GET", "/models", retries=min(2, self.retries)).get("data") or []
        except BackendError as e:
            if self.model and "answered HTTP 4" in str(e):  # a server without /models: fine when named
                return
            raise
        if not self.model:
            if not data or "id" not in data[0]:
                raise BackendError(f"{self.base}/models lists no model: pass --planner-model/--grounder-model")
            self.model = data[0]["id"]

    def _one(self, prompt: str, max_new_tokens: int | None = None) -> Completion:
        body = {"model": self.model, "prompt": prompt, "max_tokens": max_new_tokens or self.max_new_tokens, "temperature": 0,
                "stop": list(STOP)}
        data = self._request("POST", "/completions", body)
        try:
            choice = data["choices"][0]
            n = (data.get("usage") or {}).get("completion_tokens", 0)
            return Completion(choice["text"], int(n or 0), choice.get("finish_reason") or "stop")
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"{self.base}/completions answered without choices[0].text: {json.dumps(data)[:200]}") from None

    def complete(self, prompts: list[str], ids: list[str] | None = None,
                 max_new_tokens: int | None = None) -> list[Completion]:
        if len(prompts) <= 1:
            return [self._one(p, max_new_tokens) for p in prompts]
        with ThreadPoolExecutor(max_workers=min(self.batch_size, len(prompts))) as pool:
            return list(pool.map(lambda p: self._one(p, max_new_tokens), prompts))


# ---------------------------------------------------------------------------------------------------------
def load_gold(path: str | Path) -> dict[str, dict]:
    """Gold annotation rows {id, question, answer, subgoals, actions, results} by id."""
    rows = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                    rows[row["id"]] = row
                except (ValueError, KeyError) as e:
                    raise BackendError(f"{path}:{n}: not a gold row ({e})") from None
    return rows


class GoldBackend:
    """Replays gold subgoals (role='planner') or actions (role='grounder') instead of generating.

    Stateless: the turn being answered is the number of "<|user|>" turns in the prompt. Lumos-I planner:
    turn 1 "Subgoal 1: ...", turn k "No, I will keep planning. Subgoal k: ...", then "Yes, I will stop
    planning."; Lumos-I grounder: the k-th subgoal's actions; Lumos-O: everything joined by "; ".
    An id without annotation gets finish_reason "no_gold"; a turn past the end, empty text.
    """

    def __init__(self, rows: dict[str, dict], role: str, formulation: str):
        assert role in ("planner", "grounder") and formulation in ("iterative", "onetime")
        self.rows, self.role, self.formulation = rows, role, formulation
        self.name = f"gold:{role}"

    def _one(self, prompt: str, id_: str) -> Completion:
        row = self.rows.get(id_)
        if row is None:  # the converter could not annotate this example
            return Completion("", 0, "no_gold")
        subgoals, actions = row["subgoals"], row["actions"]
        if self.formulation == "onetime":
            return Completion(prompts.SUBGOAL_SEP.join(subgoals) if self.role == "planner" else prompts.ACTION_SEP.join(actions))
        turn = prompts.strip_shots(prompt).count(prompts.USER_HEADER)   # live turns only (WebShop has 2 shots first)
        if self.role == "grounder":
            return Completion(actions[turn - 1] if turn <= len(actions) else "")
        if turn > len(subgoals):
            return Completion(prompts.PLAN_STOP)
        return Completion(subgoals[0] if turn == 1 else prompts.PLAN_KEEP_GOING + subgoals[turn - 1])

    def complete(self, prompts: list[str], ids: list[str] | None = None,
                 max_new_tokens: int | None = None) -> list[Completion]:
        if ids is None:
            raise BackendError("the gold backend replays annotations by example id; it cannot answer a question of your own")
        return [self._one(p, i) for p, i in zip(prompts, ids)]
