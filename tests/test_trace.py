"""The JSONL trace with text UTF-8 cannot encode: a lone surrogate in a generation (half of a UTF-16
pair) must neither crash the write nor any rerun that resumes the same file, and must read back as
the very same string."""
import json

import run_agent
from lumos.agent.backends import Completion
from lumos.agent.trace import Trace

LONE = "\ud83d"  # the first half of 😀's UTF-16 pair, alone


def test_lone_surrogates_round_trip(tmp_path):
    path = tmp_path / "t.jsonl"
    row = {"id": f"a{LONE}", "prediction": f"x{LONE}y", "steps": [{"generation": f"R1 = Calculator(1{LONE})",
                                                                   "k\udc80": ["\\", f"\\{LONE}", "ok"]}]}
    t = Trace(path)
    t.write(row)
    t.write({"id": "b", "prediction": "😀 fine"})
    t.close()
    raw = path.read_bytes()
    raw.decode("utf-8")                                   # valid UTF-8 throughout
    assert b"\\ud83d" in raw and "😀".encode() in raw     # escaped when lone, as is when paired
    again = Trace(path)                                   # a rerun: resumes, skips both ids
    assert again.rows == [row, {"id": "b", "prediction": "😀 fine"}] and again.done == {f"a{LONE}", "b"}
    again.write({"id": "c", "prediction": LONE})
    again.close()
    assert [json.loads(line)["id"] for line in path.read_bytes().splitlines()] == [f"a{LONE}", "b", "c"]


class Scripted:
    """Generations with a lone surrogate in them, as a byte-level decoder can produce."""

    def __init__(self, text):
        self.text = text

    def complete(self, prompts, ids=None, max_new_tokens=None):
        return [Completion(self.text, 2) for _ in prompts]


def test_run_agent_writes_and_resumes_a_trace_with_lone_surrogates(tmp_path, monkeypatch, capsys):
    planner, grounder = Scripted(f"Subgoal 1: Add {LONE}."), Scripted(f"R1 = Calculator(2 + {LONE})")
    monkeypatch.setattr(run_agent, "make_backends", lambda args, examples=None:
                        (planner, grounder, {"planner": "scripted", "grounder": "scripted"}))
    out = tmp_path / "trace.jsonl"
    argv = ["--task", "gsm8k", "--limit", "2", "--out", str(out)]
    assert run_agent.main(argv) == 0
    rows = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert len(rows) == 2 and rows[0]["steps"][0]["generation"] == f"Subgoal 1: Add {LONE}."
    assert rows[0]["steps"][1]["actions"][0]["text"] == f"R1 = Calculator(2 + {LONE})"
    assert run_agent.main(argv + ["--limit", "3"]) == 0     # the rerun resumes over it and adds one
    assert len(out.read_bytes().splitlines()) == 3
    capsys.readouterr()
