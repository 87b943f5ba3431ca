"""The action parser and the executor: what the grounder writes, good and bad."""
import time

import pytest

from lumos.agent.executor import Executor, last_result, maths_executor, parse_actions, qa_executor, split_actions
from lumos.tools.qa import KnowledgeQuery


def test_split_only_at_top_level():
    g = "R1 = Calculator(16 - 3 - 4); R2 = Calculator(R1 * 2)"
    assert split_actions(g) == ["R1 = Calculator(16 - 3 - 4)", "R2 = Calculator(R1 * 2)"]
    # ';' inside brackets or quotes is an argument, a newline separates like ';'
    assert split_actions('R1 = Count([a; b], "x; y")\nR2 = Calculator(1)') == \
        ['R1 = Count([a; b], "x; y")', "R2 = Calculator(1)"]
    # an apostrophe inside a word does not open a quote
    assert len(split_actions("R2 = ParagraphRetrieve(R1, Query: What is Caesar's age?); R3 = QA([R2], Question: x)")) == 2


def test_parse_forms():
    (a,) = parse_actions("R5, R6 = SolveEquation(R2=xy, R3=x/y)")
    assert (a.outputs, a.tool, a.args, a.error) == (["R5", "R6"], "SolveEquation", "R2=xy, R3=x/y", None)
    (a,) = parse_actions("Action 2-1: R2 = Calculator(28 - R1) = 24 ")
    assert (a.text, a.outputs, a.args, a.stated) == ("R2 = Calculator(28 - R1)", ["R2"], "28 - R1", "24")
    (a,) = parse_actions("Action 1-1: R1 = KnowledgeQuery(Albany, Georgia) = WikipediaPage(Albany, Georgia). ")
    assert (a.tool, a.args, a.stated) == ("KnowledgeQuery", "Albany, Georgia", "WikipediaPage(Albany, Georgia)")
    (a,) = parse_actions("R3 = QA([R2, R1], Question: Who (and when) won, finally?)")
    assert (a.tool, a.args) == ("QA", "[R2, R1], Question: Who (and when) won, finally?")
    (a,) = parse_actions("Output = Calculator(R4(R5, R6))")
    assert (a.outputs, a.args) == (["Output"], "R4(R5, R6)")
    (a,) = parse_actions("R1 = Calculator(max(2, (3 + 4) * 2))")
    assert a.args == "max(2, (3 + 4) * 2)"


@pytest.mark.parametrize("text,message", [
    ("R1 = Calculator((2 + 3)", "unbalanced brackets"),
    ("R1 = Calculator(2 + 3))", "unexpected text after"),
    ("R1 = 2 + 3", "not an action"),
    ("Subgoal 1: add the numbers", "not an action"),
])
def test_parse_errors_are_recorded_not_raised(text, message):
    (a,) = parse_actions(text)
    assert message in a.error


def test_run_binds_and_records():
    env = {}
    recs = maths_executor().run("R1 = Calculator(16 - 3 - 4); R2 = Calculator(R1 * 2)", env)
    assert [(r.tool, r.outputs, r.result, r.error) for r in recs] == [
        ("Calculator", ["R1"], "9", None), ("Calculator", ["R2"], "18", None)]
    assert recs[1].args == "R1 * 2" and recs[1].resolved_args == "9 * 2"
    assert env == {"R1": "9", "R2": "18"} and last_result(recs) == "18"
    # the next subgoal's grounding sees the same environment; R12 is not R1 followed by "2"
    env.update({f"R{i}": str(i) for i in range(3, 13)})
    (rec,) = maths_executor().run("R13 = Calculator(R12 - R1)", env)
    assert rec.result == "3" and rec.resolved_args == "12 - 9"
    (rec,) = maths_executor().run("R14 = Calculator(R2 * (R1 - R3))", env)
    assert rec.resolved_args == "18 * (9 - 3)" and rec.result == "108"


