"""The Lumos dataset format: the reader's validation and errors, the writer, and the four turn structures."""
import json

import pytest

from lumos import prompts
from lumos.annotations.build import build_rows
from lumos.annotations.format import read_conversations, validate_row, write_jsonl

U, A = "user", "assistant"


def _row(*turns, id="x-0"):
    return {"dataset": "toy", "id": id, "messages": [{"role": r, "content": c} for r, c in turns]}


def test_roundtrip_keeps_unicode_and_line_separators(tmp_path):
    rows = [_row((U, "Task: 5 €\u2028 café?"), (A, "Subgoal 1: ok.")), _row((U, "q"), (A, "a"), (U, "q2"), (A, "a2"),
                                                                         id="x-1")]
    path = tmp_path / "d.jsonl"
    assert write_jsonl(path, rows) == 2
    assert read_conversations(path) == rows
    assert write_jsonl(path, rows[:1], append=True) == 1
    assert [r["id"] for r in read_conversations(path)] == ["x-0", "x-1", "x-0"]


def test_reader_reports_every_bad_row_with_file_and_line(tmp_path):
    good = _row((U, "q"), (A, "a"))
    lines = [
        json.dumps(good),                                            # 1 ok
        "{not json",                                                 # 2
        json.dumps({"id": "a", "messages": good["messages"]}),       # 3 no dataset
        json.dumps(_row((A, "a"), (U, "q"))),                        # 4 starts with assistant
        json.dumps(_row((U, "q"), (U, "q"))),                        # 5 two users
        json.dumps(_row((U, "q"), (A, "  "))),                       # 6 empty content
        json.dumps(_row((U, "q"))),                                  # 7 ends with the user
        "",                                                          # 8 blank: ignored
        json.dumps([1, 2]),                                          # 9 not an object
        json.dumps({**good, "messages": []}),                        # 10 no messages
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as e:
        read_conversations(path)
    msg = str(e.value)
    assert msg.startswith("8 bad row(s):")
    for lineno, why in [(2, "invalid JSON"), (3, "missing key(s) 'dataset'"), (4, "message 0 has role 'assistant', expected 'user'"),
                        (5, "message 1 has role 'user', expected 'assistant'"), (6, "message 1 (assistant) has empty"),
                        (7, "last message must be from the assistant"), (9, "expected a JSON object"),
                        (10, "'messages' must be a non-empty list")]:
        assert f"{path}:{lineno}: {why}" in msg
    assert f"{path}:1:" not in msg and f"{path}:8:" not in msg


def test_reader_non_strict_skips_and_reports(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(_row((U, "q"), (A, "a"))) + "\n" + json.dumps(_row((U, ""), (A, "a"))) + "\n")
    rows = read_conversations(path, strict=False)
    assert len(rows) == 1
    assert f"skipped {path}:2: message 0 (user) has empty content" in capsys.readouterr().err


def test_validate_row_ok_and_types():
    assert validate_row(_row((U, "q"), (A, "a"))) is None
    assert "non-empty string" in validate_row({**_row((U, "q"), (A, "a")), "id": 7})
    assert "'role' and 'content'" in validate_row({"dataset": "d", "id": "i", "messages": ["hi"]})


def test_four_turn_structures():
    task = "Natalia sold 48 clips in April and half as many in May. How many in total?"
    subgoals = ["Subgoal 1: Calculate how many clips Natalia sold in May.",
                "Subgoal 2: Calculate how many clips Natalia sold altogether."]
    actions = [["R1 = Calculator(48 / 2)"], ["R2 = Calculator(48 + R1)"]]
    rows = build_rows("gsm8k", "gsm8k-train-0", task, subgoals, actions, ["24", "72"])
    for r in rows.values():
        assert validate_row(r) is None and r["id"] == "gsm8k-train-0" and r["dataset"] == "gsm8k"
    first = ("Please provide a reasonable subgoal-based plan to solve the given task.\nTask: " + task +
             "; Initial Environment Description: None.")
    assert [m["content"] for m in rows["plan_iterative"]["messages"]] == [
        first, subgoals[0],
        "The executed result for Subgoal 1 is 24. Should we stop planning?",
        "No, I will keep planning. " + subgoals[1],
        "The executed result for Subgoal 2 is 72. Should we stop planning?",
        "Yes, I will stop planning."]
    assert [m["content"] for m in rows["plan_onetime"]["messages"]] == [first, "; ".join(subgoals)]
    prefix = prompts.GROUND_PREFIX["maths"]
    assert prefix.startswith("Please ground the given subgoal") and "'Calculator', 'SetEquation'" in prefix
    assert [m["content"] for m in rows["ground_iterative"]["messages"]] == [
        prefix + "Task: " + task + " \nSubgoal to be grounded: " + subgoals[0] + "\n", "R1 = Calculator(48 / 2)",
        "Subgoal to be grounded: " + subgoals[1] + "\n", "R2 = Calculator(48 + R1)"]
    assert [m["content"] for m in rows["ground_onetime"]["messages"]] == [
        prefix + "Task: " + task + " \nSubgoals to be grounded: " + "; ".join(subgoals) + "\n",
        "R1 = Calculator(48 / 2); R2 = Calculator(48 + R1)"]


def test_build_rows_rejects_mismatched_lists():
    with pytest.raises(ValueError, match="one actions list and one result per subgoal"):
        build_rows("d", "i", "t", ["Subgoal 1: a"], [["R1 = Calculator(1)"]], [])
    with pytest.raises(ValueError, match="at least one action"):
        build_rows("d", "i", "t", ["Subgoal 1: a"], [[]], ["1"])
