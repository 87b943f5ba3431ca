"""The Lumos-I / Lumos-O loop with scripted backends and the real maths executor: prompts as they
evolve, one backend call per step for all waiting examples, failures by cause."""
from types import SimpleNamespace as NS

from lumos.agent.agent import Agent
from lumos.agent.backends import Completion
from lumos.agent.executor import maths_executor
from lumos.agent.grounder import ground_prompt_append, ground_prompt_first, ground_prompt_onetime
from lumos.agent.planner import plan_prompt_append, plan_prompt_first


class Scripted:
    """A backend answering by (example id, turn number) from a script; records every call."""

    def __init__(self, script):
        self.script, self.calls = script, []

    def complete(self, prompts, ids=None):
        self.calls.append((list(ids), list(prompts)))
        out = []
        for p, i in zip(prompts, ids):
            turns = self.script[i]
            k = p.count("<|user|>") - 1
            out.append(Completion(turns[k] if k < len(turns) else "", 3))
        return out


EGGS = "Janet has 16 eggs, eats 3, bakes 4 and sells the rest at $2. How much does she make?"


def test_iterative_prompts_and_answer():
    planner = Scripted({"a": ["Subgoal 1: Count the eggs left.", "No, I will keep planning. Subgoal 2: Calculate the money.",
                              "Yes, I will stop planning."]})
    grounder = Scripted({"a": ["R1 = Calculator(16 - 3 - 4)", "R2 = Calculator(R1 * 2)"]})
    (ep,) = Agent(planner, grounder, maths_executor()).run([NS(id="a", question=EGGS, answer="18")])
    assert ep.failure is None and ep.prediction == "18" and ep.env["R1"] == "9"
    assert ep.subgoals == ["Subgoal 1: Count the eggs left.", "Subgoal 2: Calculate the money."]
    p1 = plan_prompt_first(EGGS)
    p2 = p1 + plan_prompt_append("Subgoal 1: Count the eggs left.", 1, "9")
    p3 = p2 + plan_prompt_append("No, I will keep planning. Subgoal 2: Calculate the money.", 2, "18")
    assert [c[1][0] for c in planner.calls] == [p1, p2, p3]
    assert p3.endswith("The executed result for Subgoal 2 is 18. Should we stop planning?\n<|assistant|>\n")
    g1 = ground_prompt_first("maths", EGGS, "Subgoal 1: Count the eggs left.")
    # the grounder sees the subgoal without "No, I will keep planning. " (as the training data has it)
    g2 = g1 + ground_prompt_append("R1 = Calculator(16 - 3 - 4)", "Subgoal 2: Calculate the money.")
    assert [c[1][0] for c in grounder.calls] == [g1, g2]
    assert [s["module"] for s in ep.steps] == ["planner", "grounder", "planner", "grounder", "planner"]
    assert ep.steps[3]["actions"][0]["resolved_args"] == "9 * 2" and ep.n_tokens == 15


def test_onetime():
    planner = Scripted({"a": ["Subgoal 1: Count the eggs left.; Subgoal 2: Calculate the money."]})
    grounder = Scripted({"a": ["R1 = Calculator(16 - 3 - 4); R2 = Calculator(R1 * 2)"]})
    (ep,) = Agent(planner, grounder, maths_executor(), formulation="onetime").run([NS(id="a", question=EGGS, answer="18")])
    assert (ep.failure, ep.prediction) == (None, "18")
    assert grounder.calls[0][1] == [ground_prompt_onetime(
        "maths", EGGS, "Subgoal 1: Count the eggs left.; Subgoal 2: Calculate the money.")]


