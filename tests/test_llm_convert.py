"""The paper's LLM conversion pipeline against a real HTTP server on 127.0.0.1 (canned, garbled, 429, 500)."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lumos import prompts
from lumos.annotations import llm
from lumos.annotations.format import read_conversations

GOOD = {  # question -> the reply a model would give (the paper's format, with an 'Output' final variable)
    "Q-good": "Subgoal 1: Calculate how much the soda costs in total.\nAction 1-1: R1 = Calculator(2 - 0.5) = 1.5\n\n"
              "Subgoal 2: Calculate the ounces of soda.\nAction 2-1: Output = Calculator(R1 / 0.25) = 6\n",
    "Q-429": "Subgoal 1: Calculate the tennis balls Ralph didn't hit.\nAction 1-1: R1 = Calculator(1 - 2/5) = 3/5\n"
             "Action 1-2: R2 = Calculator(100 * R1) = 60\n",
    "Q-500": "Subgoal 1: Set up the equation.\nAction 1-1: R1, R2 = SolveEquation(x + y = 3, x - y = 1) = 2, 1\n",
}
GARBLED = "Sure! Here is the plan: first compute stuff, then answer 42."


class Handler(BaseHTTPRequestHandler):
    calls: dict = {}

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        task = prompt.rsplit("Task: ", 1)[1].split("\n", 1)[0]
        n = self.calls[task] = self.calls.get(task, 0) + 1
        assert self.headers["Authorization"] == "Bearer test-key"
        assert body["model"] == "canned" and "Natural language plan:\nplan of " + task in prompt
        if task == "Q-429" and n == 1:
            return self._send(429, {"error": "slow down"}, {"Retry-After": "0"})
        if (task == "Q-500" and n <= 2) or task == "Q-down":
            return self._send(500, {"error": "boom"})
        if task == "Q-not-json":
            self.send_response(200)
            self.end_headers()
            return self.wfile.write(b"<html>gateway</html>")
        reply = GOOD.get(task, GARBLED)
        self._send(200, {"choices": [{"message": {"role": "assistant", "content": reply}}]})

    def _send(self, code, obj, headers=()):
        data = json.dumps(obj).encode()
        self.send_response(code)
        for k, v in dict(headers).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    Handler.calls = {}
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def _input(tmp_path, questions):
    path = tmp_path / "toy" / "train.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps({"question": q, "answer": f"plan of {q}\n#### 1"}) + "\n" for q in questions))
    return path


def _client(url, **kw):
    return llm.Client(url, "canned", "test-key", rpm=0, timeout=5, max_retries=3, backoff=0.01, log=lambda m: None,
                      **kw)


def test_pipeline_retries_skips_garbled_and_resumes(server, tmp_path):
    inp = _input(tmp_path, ["Q-good", "Q-garbled", "Q-429", "Q-500", "Q-down", "Q-not-json"])
    out = tmp_path / "out"
    counts = llm.run("maths", inp, out, _client(server), quiet=True)
    assert counts == {"written": 3, "skipped_done": 0, "garbled": 2, "failed": 1}
    assert Handler.calls == {"Q-good": 1, "Q-garbled": 1, "Q-429": 2, "Q-500": 3, "Q-down": 4, "Q-not-json": 1}

    rows = {k: read_conversations(out / f"lumos_maths_{k}.jsonl") for k in llm.KINDS}
    assert [r["id"] for r in rows["plan_onetime"]] == ["toy-train-0", "toy-train-2", "toy-train-3"]
    plan_i = rows["plan_iterative"][0]["messages"]
    assert [m["content"] for m in plan_i] == [
        prompts.plan_user_first("Q-good"), "Subgoal 1: Calculate how much the soda costs in total.",
        prompts.plan_feedback(1, "1.5"), "No, I will keep planning. Subgoal 2: Calculate the ounces of soda.",
        prompts.plan_feedback(2, "6"), prompts.PLAN_STOP]
    assert rows["ground_onetime"][0]["messages"][1]["content"] == "R1 = Calculator(2 - 0.5); R2 = Calculator(R1 / 0.25)"
    assert rows["ground_iterative"][1]["messages"][1]["content"] == "R1 = Calculator(1 - 2/5); R2 = Calculator(100 * R1)"
    assert rows["ground_onetime"][2]["messages"][1]["content"] == "R1, R2 = SolveEquation(x + y = 3, x - y = 1)"
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert {(e["id"], e["error"]) for e in errors} == {("toy-train-1", "garbled"), ("toy-train-4", "failed"),
                                                      ("toy-train-5", "garbled")}
    assert errors[0]["reply"] == GARBLED

    # rerun: finished ids are not requested again; the failed and garbled ones are retried
    Handler.calls = {}
    counts = llm.run("maths", inp, out, _client(server), quiet=True)
    assert counts["skipped_done"] == 3 and counts["written"] == 0
    assert set(Handler.calls) == {"Q-garbled", "Q-down", "Q-not-json"}
    assert len(read_conversations(out / "lumos_maths_plan_onetime.jsonl")) == 3


def test_resume_repairs_a_half_written_example(server, tmp_path):
    inp = _input(tmp_path, ["Q-good", "Q-429"])
    out = tmp_path / "out"
    llm.run("maths", inp, out, _client(server), quiet=True, limit=1)
    # simulate a crash while writing example 1: one file got its row (torn), the others did not
    with open(out / "lumos_maths_plan_onetime.jsonl", "a") as f:
        f.write('{"dataset": "toy", "id": "toy-train-1", "messa')
    Handler.calls = {}
    counts = llm.run("maths", inp, out, _client(server), quiet=True)
    assert counts == {"written": 1, "skipped_done": 1, "garbled": 0, "failed": 0}
    for k in llm.KINDS:
        assert [r["id"] for r in read_conversations(out / f"lumos_maths_{k}.jsonl")] == ["toy-train-0", "toy-train-1"]


def test_fatal_http_error_stops_but_keeps_rows(tmp_path):
    class Deny(Handler):
        def do_POST(self):
            self._send(401, {"error": "bad key"})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Deny)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with pytest.raises(llm.FatalHTTPError, match="401"):
            llm.run("maths", _input(tmp_path, ["Q-good"]), tmp_path / "o",
                    _client(f"http://127.0.0.1:{srv.server_address[1]}"), quiet=True)
    finally:
        srv.shutdown()
        srv.server_close()


def test_rate_limit_spaces_requests(server, tmp_path):
    import time
    client = llm.Client(server, "canned", "test-key", rpm=600, max_retries=0, log=lambda m: None)  # 0.1 s apart
    t0 = time.monotonic()
    for _ in range(4):
        client.complete("Task: Q-good\n\nNatural language plan:\nplan of Q-good\n")
    assert time.monotonic() - t0 >= 0.3


def test_timeout_is_retried(tmp_path):
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)                                  # accepts connections, never answers
    try:
        client = llm.Client(f"http://127.0.0.1:{sock.getsockname()[1]}", "m", None, rpm=0, timeout=0.2,
                            max_retries=1, backoff=0.01, log=lambda m: None)
        with pytest.raises(RuntimeError, match="gave up after 2 attempts"):
            client.complete("x")
        assert client.n_requests == 2
    finally:
        sock.close()


def test_parse_reply_rejects_garbage():
    for bad in ["", "Subgoal 2: skipped one\nAction 2-1: R1 = Calculator(1)",
                "Subgoal 1: no action here", "Subgoal 1: x\nAction 1-1: Calculator(1 + 1)",
                "Subgoal 1: x\nAction 1-1: R1 = Calculator((1 + 1) = 2", "Subgoal 1: x\nAction 2-1: R1 = Calculator(1)"]:
        with pytest.raises(llm.ParseError):
            llm.parse_reply(bad)


def test_paper_examples_parse():
    """Every maths example of the paper's own conversion prompt parses, values included."""
    text = json.loads(llm.PROMPTS_PATH.read_text())["instruction_maths_gsm"]
    plans = [b.split("\nExample")[0].split("\nNow please")[0] for b in text.split("Subgoal-based plan:\n")[1:]]
    parsed = [llm.parse_reply(p) for p in plans]
    assert len(parsed) == 6
    assert parsed[2][1][4] == ["R5 = SolveEquation(R2 = R4)"] and parsed[2][2][1] == "2p/5"
    assert parsed[3][1][0] == ["R1 = Calculator(1 - 2/5)", "R2 = Calculator(100 * R1)"] and parsed[3][2][0] == "60"


