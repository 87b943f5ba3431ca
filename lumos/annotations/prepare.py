"""Make the default training data: GSM8K train -> the four Lumos maths datasets, and the gold files.

    data/annotations/lumos_maths_{plan,ground}_{iterative,onetime}.jsonl   (training, from GSM8K train)
    data/annotations/dropped_gsm8k_train.jsonl                             (what was dropped, and why)
    data/gold/gsm8k_train.jsonl, data/gold/gsm8k_test.jsonl                (gold annotations, for replay)
    data/annotations/lumos_sql_{plan,ground}_{iterative,onetime}.jsonl     (InterCode-SQL, train databases only)

GSM8K *test* is converted only into data/gold/gsm8k_test.jsonl, never into a training file.
`prepare(data_dir)` does it all in a few seconds; `ensure_prepared(data_dir)` only when files are missing.
"""
import json
import sys
from collections import Counter
from pathlib import Path

from lumos.annotations.build import KINDS, build_rows, dataset_filename
from lumos.annotations.format import write_jsonl
from lumos.annotations.gsm8k import Unconvertible, convert

FAMILY = "maths"


def annotation_paths(data_dir="data") -> dict[str, Path]:
    """{kind: path} of the four training files."""
    return {k: Path(data_dir) / "annotations" / dataset_filename(FAMILY, k) for k in KINDS}


def gold_path(data_dir="data", split="test") -> Path:
    return Path(data_dir) / "gold" / f"gsm8k_{split}.jsonl"


def convert_example(id: str, row: dict) -> tuple[dict, dict[str, dict]]:
    """One GSM8K row -> (its gold row, {kind: its row in each of the four datasets}); may raise Unconvertible."""
    ann = convert(row["question"], row["answer"])
    gold = {"id": id, "question": ann.question, "answer": ann.answer, "subgoals": ann.subgoals,
            "actions": ["; ".join(a) for a in ann.actions], "results": ann.results}
    return gold, build_rows("gsm8k", id, ann.question, ann.subgoals, ann.actions, ann.results, FAMILY)


def convert_split(path) -> tuple[list[dict], dict[str, list[dict]], list[dict], Counter]:
    """A GSM8K jsonl file -> (gold rows, {kind: dataset rows}, dropped rows, counts by outcome)."""
    split = Path(path).stem                                   # 'train' | 'test'
    gold, rows, dropped, counts = [], {k: [] for k in KINDS}, [], Counter()
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            row = json.loads(line)
            id = f"gsm8k-{split}-{i}"
            try:
                g, r = convert_example(id, row)
            except Unconvertible as e:
                counts[e.reason] += 1
                dropped.append({"id": id, "reason": e.reason, "detail": str(e)})
                continue
            except (ValueError, ArithmeticError, RecursionError) as e:   # a converter bug: count it, go on
                counts["converter error"] += 1
                dropped.append({"id": id, "reason": "converter error", "detail": f"{type(e).__name__}: {e}"})
                continue
            counts["converted"] += 1
            gold.append(g)
            for k in KINDS:
                rows[k].append(r[k])
    return gold, rows, dropped, counts


def prepare(data_dir="data", quiet: bool = False) -> dict:
    """Write all default training and gold files under `data_dir`; return the counts per split."""
    data_dir = Path(data_dir)
    report = {}
    for split in ("train", "test"):
        gold, rows, dropped, counts = convert_split(data_dir / "gsm8k" / f"{split}.jsonl")
        if split == "train":                                  # only train ever becomes training data
            for kind, path in annotation_paths(data_dir).items():
                write_jsonl(path, rows[kind])
            write_jsonl(data_dir / "annotations" / "dropped_gsm8k_train.jsonl", dropped)
        write_jsonl(gold_path(data_dir, split), gold)
        report[split] = dict(counts)
        if not quiet:
            total = sum(counts.values())
            print(f"gsm8k {split}: {counts['converted']}/{total} converted "
                  f"({100 * counts['converted'] / max(total, 1):.1f}%)", file=sys.stderr)
            for reason, n in counts.most_common():
                if reason != "converted":
                    print(f"  dropped {n:5d}  {reason}", file=sys.stderr)
    if (data_dir / "intercode-sql" / "ic_spider_dev.json").exists():   # SQL: train databases only
        from lumos.annotations.intercode_sql import write_training_files
        report["intercode_sql_train"] = write_training_files(data_dir, quiet)
    if not quiet:
        for path in annotation_paths(data_dir).values():
            print(f"wrote {path}", file=sys.stderr)
        print(f"wrote {gold_path(data_dir, 'train')} and {gold_path(data_dir, 'test')} (gold, not for training)",
              file=sys.stderr)
    return report


def ensure_prepared(data_dir="data", quiet: bool = False) -> dict[str, Path]:
    """Run `prepare` if any default file is missing; return the training file paths."""
    paths = annotation_paths(data_dir)
    if not all(p.exists() for p in list(paths.values()) + [gold_path(data_dir, "train"), gold_path(data_dir, "test")]):
        prepare(data_dir, quiet)
    return paths
