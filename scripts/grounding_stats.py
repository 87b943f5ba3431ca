"""Where a grounder's operands come from: the numbers of checkpoints/README.md's "What the numbers mean".

    python scripts/grounding_stats.py data data/gold/gsm8k_train.jsonl
        where the literal operands of the gold actions occur: in their own subgoal, in the question,
        in the question only once thousands commas are removed
    python scripts/grounding_stats.py model CKPT runs/v2/data/ground_onetime_val.jsonl
        a Lumos-O grounder on held-out grounding rows (gold subgoals in the prompt): answers right (its
        actions executed vs the gold actions executed), exact groundings, exact first actions, groundings
        with as many actions as the gold one, and the share of its literal operands found in the question
    python scripts/grounding_stats.py name-operands IN.jsonl OUT.jsonl GOLD.jsonl
        the ablation's data: each subgoal of a ground_onetime row gets its gold operands appended,
        "Subgoal 1: Calculate how many consonants are missing (numbers: 21, 1, 7)."
"""
import json
import re
import sys

NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")


def literals(text: str) -> list[str]:
    """The plain numbers of a text, R_j names removed: 'Calculator(R1 * 1 / 7)' -> ['1', '7']."""
    return NUMBER.findall(re.sub(r"R\d+", "", text))


def read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def data_stats(gold_path: str) -> None:
    n = in_subgoal = in_question = comma_only = 0
    for row in read_jsonl(gold_path):
        question = set(literals(row["question"]))
        no_commas = set(literals(re.sub(r"(?<=\d),(?=\d{3})", "", row["question"])))
        for subgoal, actions in zip(row["subgoals"], row["actions"]):
            own = set(literals(subgoal.split(":", 1)[1]))
            for x in literals(actions):
                n += 1
                in_subgoal += x in own
                in_question += x in no_commas
                comma_only += x in no_commas and x not in question
    print(f"{gold_path}: {n} literal operands; in their own subgoal {in_subgoal / n:.3f}, in the question "
          f"{in_question / n:.3f}, in the question only without thousands commas {comma_only} ({comma_only / n:.3%})")


def model_stats(ckpt: str, rows_path: str) -> None:
    from lumos.agent.backends import LocalBackend
    from lumos.agent.executor import final_answer, maths_executor
    from lumos.agent.tasks import numbers_match, parse_number
    from lumos.prompts import chat_prompt
    rows = read_jsonl(rows_path)
    prompts = [chat_prompt(r["messages"][0]["content"]) for r in rows]
    outs = LocalBackend(ckpt, batch_size=32, max_new_tokens=160).complete(prompts)
    ex = maths_executor()
    right = exact = first = same_len = found = total = 0
    for r, out in zip(rows, outs):
        gold, ours = r["messages"][1]["content"].strip(), out.text.strip()
        g_acts, o_acts = [a.strip() for a in gold.split(";")], [a.strip() for a in ours.split(";") if a.strip()]
        exact += ours == gold
        first += bool(o_acts) and o_acts[0] == g_acts[0]
        same_len += len(o_acts) == len(g_acts)
        pred = final_answer(ex.run(ours, {}))
        right += pred is not None and numbers_match(parse_number(pred), parse_number(final_answer(ex.run(gold, {}))))
        user = r["messages"][0]["content"]
        question = set(literals(user[user.find("Task:"):user.find("Subgoal")].replace(",", "")))
        nums = literals(ours)
        total, found = total + len(nums), found + sum(x in question for x in nums)
    n = len(rows)
    print(f"{ckpt} on {rows_path} ({n} rows): answers {right}/{n}, exact groundings {exact}/{n}, exact first "
          f"action {first}/{n}, as many actions as gold {same_len}/{n}, operands found in the question "
          f"{found}/{total} = {found / max(total, 1):.3f}")


def name_operands(in_path: str, out_path: str, gold_path: str) -> None:
    gold = {r["id"]: r for r in read_jsonl(gold_path)}
    with open(out_path, "w", encoding="utf-8") as f:
        for r in read_jsonl(in_path):
            g, user = gold[r["id"]], r["messages"][0]["content"]
            for subgoal, actions in zip(g["subgoals"], g["actions"]):
                ops = list(dict.fromkeys(literals(actions)))
                user = user.replace(subgoal, subgoal.rstrip(".") + (f" (numbers: {', '.join(ops)})." if ops else "."), 1)
            r["messages"][0]["content"] = user
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    modes = {"data": (data_stats, 1), "model": (model_stats, 2), "name-operands": (name_operands, 3)}
    if len(sys.argv) < 2 or sys.argv[1] not in modes or len(sys.argv) != 2 + modes[sys.argv[1]][1]:
        sys.exit(__doc__)
    modes[sys.argv[1]][0](*sys.argv[2:])
