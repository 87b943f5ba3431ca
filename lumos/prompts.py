"""The Lumos prompt strings, in one place.

Every string here is verbatim from the paper's code (allenai/lumos@146dd9d:
data/process_for_train.py for training, eval/*/run_eval.py for inference,
model/finetune.py for the chat serialisation); `data/lumos/prompt_templates.json`
holds the same strings and `tests/test_prompts.py` checks them character for character.
The data converter, the trainer and the agent all build their text from here.
"""

# ---------------------------------------------------------------------------
# Chat serialisation (open-instruct style), used by training.
# All turns are concatenated, then .strip()'d; each content is .strip()'d first.
# The loss covers an assistant turn's content + "</s>", and the "\n" after it where that "\n" is a
# token. The same string tokenises two ways: today's tokenizers give "</s>\n<|user|>" -> [2, 29871, 13,
# ...]; the released Lumos models were trained with transformers < 4.34, whose slow tokenizer dropped
# the whitespace around "</s>" -> [2, 529, ...]. lumos/train/tokenize.py has both
# (train.py --tokenization current | paper). Inference writes the same user turns, then the open
# assistant header: chat_prompt / chat_prompt_next below.
USER_TURN = "<|user|>\n{content}\n"
ASSISTANT_TURN = "<|assistant|>\n{content}</s>\n"
USER_HEADER = "<|user|>\n"
ASSISTANT_HEADER = "<|assistant|>\n"
EOS_TEXT = "</s>"

# ---------------------------------------------------------------------------
# Planning module
PLAN_USER_FIRST = ("Please provide a reasonable subgoal-based plan to solve the given task.\n"
                   "Task: {task}; Initial Environment Description: None.")
PLAN_KEEP_GOING = "No, I will keep planning. "          # + "Subgoal k: ..."
PLAN_STOP = "Yes, I will stop planning."
PLAN_FEEDBACK = "The executed result for Subgoal {j} is {result}. Should we stop planning?"
PLAN_FEEDBACK_WEB = "We have already {subgoal}. Should we stop planning?"  # subgoal text, first letter lowercased
SUBGOAL_SEP = "; "   # Lumos-O: all subgoal lines of a plan joined by "; "
ACTION_SEP = "; "    # a grounding: all actions "VARS = Name(args)" joined by "; "

# ---------------------------------------------------------------------------
# Grounding module
_GROUND_INTRO = ("Please ground the given subgoal to corresponding executable actions for solving the given "
                 "task. The grounded actions must be the one in available action list.\n\n")
GROUND_PREFIX = {
    "maths": _GROUND_INTRO + (
        "The available action list is 'Calculator', 'SetEquation', 'SolveEquation', 'Count', "
        "'SolveInequality', 'Code', and 'Define'.\nCalculator(formula): Calculate the input formula; "
        "SetEquation(equation): Set up an equation to be solved; SolveEquation(equation): Solve the previous "
        "set equation; Count(list): Count the number of elements in the given list; "
        "SolveInequality(inequality): Solve the previous set inequality; Code(pseudo_code): Generate a Python "
        "function that corresponds to the pseudo code; Define(variable/number): Define a variable or a number "
        "for latter usage.\n\n"),
    "complex_qa": _GROUND_INTRO + (
        "The available action list is 'KnowledgeQuery', 'ParagraphRetrieve', 'QA', 'Calculator', and 'Code'.\n"
        "Calculator(formula): Calculate the input formula; KnowledgeQuery(query): Capture the relevant webpages "
        "according to the query; ParagraphRetrieve(context, query): Given a query, retrieve the most relevant "
        "paragraphs from the given context; QA(context, query): Given context, answer the given query; "
        "Calculator(formula): Calculate the input formula; Code(pseudo_code): Generate a Python function that "
        "corresponds to the pseudo code.\n\n"),
    "web_agent": _GROUND_INTRO + (
        "The available action list is 'CLICK', 'TYPE', 'SELECT'.\nCLICK(Env, Query): Click the relevant html "
        "region in Env according to Query; TYPE(Env, Query, Text): Type Text into the relevant html region in "
        "Env according to Query; SELECT(Env, Query, Text): Select the value Text of the relevant selection box "
        "in Env according to Query.\n\n"),
    "webshop": _GROUND_INTRO + (
        "The available action list is 'Search', 'FeatureRetrieve', 'Pick' and 'Click'.\nSearch(Query): Search "
        "related items according to the Query; FeatureRetrieve(Feature_list, Query): Select the most relevant "
        "features from Feature_list according to Query; Pick(Item_names, Item_features, Query): Pick the most "
        "relevant item from Item_names according to Query, Item_names and Item_features; Click(Item): Click the "
        "Item to check more information.\n\n"),
}
# InterCode-SQL. Ours, not the paper's: the released code has no SQL grounding prompt, so this one follows the
# shape of the others, listing the action forms of the paper's SQL annotations (instruction_icode_sql).
GROUND_PREFIX["sql"] = _GROUND_INTRO + (
    "The available action list is 'SHOW TABLES', 'DESCRIBE', SQL fragments and 'SELECT'.\nSHOW TABLES: List the "
    "tables of the database; DESCRIBE table: List the columns of the table with their types; a SQL fragment "
    "(e.g. 'Name FROM singer', 'Age > 20', 'ORDER BY Age DESC'): Write one part of the final query; SELECT query: "
    "Execute the SQL query and return its rows.\n\n")
