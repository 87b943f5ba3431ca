"""Task loaders, the metrics' edge cases, and gold replay on the paper's own GSM8K examples."""
import json
import re
from pathlib import Path

import pytest

from lumos.agent import replay
from lumos.agent.tasks import TASKS, load_task, normalize_answer, parse_number, score

ROOT = Path(__file__).resolve().parents[1]


def test_loaders_ids_and_answers():
    gsm = load_task("gsm8k")
    assert len(gsm) == 1319 and gsm[0].id == "gsm8k-test-0" and gsm[0].answer == "18"
    assert gsm[0].question.startswith("Janet")
    svamp = load_task("svamp", limit=3)
    assert [e.id for e in svamp] == ["svamp-test-0", "svamp-test-1", "svamp-test-2"]
    assert svamp[0].question == ("Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each "
                                 "pack How much do you have to pay to buy each pack?") and svamp[0].answer == "51"
    hot = load_task("hotpotqa")
    assert len(hot) == 7405 and hot[0].id == "hotpotqa-dev-0" and hot[0].answer == "yes"
    sqa = load_task("strategyqa")
    assert len(sqa) == 2290 and sqa[0].id == "strategyqa-test-0" and sqa[0].answer in ("True", "False")
    assert {t: TASKS[t].family for t in ("gsm8k", "svamp", "hotpotqa", "strategyqa")} == {
        "gsm8k": "maths", "svamp": "maths", "hotpotqa": "complex_qa", "strategyqa": "complex_qa"}
    with pytest.raises(ValueError, match="unknown task"):
        load_task("mmlu")


def test_gsm8k_answers_lose_thousands_separators():
    rows = [json.loads(l) for l in (ROOT / "data/gsm8k/test.jsonl").read_text().splitlines()]
    i = next(i for i, r in enumerate(rows) if re.search(r"#### \d{1,3},\d{3}", r["answer"]))
    ex = load_task("gsm8k", limit=i + 1)[i]
    assert "," not in ex.answer and ex.answer == rows[i]["answer"].split("####")[1].strip().replace(",", "")


@pytest.mark.parametrize("pred,gold,ok", [
    ("18", "18", True), ("18.0", "18", True), ("$18", "18", True), ("18 dollars", "18", True),
    ("$18.00", "18", True), ("1,000", "1000", True), ("1000", "1,000", True), ("-3", "-3", True),
    ("0.333333", "0.3333333", True), ("2/3", "0.666667", True), ("x = 5", "5", True), ("40%", "40", True),
    ("17.9", "18", False), ("18", "180", False), ("", "18", False), (None, "18", False), ("True", "1", False),
    ("1.5", "1.50", True), ("1.44", "1.5", False), ("33.333333", "33.33", True), ("99999.5", "100000", False),
    ("9.999999", "10", True), ("-5", "5", False),
])
def test_maths_score(pred, gold, ok):
    assert score("gsm8k", pred, gold) == {"correct": ok, "em": float(ok), "f1": float(ok)}


def test_hotpotqa_em_f1():
    assert normalize_answer("  The  Beatles!") == "beatles"
    assert score("hotpotqa", "the Beatles.", "Beatles") == {"correct": True, "em": 1.0, "f1": 1.0}
    s = score("hotpotqa", "John Smith Jr", "John Smith")
    assert s["em"] == 0.0 and s["f1"] == pytest.approx(0.8)
    assert score("hotpotqa", "no", "yes")["f1"] == 0.0                  # no partial credit on yes/no
    assert score("hotpotqa", "yes sir", "yes")["f1"] == 0.0
    assert score("hotpotqa", None, "x") == {"correct": False, "em": 0.0, "f1": 0.0}
    assert score("hotpotqa", "a", "the")["f1"] == 0.0                   # both normalise to empty


def test_strategyqa_yes_no():
    assert score("strategyqa", "Yes.", "True")["correct"]
    assert score("strategyqa", "true", True)["correct"]
    assert score("strategyqa", "No, because frost melts", False)["correct"]
    assert not score("strategyqa", "False", "True")["correct"]
    assert not score("strategyqa", "maybe", "False")["correct"]
    assert not score("strategyqa", None, "False")["correct"]


def test_parse_number_without_a_number():
    assert parse_number("no number") is None


def paper_gold_rows():
    """The paper's six GSM8K conversion examples as gold rows (one subgoal's actions per entry)."""
    text = json.loads((ROOT / "data/lumos/annotation_conversion_prompts.json").read_text())["instruction_maths_gsm"]
    answers = ["6", "11", "1000", "110", "990", "45"]
    rows = []
    for n, block in enumerate(text.split("\nExample ")[1:]):
        actions, results = [], []
        for sub in re.split(r"\nSubgoal \d+:", block)[1:]:
            acts = re.findall(r"Action \d+-\d+: (.*?) = ([^=\n]*?)\s*$", sub, flags=re.M)
            actions.append("; ".join(a for a, _ in acts))
            results.append(acts[-1][1])
        rows.append({"id": f"paper-{n}", "answer": answers[n], "actions": actions, "results": results})
    return rows


def test_replay_reproduces_the_papers_examples():
    rows = paper_gold_rows()
    assert len(rows) == 6 and rows[3]["actions"][0] == "R1 = Calculator(1 - 2/5); R2 = Calculator(100 * R1)"
    outcomes = [replay.replay_row(r) for r in rows]
    assert [o["correct"] for o in outcomes] == [True] * 6
    assert outcomes[2]["prediction"] == "1000"
    # symbolic intermediate results (2p/5 vs the paper's 2p/5, p/4 + 150 vs (p + 600)/4) are not numbers;
    # only the text differs there, the values agree
    assert outcomes[0]["mismatched_subgoals"] == []


def test_replay_cli_groups_failures(tmp_path, capsys):
    rows = paper_gold_rows()
    rows.append({"id": "gsm8k-train-1", "answer": "5", "actions": ["R1 = Calculator(2 + 2)"], "results": ["4"]})
    rows.append({"id": "gsm8k-train-2", "answer": "5", "actions": ["R1 = Calculator(R7 + 2)"], "results": ["5"]})
    rows.append({"id": "gsm8k-train-3", "answer": "5", "actions": ["R1 = Calculator(R9 + 2)"], "results": ["5"]})
    rows[0]["question"] = "Peter\u2028buys soda\x85"     # raw line-separator characters inside a row
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert replay.main([str(path), "--failures", str(tmp_path / "fail.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "6/9 rows reproduce the gold answer (66.67%)" in out
    assert re.search(r"^\s+2  error: undefined variable Rk$", out, flags=re.M)
    assert re.search(r"^\s+1  wrong answer$", out, flags=re.M)
    failed = [json.loads(l) for l in (tmp_path / "fail.jsonl").read_text().splitlines()]
    assert [f["id"] for f in failed] == ["gsm8k-train-1", "gsm8k-train-2", "gsm8k-train-3"]
    assert replay.main([str(tmp_path / "missing.jsonl")]) == 2