def test_actions_parse_as_the_executor_parses_them():
    """One action parser (executor.parse_action). llm.py's own copy refused the paper's web-agent examples
    ('R1 = CLICK(Env, QUERY: ...).': the full stop after the call) and kept the full stop in a stated
    value ('= 3.'); both now read as the agent reads a grounding."""
    prompts = json.loads(llm.PROMPTS_PATH.read_text())
    web = [b.split("\nExample")[0].split("\nNow please")[0]
           for b in prompts["instruction_web_agent"].split("Subgoal-based plan:\n")[1:]]
    subgoals, actions, _ = llm.parse_reply(web[0])
    assert actions[0][0] == "R1 = CLICK(Env, QUERY: Enter the site for flight + cruise)"
    qa = [b.split("\nExample")[0].split("\nNow please")[0] for b in prompts["instruction_qa"].split("Subgoal-based plan:\n")[1:]]
    _, actions, results = llm.parse_reply(qa[0])
    assert actions[0][2] == "R3 = QA([R2], Question: How many kids did Julius Caesar have?)" and results[0] == "3"
    # quotes hide brackets (the old copy counted the "(" inside the question and called it unbalanced)
    _, actions, results = llm.parse_reply('Subgoal 1: x\nAction 1-1: R1 = QA([R2], Question: "Why (not)?") = yes.')
    assert actions == [['R1 = QA([R2], Question: "Why (not)?")']] and results == ["yes"]


def test_cli_reads_key_from_environment(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    inp = _input(tmp_path, ["Q-good", "Q-garbled"])
    llm.main(["--task", "maths", "--input", str(inp), "--out", str(tmp_path / "o"), "--base-url", server,
              "--model", "canned", "--rpm", "0", "--backoff", "0.01"])
    assert json.loads(capsys.readouterr().err.strip().splitlines()[-1]) == \
        {"written": 1, "skipped_done": 0, "garbled": 1, "failed": 0}
    assert [r["id"] for r in read_conversations(tmp_path / "o" / "lumos_maths_ground_iterative.jsonl")] == ["toy-train-0"]
