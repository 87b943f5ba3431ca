"""The deterministic GSM8K -> Lumos converter on hand-picked rows, the golden files, and the full run."""
import json
import re
from fractions import Fraction
from pathlib import Path

import pytest

from lumos.annotations import arith
from lumos.annotations.gsm8k import Unconvertible, add_missing_marks, convert
from lumos.annotations.prepare import convert_example, prepare
from lumos.annotations.subgoal_text import subgoal_text
from lumos.tools.printing import format_number

DATA = Path(__file__).resolve().parents[1] / "data"
TRAIN = [json.loads(line) for line in (DATA / "gsm8k/train.jsonl").read_text().splitlines()]


def _conv(i):
    return convert(TRAIN[i]["question"], TRAIN[i]["answer"])


def test_multi_step_with_result_reuse():
    a = _conv(0)   # Natalia: 48/2 = 24 clips in May; 48+24 = 72 altogether
    assert a.subgoals == ["Subgoal 1: Calculate how many clips Natalia sold in May.",
                          "Subgoal 2: Calculate how many clips Natalia sold altogether in April and May."]
    assert a.actions == [["R1 = Calculator(48 / 2)"], ["R2 = Calculator(48 + R1)"]]
    assert a.results == ["24", "72"] and a.answer == "72"
    b = _conv(2)   # Betty: 100 - 50 - 30 - 15 uses two earlier results and two question numbers
    assert b.actions[-1] == ["R3 = Calculator(100 - R1 - R2 - 15)"]


def test_percentage_and_decimals():
    a = _conv(4188)   # '15% of $80 = (15/100)*$80 = $<<(15/100)*80=12>>12'
    assert a.actions == [["R1 = Calculator((15 / 100) * 80)"], ["R2 = Calculator(80 - R1)"]]
    assert a.subgoals[0] == "Subgoal 1: Calculate 15% of $80."
    b = _conv(2121)   # '$<<9/2=4.50>>4.50': results printed like the executor prints them
    assert b.results == ["9", "4.5", "1.5", "3"]
    assert b.subgoals[3] == ("Subgoal 4: Calculate how much more money it costs to make a batch of almond butter "
                             "cookies than peanut butter cookies.")


def test_fractions_and_unit_fraction_rule():
    a = _conv(3155)   # 1/4*200 = 50 bars
    assert a.actions[0] == ["R1 = Calculator(1 / 4 * 200)"]
    # '1/4' is 'a quarter' even when an earlier result is 4: the denominator is never R_j
    q = "Tom has 12 dollars. He spends a third, then a quarter of the rest."
    sol = "He spends 12/3 = $<<12/3=4>>4.\nHe has 12-4 = $<<12-4=8>>8 left.\nHe spends 8*1/4 = $<<8*1/4=2>>2 more.\n#### 2"
    assert convert(q, sol).actions == [["R1 = Calculator(12 / 3)"], ["R2 = Calculator(12 - R1)"],
                                       ["R3 = Calculator(R2 * 1 / 4)"]]


def test_operand_naming_rules():
    q = "Sam has 6 red and 6 blue pens and buys 2 more packs of 2."
    # the same value twice: the latest result wins
    sol = "Red: 3+3 = <<3+3=6>>6.\nBlue: 2*3 = <<2*3=6>>6.\nAll: 6+1 = <<6+1=7>>7.\n#### 7"
    assert convert(q, sol).actions[-1] == ["R3 = Calculator(R2 + 1)"]
    # a value that is both a result and a question number: results are given out from the right,
    # then the question's number stays a number ('2 packs x $2 each' with R1 = 2)
    sol = "He pays 4-2 = $<<4-2=2>>2 a pack.\nSo 2 x $2 = $<<2*2=4>>4.\n#### 4"
    assert convert(q, sol).actions == [["R1 = Calculator(4 - 2)"], ["R2 = Calculator(2 * R1)"]]
    # not in the question: both occurrences are the result
    sol = "Side: 10-5 = <<10-5=5>>5.\nArea: 5*5 = <<5*5=25>>25.\n#### 25"
    assert convert("A square.", sol).actions[-1] == ["R2 = Calculator(R1 * R1)"]
    # a rounded value the solution reuses is still that result, and the replay is exact
    sol = "Each gets 10/3 = <<10/3=3.33>>3.33 kg.\nAll three get 3.33*3 = <<3.33*3=9.99>>9.99 kg, i.e. 10.\n#### 10"
    a = convert("Split 10 among 3.", sol)
    assert a.actions == [["R1 = Calculator(10 / 3)"], ["R2 = Calculator(R1 * 3)"]] and a.results == ["3.333333", "10"]


def test_normalisation_and_unmarked_calculations():
    sol = "He spent 2 - .5 = <<2-.5=1.5>>1.5 dollars.\nHe bought 1.5 x 4 = 6 ounces.\n#### 6"
    a = convert("Peter has $2 and leaves with $.50.", sol)
    assert a.actions == [["R1 = Calculator(2 - 0.5)"], ["R2 = Calculator(R1 * 4)"]]
    assert add_missing_marks("then Kyle threw 40-16 = <<24=24>>24 yards farther") == \
        "then Kyle threw 40-16 = <<40-16=24>>24 yards farther"
    assert add_missing_marks("Amy has $100 − $3 = $97 left.") == "Amy has $100 − $3 = $<<100 - 3=97>>97 left."
    assert add_missing_marks("so 6*t=48-18=30") == "so 6*t=48-18=30"            # algebra is left alone
    assert add_missing_marks("so 2*3 = 7 apples") == "so 2*3 = 7 apples"        # a wrong sum is not marked