def test_multi_assignment_and_output_counts():
    env = {"R2": "x - 3y", "R3": "x - 5y"}
    (rec,) = maths_executor().run("R5, R6 = SolveEquation(R2=xy, R3=x/y)", env)
    assert rec.error is None and (env["R5"], env["R6"]) == ("-1.125", "-0.6")
    (rec,) = maths_executor().run("R7 = SolveEquation(R2=xy, R3=x/y)", env)  # one name: the values joined
    assert env["R7"] == "-1.125, -0.6"
    (rec,) = maths_executor().run("R8, R9, R10 = SolveEquation(R2=xy, R3=x/y)", env)
    assert "2 value(s) for 3 output(s)" in rec.error and "R8" not in env


@pytest.mark.parametrize("grounding,message", [
    ("R1 = Frobnicate(2)", "unknown tool 'Frobnicate'"),
    ("R1 = Calculator((2 + 3)", "unbalanced brackets"),
    ("R1 = Calculator(R7 + 1)", "undefined variable R7"),
    ("R1 = Calculator(__import__('os').system('id'))", "unexpected character"),
    ("R1 = Calculator(9**9**9**9)", "too large"),
    ("R1 = Code(import os; os.system('id'))", "never Python"),
    ("R1 = Calculator(" + "9" * (10 * 1024 * 1024) + ")", "too long"),
    ("", "no action"),
])
def test_bad_actions_record_an_error_fast(grounding, message, tmp_path):
    t = time.perf_counter()
    env = {}
    recs = maths_executor().run(grounding, env)
    assert time.perf_counter() - t < 1.0
    assert message in recs[0].error and "\n" not in recs[0].error
    assert recs[0].result is None and env == {}          # nothing executed, nothing bound


def test_failures_do_not_leak_into_later_actions():
    env = {"R1": "5"}
    recs = maths_executor().run("R1 = Calculator(1 / 0); R2 = Calculator(R1 + 1); R3 = Calculator(2 + 2)", env)
    assert "division by zero" in recs[0].error
    assert recs[1].error == "undefined variable R1"      # the stale R1 = 5 was dropped
    assert recs[2].result == "4" and env == {"R3": "4"}
    assert last_result(recs) == "4"


def test_nothing_raises_out_of_run():
    def explode(args, env=None):
        raise RuntimeError("boom\nsecond line")

    def wrong_type(args, env=None):
        return 42                       # not a str: still recorded as text

    env = {}
    recs = Executor({"Explode": explode, "Weird": wrong_type}).run("R1 = Explode(1); R2 = Weird(2)", env)
    assert recs[0].error == "internal error in Explode: RuntimeError: boom"
    assert recs[1].result == "42" and env == {"R2": "42"}
    assert Executor({}).run(None, {})[0].error.startswith("grounding too long or not text")


def test_qa_executor_end_to_end(tmp_path):
    (tmp_path / "Julius Caesar.txt").write_text(
        "Julius Caesar was a Roman general.\nCaesar had three children: Julia, Caesarion and Octavian.\n"
        "He was assassinated in 44 BC.")
    (tmp_path / "Genghis Khan.txt").write_text("Genghis Khan founded the Mongol Empire.\nGenghis Khan had sixteen children.")
    seen = []

    def answer_fn(question, paragraphs):
        seen.append((question, paragraphs))
        return "3" if "Caesar" in question else "16"

    ex = qa_executor(answer_fn, knowledge=KnowledgeQuery(corpus_dir=tmp_path), top_k=1)
    env = {}
    plan = ["R1 = KnowledgeQuery(Julius Caesar); R2 = ParagraphRetrieve(R1, Query: How many children did Caesar have?); "
            "R3 = QA([R2], Question: How many kids did Julius Caesar have?)",
            "R4 = KnowledgeQuery(Genghis Khan); R5 = ParagraphRetrieve(R4, Query: How many kids did Genghis Khan have?); "
            "R6 = QA([R5], Question: How many kids did Genghis Khan have?)",
            "R7 = Calculator(R6 > R3)"]
    for g in plan:
        assert all(r.error is None for r in ex.run(g, env))
    assert env["R2"] == "Caesar had three children: Julia, Caesarion and Octavian."
    assert seen[0] == ("How many kids did Julius Caesar have?", [env["R2"]])
    assert env["R7"] == "True"
    (rec,) = ex.run("R8 = Calculator(R1 + 1)", env)     # a page is not a number
    assert rec.error.startswith("R1 is not a number or formula")