def test_failures_by_cause_and_one_call_per_step():
    S1 = "Subgoal 1: Do it."
    plan = {"ok": [S1, "Yes, I will stop planning."], "malformed": ["The answer is 18."],
            "empty": [S1], "garbage": [S1], "undefined": [S1], "nostop": [S1] * 40, "early": ["Yes, I will stop planning."],
            "toolerr": [S1]}
    ground = {"ok": ["R1 = Calculator(2 + 3)"], "empty": [""], "garbage": ["Calculator 2 + 3 then"],
              "undefined": ["R1 = Calculator(R7 + 1)"], "nostop": ["R1 = Calculator(1 + 1)"] * 40,
              "toolerr": ["R1 = Calculator(1 / 0)"]}
    planner, grounder = Scripted(plan), Scripted(ground)
    exs = [NS(id=i, question=f"Question {i}?", answer="5") for i in plan]
    eps = {e.id: e for e in Agent(planner, grounder, maths_executor(), max_rounds=16).run(exs, batch_size=8)}
    assert {i: e.failure for i, e in eps.items()} == {
        "ok": None, "malformed": "no_subgoal", "empty": "no_actions", "garbage": "unparsable_actions",
        "undefined": "execution_error", "nostop": "no_stop", "early": "no_result", "toolerr": "execution_error"}
    assert eps["ok"].prediction == "5" and eps["nostop"].planner_calls == 16
    assert "undefined variable R7" in eps["undefined"].steps[-1]["actions"][0]["error"]
    # step 1: all 8 examples in one planner call, the 6 with a subgoal in one grounder call; then only "ok"+"nostop"
    assert [sorted(c[0]) for c in planner.calls[:2]] == [sorted(plan), ["nostop", "ok"]]
    assert sorted(grounder.calls[0][0]) == ["empty", "garbage", "nostop", "ok", "toolerr", "undefined"]
    assert len(planner.calls) == 16 and all(c[0] == ["nostop"] for c in planner.calls[2:])


def test_batch_refills_as_examples_finish():
    plan = {f"e{i}": ["Subgoal 1: Add.", "Yes, I will stop planning."] if i % 2 else ["Yes, I will stop planning."]
            for i in range(5)}
    ground = {i: ["R1 = Calculator(1 + 1)"] for i in plan}
    planner = Scripted(plan)
    done = list(Agent(planner, Scripted(ground), maths_executor()).run(
        [NS(id=i, question=i, answer="2") for i in plan], batch_size=2))
    assert sorted(e.id for e in done) == sorted(plan)
    assert max(len(c[0]) for c in planner.calls) == 2 and all(len(c[0]) >= 1 for c in planner.calls)


def test_complex_qa_grounder_sees_qa_answers_and_qa_uses_the_backend(tmp_path):
    from lumos.agent.agent import answer_fn_from
    from lumos.agent.executor import qa_executor
    from lumos.tools.qa import KnowledgeQuery
    (tmp_path / "France.txt").write_text("France is a country.\nThe capital of France is Paris.\nIt has wine.\n")
    asked = []

    class Reader:  # the QA backend: answers from the paragraphs it was shown
        def complete(self, prompts, ids=None):
            asked.append(prompts[0])
            return [Completion("Answer: Paris" if "capital of France is Paris" in prompts[0] else "No answer", 2)]

    q = "Which city is the capital of France?"
    s1, s2 = "Subgoal 1: Find the capital of France.", "Subgoal 2: Name the city."
    planner = Scripted({"a": [s1, "No, I will keep planning. " + s2, "Yes, I will stop planning."]})
    grounder = Scripted({"a": ["R1 = KnowledgeQuery(France); R2 = ParagraphRetrieve(R1, Query: capital of France?); "
                               "R3 = QA([R2], Question: What is the capital of France?)",
                               "R4 = QA([R2], Question: Which city?)"]})
    ex = qa_executor(answer_fn_from(Reader()), knowledge=KnowledgeQuery(corpus_dir=tmp_path), top_k=1)
    (ep,) = Agent(planner, grounder, ex, family="complex_qa").run([NS(id="a", question=q, answer="Paris")])
    assert ep.failure is None and ep.prediction == "Paris"
    assert grounder.calls[1][1][0].endswith(
        "Subgoal to be grounded: Subgoal 2: Name the city. The grounding could be based on the following results: "
        "The execution result for Subgoal 1 is Paris\n<|assistant|>\n")
    assert asked[0].startswith("<|user|>\nPlease answer the following question according to the context.")
    assert "Question: What is the capital of France?\nContext: The capital of France is Paris.\n<|assistant|>\n" in asked[0]