@pytest.mark.parametrize("sol,reason", [
    ("She has 5 apples and eats 2, so 3 are left.\n#### 3", "no <<>> marks"),
    ("Let x be the cost.\nx=<<5=5>>5\n#### 5", "no calculation marks"),
    ("He has 2+2=<<2+2=5>>5 apples.\n#### 5", "mark value wrong"),
    ("He has 2+2=<<2+2=4>>4 apples and 3 pears.\n#### 7", "answer not among results"),
    ("He has 2+2=<<2+2=4>>4.\nThen 4*2=<<4*2=8>>8.\n#### 4", "answer not the last result"),
    ("He has 2//2=<<2//2=1>>1.\n#### 1", "non-arithmetic mark"),
    ("It costs 2+2=<<2+2=4>>4.", "no #### answer"),
])
def test_drops_with_reason(sol, reason):
    with pytest.raises(Unconvertible) as e:
        convert("A question with 2 numbers.", sol)
    assert e.value.reason == reason


def test_drops_real_row_without_marks():
    i = next(i for i, r in enumerate(TRAIN) if "<<" not in r["answer"])
    with pytest.raises(Unconvertible, match="no <<>> marks"):
        _conv(i)


def test_subgoal_text_templates():
    cases = {
        "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.": "Calculate how much money Weng earns per minute.",
        "There are 120 - 36 = <<120-36=84>>84 pages left to be read": "Calculate the number of pages left to be read.",
        "The total cost is 5*4 = $<<5*4=20>>20.": "Calculate the total cost.",
        "If he works 10 hours, he earns 10*5 = $<<10*5=50>>50.": "Calculate how much money he earns if he works 10 hours.",
        "Tom's dog is 24/4 = <<24/4=6>>6 years old currently.": "Calculate how old Tom's dog is currently.",
        "First find the total number of sheep by dividing: 81 / .9 = <<81/.9=90>>90 sheep":
            "Calculate the total number of sheep.",
        "Each painting is 25 square feet because 5 x 5 = <<5*5=25>>25": "Calculate how many square feet each painting is.",
        "So, she has 2/10 x 100% = <<2/10*100=20>>20% more birds.": "Calculate what percentage more birds she has.",
    }
    for sentence, want in cases.items():
        assert subgoal_text(sentence) == want, sentence
    # the text never states the value it asks for: a moved condition that does is left out, else None
    s = "If Chris has $16.00 and Kim has $8.00 then Chris has 16-8 = $<<16-8=8.00>>8.00 more than Kim"
    assert subgoal_text(s) == "Calculate how much more money Chris has than Kim if Chris has $16.00 and Kim has $8.00."
    assert subgoal_text(s, hide=["8"]) == "Calculate how much more money Chris has than Kim."
    assert subgoal_text("She has 7 cats: 3+4 = <<3+4=7>>7", hide=["7"]) is None


def test_arith_is_safe_and_exact():
    assert arith.evaluate("1/3*3") == 1 and arith.evaluate("R1 * 2", {"R1": Fraction(9)}) == 18
    assert arith.evaluate("1.1**2") == Fraction(121, 100)
    for bad in ["__import__('os')", "R1", "(1).real", "2**1000", "1/0", "[1]", "a+1", "9**9**9"]:
        with pytest.raises(arith.ArithError):
            arith.evaluate(bad)
    assert [format_number(Fraction(x)) for x in ("24", "5/2", "-1/8", "10/3", "144.00")] == \
        ["24", "2.5", "-0.125", "3.333333", "144"]


@pytest.mark.parametrize("path", sorted((DATA / "golden").glob("*.json")), ids=lambda p: p.stem)
def test_golden(path):
    """Three spot-checked examples, kept verbatim: the converter must reproduce every row exactly."""
    g = json.loads(path.read_text())
    gold, rows = convert_example(g["gold"]["id"], g["source"])
    assert gold == g["gold"]
    assert rows == g["rows"]


def test_golden_count():
    assert len(list((DATA / "golden").glob("*.json"))) == 3


def test_prepare_full_train_and_gold_replay(tmp_path):
    """The real command on all of GSM8K: >= 95% converted, every action replays to the answer,
    and no test question reaches a training file."""
    (tmp_path / "gsm8k").mkdir()
    for split in ("train", "test"):
        (tmp_path / "gsm8k" / f"{split}.jsonl").write_bytes((DATA / "gsm8k" / f"{split}.jsonl").read_bytes())
    report = prepare(tmp_path, quiet=True)
    assert report["train"]["converted"] / sum(report["train"].values()) >= 0.95
    assert sum(report["train"].values()) == 7473 and sum(report["test"].values()) == 1319

    gold = [json.loads(line) for line in (tmp_path / "gold/gsm8k_test.jsonl").read_text().split("\n") if line]
    assert gold[0]["id"] == "gsm8k-test-0" and gold[0]["actions"] == ["R1 = Calculator(16 - 3 - 4)",
                                                                     "R2 = Calculator(R1 * 2)"]
    for g in gold:                                  # replay with the exact evaluator
        env = {}
        for acts, res in zip(g["actions"], g["results"]):
            for act in acts.split("; "):
                name, expr = re.fullmatch(r"(R\d+) = Calculator\((.*)\)", act).groups()
                env[name] = arith.evaluate(expr, env)
            assert format_number(env[name]) == res
        assert env[name] == arith.parse_number(g["answer"]), g["id"]

    test_questions = {g["question"] for g in gold}
    for f in (tmp_path / "annotations").glob("lumos_maths_*.jsonl"):
        for line in filter(None, f.read_text().split("\n")):
            row = json.loads(line)
            assert row["id"].startswith("gsm8k-train-")
        tasks = {re.search(r"Task: (.*?)(?:; Initial Environment| \n)", json.loads(line)["messages"][0]["content"],
                           re.S).group(1) for line in f.read_text().split("\n") if line}
        assert not tasks & test_questions