GROUND_TASK_LINE = "Task: {task} \n"                       # note the space before the newline
GROUND_ONE = "Subgoal to be grounded: {subgoal}\n"         # Lumos-I: one subgoal per turn
GROUND_ALL = "Subgoals to be grounded: {subgoals}\n"       # Lumos-O: all subgoals joined by "; "
GROUND_RESULTS_INTRO = " The grounding could be based on the following results:"  # complex QA, Lumos-I
GROUND_RESULT_ITEM = " The execution result for Subgoal {j} is {result}"

# ---------------------------------------------------------------------------
# The QA tool's question to a language model (complex QA), verbatim from eval/hotpotqa/qa_tool.py,
# where GPT-3.5 answered it; the agent asks its own backend, in a chat turn.
QA_USER = ("Please answer the following question according to the context. Please answer with one brief entity, "
           "beginning with 'Answer: '. If the answer can't be found in the context, answer 'No answer'. "
           "No more details and explanations.\n\nQuestion: {question}\nContext: {context}\n")
QA_ANSWER_PREFIX = "Answer: "

# ---------------------------------------------------------------------------
# NOT the paper's: the question our cross-encoder element ranker (lumos/agent/ranker.py) answers Yes/No,
# in place of MindAct's DeBERTa cross-encoder that Lumos called.
RANK_USER = "Query: {query}\nElement: {element}\nIs this the element the query means? Answer Yes or No."


# ---------------------------------------------------------------------------
# Small builders, so nobody re-types the strings above.

def user_turn(content: str) -> str:
    """'<|user|>\n{content}\n' with the content stripped: the one user turn, of training and inference alike."""
    return USER_TURN.format(content=content.strip())


def assistant_turn(content: str) -> str:
    """'<|assistant|>\n{content}</s>\n' with the content stripped (training; at inference the model writes it)."""
    return ASSISTANT_TURN.format(content=content.strip())


def chat_prompt(user: str) -> str:
    """What a model completes: one user turn and the open assistant header, '<|user|>\n{user}\n<|assistant|>\n'."""
    return user_turn(user) + ASSISTANT_HEADER


def chat_prompt_next(generation: str, user: str) -> str:
    """What Lumos-I appends to a prompt after the model's generation: the generation (stripped), then
    "\n\n" and the next chat_prompt. The paper's eval joined turns so, without the "</s>\n" of training."""
    return generation.strip() + "\n\n" + chat_prompt(user)


def plan_user_first(task: str) -> str:
    """First user turn of the planner (both formulations)."""
    return PLAN_USER_FIRST.format(task=task)


def plan_feedback(j: int, result: str, family: str = "maths", subgoal: str = "") -> str:
    """Lumos-I planner feedback after Subgoal j was executed.

    Web tasks say what was done instead of a value: 'We have already <subgoal text>. ...'.
    """
    if family == "web_agent":
        text = subgoal.split(":", 1)[-1].strip().rstrip(".")
        return PLAN_FEEDBACK_WEB.format(subgoal=text[:1].lower() + text[1:])
    if family == "webshop":
        return PLAN_FEEDBACK_WEBSHOP.format(j=j, result=result)
    return PLAN_FEEDBACK.format(j=j, result=result)


