"""Token budgets of the agent: how many new tokens one planner/grounder turn, and one whole example,
may generate before the agent gives up on it (failures "length" and "token_budget").

The paper decoded every turn up to 512 new tokens. A gold turn is far shorter (a maths subgoal is
~20 tokens, the longest 97), so a model stuck in a loop ("... the first 1000000000000...") kept a
whole batch waiting for 512 decode steps. The defaults below are measured from the gold annotations
that `python data/prepare.py` writes, under every tokenizer we ship (Llama-2's, the demo models' and
SmolLM2's byte-level BPE, which splits numbers one digit a token):

    python -m lumos.agent.budget data/annotations/lumos_maths_*.jsonl

prints, per file, the longest assistant turn and the longest conversation in tokens (+1 for the
stop token), and the budget = that length + 25 %, rounded up to a multiple of 64. A per-example
budget is the planner's longest conversation plus the grounder's, with the same headroom.
Families without annotations here keep the paper's 512 per turn and no per-example budget.
"""
import json
import math
import sys
from pathlib import Path

PAPER_MAX_NEW_TOKENS = 512
HEADROOM = 1.25

# (family, formulation) -> new-token budgets, from `python -m lumos.agent.budget` (the numbers in the
# comments are its measured maxima over 7127 converted GSM8K train conversations per file).
BUDGETS = {
    ("maths", "iterative"): {"planner": 128,    # longest gold turn 97 tokens
                             "grounder": 64,    # 50
                             "example": 576},   # conversations: planner 303 + grounder 150
    ("maths", "onetime"): {"planner": 320,      # 231
                           "grounder": 192,     # 150
                           "example": 512},     # 231 + 150
}


def budget(family: str, formulation: str) -> dict:
    """{"planner": n, "grounder": n, "example": n or None} for a task family and formulation."""
    return BUDGETS.get((family, formulation),
                       {"planner": PAPER_MAX_NEW_TOKENS, "grounder": PAPER_MAX_NEW_TOKENS, "example": None})


def with_headroom(n: int) -> int:
    """n + 25 %, rounded up to a multiple of 64."""
    return 64 * math.ceil(n * HEADROOM / 64)


def measure(path: str | Path, tokenizers: dict) -> dict:
    """Longest assistant turn and longest conversation (sum of its assistant turns) of one Lumos jsonl
    file, in tokens + 1 stop token per turn, under each tokenizer (name -> lumos Tokenizer).
    -> {name: {"turn": n, "conversation": n}}."""
    turns = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                turns.append([m["content"] for m in json.loads(line)["messages"] if m["role"] == "assistant"])
    out = {}
    for name, tok in tokenizers.items():
        lens = [[len(tok.encode(t)) + 1 for t in conv] for conv in turns]
        out[name] = {"turn": max(max(c) for c in lens), "conversation": max(sum(c) for c in lens)}
    return out


def shipped_tokenizers(root: Path) -> dict:
    """Llama-2's tokenizer (data/tokenizer), each demo checkpoint's (checkpoints/*/tokenizer.model) and,
    when it is in the cache, SmolLM2's byte-level BPE (the base of the LoRA checkpoints; one digit a token)."""
    from lumos.model import smollm2
    from lumos.model.tokenizer import Tokenizer, load_tokenizer
    toks = {"llama2": Tokenizer(str(root / "data/tokenizer/llama2.model"))}
    for d in sorted(root.glob("checkpoints/*/")):
        if (d / "tokenizer.model").is_file():
            toks[d.name] = Tokenizer(str(d))
    if smollm2.is_complete(smollm2.base_dir()):
        toks[smollm2.SPEC] = load_tokenizer(str(smollm2.base_dir()))
    return toks


def main(paths: list[str]) -> None:
    root = Path(__file__).resolve().parents[2]
    toks = shipped_tokenizers(root)
    for p in paths:
        m = measure(p, toks)
        turn, conv = max(v["turn"] for v in m.values()), max(v["conversation"] for v in m.values())
        print(f"{Path(p).name}: longest turn {turn} tokens -> budget {with_headroom(turn)}; longest conversation "
              f"{conv}  (" + ", ".join(f"{k} {v['turn']}/{v['conversation']}" for k, v in m.items()) + ")")


if __name__ == "__main__":
    main(sys.argv[1:])
