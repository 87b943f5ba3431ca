"""The Lumos agent loop: planner -> grounder -> executor, Lumos-O and Lumos-I, batched across examples.

Lumos-I, one example:  plan prompt -> "Subgoal 1: ..." -> ground prompt -> "R1 = Calculator(16 - 3 - 4)"
-> executor binds R1 = 9 -> the planner is told "The executed result for Subgoal 1 is 9. Should we stop
planning?" -> ... -> "Yes, I will stop planning." -> prediction = the last bound result.
Lumos-O, one example:  plan prompt -> "Subgoal 1: ...; Subgoal 2: ..." -> one ground prompt -> all actions
-> execute -> prediction.

Many examples advance together: `Agent.run` keeps up to `batch_size` episodes in flight, and every
step sends ALL episodes waiting for the planner to the planner backend in one call, then all episodes
waiting for the grounder to the grounder backend in one call (a local backend decodes them as one batch).
A finished episode is replaced by the next example at once, so the batch stays full.

Model output is untrusted: a generation that cannot be parsed or executed ends its episode with a
failure cause (see FAILURES) and never raises. Budgets keep a looping model from holding the batch:
each module's turn gets at most `max_new_tokens[module]` new tokens, a whole example at most
`max_example_tokens` (lumos.agent.budget measures both from the gold annotations).
"""
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from lumos import prompts
from lumos.agent.backends import Completion
from lumos.agent.executor import BUDGET_SPENT, ActionRecord, final_answer
from lumos.agent.grounder import ground_prompt_append, ground_prompt_first, ground_prompt_onetime
from lumos.agent.planner import parse_plan_onetime, parse_plan_step, plan_prompt_append, plan_prompt_first

MAX_ROUNDS = 16  # Lumos-I: planner calls per example before we give up (failure "no_stop")
MAX_FEEDBACK_CHARS = 2_000  # of one executed result, fed back into the planner/grounder prompts

FAILURES = {
    "no_subgoal": "the planner's generation holds no 'Subgoal k: ...' (nor the stop sentence)",
    "no_actions": "the grounder generated nothing",
    "unparsable_actions": "the grounding is not a list of 'R = Tool(args)' actions",
    "execution_error": "an action failed when executed (tool error, undefined R_j, ...)",
    "no_stop": f"Lumos-I did not say 'Yes, I will stop planning.' within {MAX_ROUNDS} planner rounds",
    "no_result": "the planner stopped before any subgoal was executed",
    "prompt_too_long": "the conversation no longer fits the model's context (max_seq_len)",
    "no_gold": "the gold backend has no annotation for this example (the converter dropped it)",
    "length": "a generation hit its new-token budget (--max-new-tokens) before its newline",
    "repetition": "a generation looped (one pattern repeated 16 times in a row) and was stopped",
    "token_budget": "the example used up its budget of generated tokens (--max-example-tokens)",
    "tool_budget": "the example's actions used up their tool time (Executor.example_s)",
    "wrong_answer": "everything ran, but the answer is not the gold one (interactive tasks: reward below success)",
}
# backend finish_reason -> failure
_FINISH_FAILURE = {"too_long": "prompt_too_long", "no_gold": "no_gold", "length": "length", "repeat": "repetition"}


@dataclass
class Episode:
    """One example on its way through the agent. `steps` is the readable trace: every prompt, generation,
    action record, in order."""
    id: str
    question: str
    gold: object = None
    state: str = "plan"                 # "plan" -> "ground" -> ... -> "done"
    plan_prompt: str = ""
    ground_prompt: str = ""
    last_plan: str = ""                 # the planner's last generation (Lumos-I re-appends it)
    last_grounding: str = ""
    subgoals: list = field(default_factory=list)   # parsed "Subgoal k: ..." lines
    records: list[ActionRecord] = field(default_factory=list)  # every executed action, in order
    qa_results: dict = field(default_factory=dict) # subgoal number -> QA answer (complex QA grounder context)
    env: dict = field(default_factory=dict)        # R_k -> value, filled by the executor
    steps: list = field(default_factory=list)
    n_tokens: int = 0
    planner_calls: int = 0
    failure: str | None = None
    prediction: str | None = None
    outcome: dict = field(default_factory=dict)   # what the executor's finish() reported (e.g. a reward)
    tool_s: float = 0.0                           # seconds its actions took, of the executor's example_s

    def finish(self, failure: str | None = None):
        self.state, self.failure = "done", failure
        if failure is None:
            self.prediction = final_answer(self.records)
            if self.prediction is None:
                self.failure = "no_result"


def classify(grounding: str, records: list[ActionRecord]) -> str | None:
    """None when every action ran, else the failure cause of this grounding."""
    if not grounding.strip():
        return "no_actions"
    if not records:
        return "unparsable_actions"
    for r in records:
        if r.error:
            if r.error.startswith(BUDGET_SPENT):
                return "tool_budget"
            return "execution_error" if r.tool else "unparsable_actions"
    return None