# ---------------------------------------------------------------------------
# WebShop: Lumos was not trained on it; its eval (allenai/lumos eval/webshop/run_eval.py) puts two
# worked examples (data/lumos/webshop_incontext_exemplars.json) before every planner and grounder
# conversation, and feeds results back without the stop question. Note the exemplars say "execution
# result" and end with ".", the live turns "executed result" and nothing: both verbatim.
PLAN_FEEDBACK_WEBSHOP = "The executed result for Subgoal {j} is {result}"
_SHOT_FEEDBACK = "The execution result for Subgoal {j} is {result}."
_SHOTS: dict[str, str] = {}


def webshop_shots(role: str) -> str:
    """The 2-shot prefix of the WebShop planner ('planner') or grounder ('grounder') prompt, built from
    the exemplars exactly as run_eval.py builds it; the live conversation follows it."""
    if role not in _SHOTS:
        import json
        from pathlib import Path
        ex = json.loads((Path(__file__).resolve().parents[1] / "data/lumos/webshop_incontext_exemplars.json")
                        .read_text(encoding="utf-8"))
        plan = ground = ""
        for p, g in zip(ex["PLAN_EXAMPLARS"], ex["GROUND_EXAMPLARS"]):
            plan += chat_prompt(plan_user_first(p["instruction"].strip()))
            subgoals = []
            for j, piece in enumerate(p["subgoals"].split("; Subgoal "), 1):
                text, result = (piece if j == 1 else "Subgoal " + piece).split(" || Results: ")
                plan += chat_prompt_next(text, _SHOT_FEEDBACK.format(j=j, result=result.strip(".")))
                subgoals.append(text)
            plan += "\n\n"
            actions = [ACTION_SEP.join(a[a.find(":") + 1:].strip() for a in ("Action " + piece).split(" || "))
                       for piece in g["actions"].split("; Action ")]
            ground += chat_prompt(ground_user_first("webshop", g["instruction"].strip(), subgoals[0])) + actions[0]
            for subgoal, acts in zip(subgoals[1:], actions[1:]):
                ground += "\n\n" + chat_prompt(ground_user_next(subgoal)) + acts
            ground += "\n\n"
        _SHOTS.update(planner=plan, grounder=ground)
    return _SHOTS[role]


def strip_shots(prompt: str) -> str:
    """`prompt` without a leading WebShop 2-shot prefix (the gold backend counts the live turns only)."""
    for role in ("planner", "grounder"):
        if prompt.startswith(webshop_shots(role)):
            return prompt[len(webshop_shots(role)):]
    return prompt


def ground_user_first(family: str, task: str, subgoal: str) -> str:
    """First user turn of the Lumos-I grounder: prefix, task line, the first subgoal."""
    return GROUND_PREFIX[family] + GROUND_TASK_LINE.format(task=task) + GROUND_ONE.format(subgoal=subgoal)


def ground_user_next(subgoal: str, results: list[str] | dict[int, str] | None = None) -> str:
    """Later Lumos-I grounder turns. For complex QA, `results` (one per earlier subgoal, or a dict
    subgoal number -> result when only some subgoals have one, as the paper lists only QA answers) are appended."""
    if not results:
        return GROUND_ONE.format(subgoal=subgoal)
    pairs = sorted(results.items()) if isinstance(results, dict) else enumerate(results, 1)
    items = "".join(GROUND_RESULT_ITEM.format(j=j, result=r) for j, r in pairs)
    return GROUND_ONE.format(subgoal=subgoal + GROUND_RESULTS_INTRO + items)


def ground_user_onetime(family: str, task: str, subgoals: list[str]) -> str:
    """The single user turn of the Lumos-O grounder: all subgoals joined by '; '."""
    return (GROUND_PREFIX[family] + GROUND_TASK_LINE.format(task=task)
            + GROUND_ALL.format(subgoals=SUBGOAL_SEP.join(subgoals)))


def qa_prompt(question: str, paragraphs: list[str]) -> str:
    """The QA tool's whole prompt to a chat-tuned backend: one user turn, then the assistant header."""
    return chat_prompt(QA_USER.format(question=question.strip(), context="\n".join(p.strip() for p in paragraphs)))
