"""The action parser and the executor: what the grounder writes, good and bad."""
import time

import pytest

from lumos.agent.executor import Executor, final_answer, maths_executor, parse_actions, qa_executor, split_actions
from lumos.agent.replay import replay_row
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
    assert env == {"R1": "9", "R2": "18"} and final_answer(recs) == "18"
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
    assert final_answer(recs) == "4"


def test_final_answer_is_the_last_successful_action():
    """The one rule (executor.final_answer) for the agent and the gold replay alike. The replay's copy
    took the last action of each subgoal and skipped a subgoal whose last action failed; now a failed
    last action falls back to the subgoal's earlier successful one, as the agent always did."""
    recs = maths_executor().run("R1 = Calculator(2 + 3); R2 = Calculator(R1 * 2); R3 = Calculator(1 / 0)", {})
    assert final_answer(recs) == "10" and final_answer(recs[:1]) == "5"
    assert final_answer(recs[2:]) is None and final_answer([]) is None
    row = {"id": "gsm8k-train-0", "answer": "10", "actions": ["R1 = Calculator(2 + 3)",
                                                             "R2 = Calculator(R1 * 2); R3 = Calculator(1 / 0)"]}
    out = replay_row(row)
    assert out["prediction"] == "10"            # the replay's copy said "5" (subgoal 1's value)
    assert not out["correct"] and out["cause"] == "error: division by zero"   # an error still fails the row


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


# ---- budgets: time per action, time per example, result size -----------------------------------------

def _sleeper(args, env=None):
    time.sleep(float(args))
    return "slept"


def test_action_time_budget_stops_a_slow_tool():
    import signal
    t = time.perf_counter()
    recs = Executor({"Slow": _sleeper}, action_s=0.3).run("R1 = Slow(5); R2 = Slow(0)", {})
    assert time.perf_counter() - t < 3.0
    assert recs[0].error == "timed out after 0.3 s" and recs[0].result is None and 0.25 < recs[0].seconds < 2.0
    assert recs[1].result == "slept"                     # the next action still runs
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)   # no alarm left armed


def test_executor_budget_cuts_a_maths_tools_own_limit_short():
    """Limits nest: the executor's 0.3 s wins over Calculator's own 2 s (((x+1)^32)^32 takes 2 s)."""
    from lumos.tools.maths import MATHS_TOOLS
    t = time.perf_counter()
    (rec,) = Executor(MATHS_TOOLS, action_s=0.3).run("R1 = Calculator(((x+1)^32)^32)", {})
    assert time.perf_counter() - t < 1.0 and "timed out" in rec.error


def test_example_time_budget_is_shared_by_its_actions():
    """20 slow actions in one grounding: 0.2 s each until the example's 0.5 s are spent, then not run."""
    ex = Executor({"Slow": _sleeper}, action_s=0.2, example_s=0.5)
    t = time.perf_counter()
    recs = ex.run("; ".join(f"R{i} = Slow(5)" for i in range(1, 21)), {})
    assert time.perf_counter() - t < 1.5
    errors = [r.error for r in recs]
    assert errors[0] == "timed out after 0.2 s" and all(e.startswith("timed out after 0.") for e in errors[1:3])
    assert all(e.startswith("not run: the example's tool time budget (0.5 s) is spent") for e in errors[3:])
    assert sum(r.seconds for r in recs) < 1.0
    # a later grounding of the same example: told what was spent, it runs nothing more
    assert ex.run("R1 = Slow(0)", {}, spent_s=0.5)[0].error.startswith("not run")


def test_maths_executor_budget_on_the_issue_case():
    """Calculator(((x+1)^32)^32) twenty times: the example stops at its 10 s, not 40 s."""
    t = time.perf_counter()
    recs = maths_executor().run("; ".join(f"R{i} = Calculator(((x+{i})^32)^32)" for i in range(1, 21)), {})
    assert time.perf_counter() - t < 12.5 and len(recs) == 20
    assert all(r.error for r in recs) and recs[-1].error.startswith("not run")


def test_result_size_budget():
    env = {}
    recs = Executor({"Big": lambda a, e=None: "x" * 5000}, max_result_chars=1000).run("R1 = Big(1); R2 = Big(2)", env)
    assert recs[0].error == "result too long (5000 characters, limit 1000)" and recs[0].result is None
    assert env == {}                                    # nothing bound


def test_agent_records_budget_failures_and_caps_what_goes_back_into_prompts():
    from types import SimpleNamespace as NS

    from lumos.agent.agent import MAX_FEEDBACK_CHARS, Agent
    from lumos.agent.backends import Completion

    class Scripted:
        def __init__(self, turns):
            self.turns, self.prompts = turns, []

        def complete(self, prompts, ids=None):
            self.prompts += prompts
            return [Completion(self.turns[min(p.count("<|user|>"), len(self.turns)) - 1], 1) for p in prompts]

    planner = Scripted(["Subgoal 1: a.", "Subgoal 2: b.", "Subgoal 3: c.", "Yes, I will stop planning."])
    grounder = Scripted(["R1 = Big(1)", "R2 = Slow(0.3)", "R3 = Slow(0.3)"])
    tools = {"Big": lambda a, e=None: "y" * 10_000, "Slow": _sleeper}
    (ep,) = Agent(planner, grounder, Executor(tools, action_s=5, example_s=0.5)).run([NS(id="a", question="q?", answer="1")])
    # the 10,000-character result reached the planner's prompt as MAX_FEEDBACK_CHARS of it
    fed = planner.prompts[1].split("The executed result for Subgoal 1 is ", 1)[1]
    assert fed.startswith("y" * MAX_FEEDBACK_CHARS + " ... (8000 more characters)")
    assert ep.steps[1]["actions"][0]["result"] == "y" * 10_000    # the trace keeps it whole
    # the second grounding used 0.3 s; the third got the ~0.2 s left, timed out, and the example stopped
    assert ep.failure == "execution_error" and ep.steps[-1]["actions"][0]["error"].startswith("timed out after 0.")
    assert 0.45 < ep.tool_s < 1.5


def test_fuzzed_groundings_never_escape_and_keep_their_budgets():
    """scripts/fuzz_actions.py's generator (huge powers, nan/inf, lone surrogates, code, junk), a
    sample of it: nothing escapes Executor.run, no result over the size budget is kept, and no action
    runs much past maths_executor's 2 s (the README quotes the full run's figures)."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("fuzz_actions", Path(__file__).parents[1] / "scripts/fuzz_actions.py")
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    stats = fuzz.fuzz(1500, "maths", seed=1)
    assert stats["uncaught"] == 0, stats["uncaught_examples"][:3]
    assert stats["oversize_results"] == 0 and stats["actions"] >= 1500 and stats["errors"] > 0
    assert stats["max_action_s"] < 2.5