class Agent:
    """planner, grounder: backends (`complete(prompts, ids) -> list[Completion]`); executor: a
    lumos.agent.executor.Executor (`start(example) -> env`, `run(grounding, env) -> list[ActionRecord]`,
    `finish(env) -> outcome`); family: a key of prompts.GROUND_PREFIX ('maths', 'complex_qa', ...).
    max_new_tokens: {"planner": n, "grounder": n} per turn, passed to `complete` (None: each backend's
    own cap); max_example_tokens: generated tokens per example (None: no limit but max_rounds)."""

    def __init__(self, planner, grounder, executor, family: str = "maths", formulation: str = "iterative",
                 max_rounds: int = MAX_ROUNDS, max_new_tokens: dict | None = None,
                 max_example_tokens: int | None = None):
        assert formulation in ("iterative", "onetime"), formulation
        self.planner, self.grounder, self.executor = planner, grounder, executor
        self.family, self.formulation, self.max_rounds = family, formulation, max_rounds
        self.max_new_tokens, self.max_example_tokens = max_new_tokens, max_example_tokens

    def run(self, examples: Iterable, batch_size: int = 32) -> Iterator[Episode]:
        """Yield each example's finished Episode as soon as it is done (not in input order).
        `examples`: objects with .id, .question, .answer (lumos.agent.tasks.Example)."""
        todo, active = iter(examples), []
        while True:
            while len(active) < batch_size and (ex := next(todo, None)) is not None:
                env = self.executor.start(ex)   # first: a live page may state the task itself (MiniWoB's utterance)
                active.append(Episode(ex.id, ex.question, getattr(ex, "answer", None),
                                      plan_prompt=plan_prompt_first(ex.question, self.family), env=env))
            if not active:
                return
            self.plan_step([e for e in active if e.state == "plan"])
            self.ground_step([e for e in active if e.state == "ground"])
            for e in active:
                if e.state != "done" and self.max_example_tokens and e.n_tokens >= self.max_example_tokens:
                    e.finish("token_budget")
                if e.state == "done":
                    e.outcome = self.executor.finish(e.env)
                    for b in {id(x): x for x in (self.planner, self.grounder)}.values():
                        if hasattr(b, "forget"):  # a LocalBackend drops the example's kept keys/values
                            b.forget([e.id])
                    yield e
            active = [e for e in active if e.state != "done"]

    # -- planner ---------------------------------------------------------------------------------------
    def plan_step(self, eps: list[Episode]):
        """One planner call for every episode in `eps`; parse; move each to 'ground' or 'done'."""
        if not eps:
            return
        outs = self._call(self.planner, "planner", eps, [e.plan_prompt for e in eps])
        for e, c in zip(eps, outs):
            e.planner_calls += 1
            e.last_plan = c.text.strip()
            if c.finish_reason in _FINISH_FAILURE:
                e.finish(_FINISH_FAILURE[c.finish_reason])
                continue
            if self.formulation == "onetime":
                e.subgoals = parse_plan_onetime(c.text)
                if not e.subgoals:
                    e.finish("no_subgoal")
                    continue
                e.ground_prompt = ground_prompt_onetime(self.family, e.question, e.last_plan)
                e.state = "ground"
                continue
            step = parse_plan_step(c.text)
            if step.kind == "stop":
                e.finish()
            elif step.kind == "malformed":
                e.finish("no_subgoal")
            elif e.planner_calls >= self.max_rounds:
                e.finish("no_stop")
            else:
                e.subgoals.append(step.subgoal)
                # complex QA: the grounder also sees earlier QA answers (the paper lists only those)
                results = e.qa_results if self.family == "complex_qa" else None
                e.ground_prompt = (ground_prompt_first(self.family, e.question, step.subgoal) if len(e.subgoals) == 1
                                   else e.ground_prompt + ground_prompt_append(e.last_grounding, step.subgoal, results))
                e.state = "ground"

    # -- grounder + executor ---------------------------------------------------------------------------
    def ground_step(self, eps: list[Episode]):
        """One grounder call for every episode in `eps`; execute each grounding; back to 'plan' or 'done'."""
        if not eps:
            return
        outs = self._call(self.grounder, "grounder", eps, [e.ground_prompt for e in eps])
        for e, c in zip(eps, outs):
            e.last_grounding = c.text.strip()
            if c.finish_reason in _FINISH_FAILURE:
                e.finish(_FINISH_FAILURE[c.finish_reason])
                continue
            records = self.executor.run(e.last_grounding, e.env, e.tool_s) if e.last_grounding else []
            e.tool_s += sum(r.seconds for r in records)
            e.records += records
            e.steps[-1]["actions"] = [r.to_dict() for r in records]
            failure = classify(e.last_grounding, records)
            if failure or self.formulation == "onetime" or self.executor.done(e.env):   # done: e.g. bought
                e.finish(failure)
                continue
            value = clip(str(records[-1].result))
            if records[-1].tool == "QA":
                e.qa_results[len(e.subgoals)] = value
            e.plan_prompt += plan_prompt_append(e.last_plan, len(e.subgoals), value, self.family, e.subgoals[-1])
            e.state = "plan"

    def _call(self, backend, module: str, eps: list[Episode], prompts: list[str]) -> list[Completion]:
        if self.max_new_tokens is None:
            outs = backend.complete(prompts, [e.id for e in eps])
        else:
            outs = backend.complete(prompts, [e.id for e in eps], max_new_tokens=self.max_new_tokens[module])
        for e, p, c in zip(eps, prompts, outs):
            e.n_tokens += c.n_tokens
            e.steps.append({"module": module, "prompt": p, "generation": c.text, "n_tokens": c.n_tokens,
                            "finish_reason": c.finish_reason})
        return outs


def clip(text: str, n: int = MAX_FEEDBACK_CHARS) -> str:
    """A result as it goes back into a prompt: at most n characters (the trace keeps it whole)."""
    return text if len(text) <= n else text[:n] + f" ... ({len(text) - n} more characters)"


def answer_fn_from(backend) -> Callable[[str, list[str]], str]:
    """Wrap a backend as the QA tool's answering callable: (question, paragraphs) -> short answer.
    The paper asked GPT-3.5 with prompts.QA_USER; we ask the given backend the same question."""
    def answer(question: str, paragraphs: list[str]) -> str:
        text = backend.complete([prompts.qa_prompt(question, paragraphs)])[0].text.strip()
        return text.split(prompts.QA_ANSWER_PREFIX, 1)[-1].strip()
    return answer
