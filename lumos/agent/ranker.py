"""A cross-encoder element ranker made of the project's own Llama, and its training pairs.

MindAct ranks a step's candidates with a DeBERTa cross-encoder that reads (query, element) together.
Ours is a causal Llama asked one yes/no question per candidate, in the Lumos chat format, so that
train.py fine-tunes it like any Lumos module (the loss on the assistant's "Yes"/"No"):

    <|user|>\\nQuery: Type New York in the combobox From*\\nElement: input combobox text From ...\\n
    Is this the element the query means? Answer Yes or No.\\n<|assistant|>\\nYes</s>

The score of a candidate is logit(Yes) - logit(No) at the answer position; the ranker orders by it.

    python -m lumos.agent.ranker --mind2web-data DIR --split train --out runs/ranker_pairs.jsonl
    python train.py --data runs/ranker_pairs.jsonl --init checkpoints/lumos-demo-ground --out runs/ranker
    python run_agent.py --task mind2web --ranker runs/ranker ...

Training pairs follow MindAct's recipe: each positive candidate of a step, and up to `negatives`
(default 5) of its negative candidates drawn at random, with the step's gold QUERY (SELECT: + TEXT).
"""
import argparse
import json
import random
import sys
from pathlib import Path

import torch

from lumos import prompts
from lumos.agent.executor import parse_action
from lumos.tools.web import parse_web_args


def rank_messages(query: str, element_text: str, answer: str | None = None) -> list[dict]:
    """One (query, element) question as Lumos messages; with `answer` ("Yes"/"No") a training row."""
    msgs = [{"role": "user", "content": prompts.RANK_USER.format(query=query, element=element_text)}]
    return msgs + ([{"role": "assistant", "content": answer}] if answer is not None else [])


def step_queries(example) -> list[str]:
    """The ranker's query of every step of a Mind2Web example, from its gold annotation."""
    out = []
    for action in example.meta["gold"]["actions"]:
        a = parse_action(action)
        _, query, text = parse_web_args(a.tool, a.args)
        out.append(query + (f" {text}" if a.tool == "SELECT" else ""))
    return out


def ranker_pairs(examples, negatives: int = 5, seed: int = 0) -> list[dict]:
    """Lumos-format rows {"dataset", "id", "messages"} of (gold query, candidate) -> Yes / No."""
    rng, rows = random.Random(seed), []
    for ex in examples:
        for k, (query, cands) in enumerate(zip(step_queries(ex), ex.meta["steps"])):
            pos = [c for c in cands if c.positive]
            neg = [c for c in cands if not c.positive]
            for c in pos + rng.sample(neg, min(negatives * max(len(pos), 1), len(neg))):
                rows.append({"dataset": "mind2web_ranker", "id": f"{ex.id}-{k}-{c.id}",
                             "messages": rank_messages(query, c.text, "Yes" if c.positive else "No")})
    return rows


class LMRanker:
    """ranker(query, elements) -> indices best first, by logit(Yes) - logit(No) of a Llama checkpoint
    (a directory from train.py, HF or Meta layout). Candidates are scored in batches of `batch_size`;
    prompts longer than `max_len` tokens keep their last max_len - 1 tokens (the question and the answer header)."""

    name = "lm"

    def __init__(self, path: str, device: str = "cpu", dtype: str = "float32", batch_size: int = 32, max_len: int = 512):
        from lumos.agent.backends import BackendError
        from lumos.hub import resolve_checkpoint
        from lumos.model.checkpoint import load_model
        from lumos.model.tokenizer import Tokenizer
        self.path = resolve_checkpoint(path)
        self.tokenizer = Tokenizer(str(self.path))
        self.model = load_model(str(self.path), dtype=dtype, device=device).eval()
        self.device, self.batch_size, self.max_len = device, batch_size, max_len
        self.yes, self.no = self._answer_token("Yes"), self._answer_token("No")
        if self.yes is None or self.no is None or self.yes == self.no:
            raise BackendError(f"{self.path}: its tokenizer does not give 'Yes' and 'No' distinct first tokens after a prompt")

    def prompt(self, query: str, element_text: str) -> str:
        """The chat prompt up to the open assistant turn (as the agent's local backend prompts)."""
        return prompts.chat_prompt(rank_messages(query, element_text)[0]["content"])

    def _answer_token(self, answer: str) -> int | None:
        """The first token of `answer` right after a prompt, when the prompt's tokens are a prefix."""
        p = self.tokenizer.encode(self.prompt("q", "e"), bos=True)
        full = self.tokenizer.encode(self.prompt("q", "e") + answer, bos=True)
        return full[len(p)] if full[:len(p)] == p and len(full) > len(p) else None

    def prompt_ids(self, query: str, element_text: str) -> list[int]:
        return self.tokenizer.encode(self.prompt(query, element_text), bos=True)[-(self.max_len - 1):]

    @torch.no_grad()
    def scores(self, query: str, elements) -> list[float]:
        seqs = [self.prompt_ids(query, e.text) for e in elements]
        out = []
        for s in range(0, len(seqs), self.batch_size):
            chunk = seqs[s:s + self.batch_size]
            width = max(len(x) for x in chunk)
            tokens = torch.zeros(len(chunk), width, dtype=torch.long)
            for i, x in enumerate(chunk):      # right padding: a causal model's last real position ignores it
                tokens[i, :len(x)] = torch.tensor(x)
            at = torch.tensor([i * width + len(x) - 1 for i, x in enumerate(chunk)])
            logits = self.model(tokens.to(self.device), logits_at=at.to(self.device)).float()
            out += (logits[:, self.yes] - logits[:, self.no]).tolist()
        return out

    def __call__(self, query: str, elements) -> list[int]:
        s = self.scores(query, elements)
        return sorted(range(len(elements)), key=lambda i: (-s[i], i))


def main(argv=None) -> int:
    from lumos.agent.tasks.mind2web import SPLITS, load_mind2web
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mind2web-data", default=str(Path(__file__).resolve().parents[2] / "data/mind2web"),
                    help="Mind2Web JSON directory (default: the fixture data/mind2web)")
    ap.add_argument("--split", choices=SPLITS, default="train")
    ap.add_argument("--negatives", type=int, default=5, help="negative candidates per positive (MindAct: 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="jsonl of Lumos conversations for train.py --data")
    args = ap.parse_args(argv)
    if args.negatives < 0:
        ap.error("--negatives must be >= 0")
    rows = ranker_pairs(load_mind2web(args.mind2web_data, args.split), args.negatives, args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    n_yes = sum(r["messages"][1]["content"] == "Yes" for r in rows)
    print(f"{args.out}: {len(rows)} pairs ({n_yes} Yes, {len(rows) - n_yes} No)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
