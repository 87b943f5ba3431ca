"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1; the gold backend's replay."""
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lumos import prompts
from lumos.agent.backends import BackendError, GoldBackend, OpenAIBackend
from lumos.hub import HubError, resolve_checkpoint
from lumos.agent.grounder import ground_prompt_append, ground_prompt_first, ground_prompt_onetime
from lumos.agent.planner import plan_prompt_append, plan_prompt_first


class Server:
    """A tiny /v1 server: /models lists one model; /completions echoes a canned continuation.
    `fail_next` makes the next N completion requests answer HTTP 500."""

    def __init__(self):
        self.requests, self.fail_next = [], 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "lumos-test"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, body, self.headers.get("Authorization")))
                if outer.fail_next:
                    outer.fail_next -= 1
                    return self._send(500, {"error": "busy"})
                text = "Subgoal 1: " + body["prompt"][-12:-1].upper()
                self._send(200, {"choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
                                 "usage": {"completion_tokens": 7}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_openai_backend_request_shape_and_retry():
    with Server() as srv:
        b = OpenAIBackend(srv.url, api_key="k", backoff=0.01, retries=3, batch_size=4)
        assert b.model == "lumos-test" and b.base == srv.url + "/v1"
        outs = b.complete(["<|user|>\nabcdefghijklmn\n", "<|user|>\nzyxwvutsrqpo\n"])
        assert [o.text for o in outs] == ["Subgoal 1: DEFGHIJKLMN", "Subgoal 1: YXWVUTSRQPO"]
        assert [o.n_tokens for o in outs] == [7, 7]
        path, body, auth = srv.requests[0]
        assert path == "/v1/completions" and auth == "Bearer k"
        assert body["max_tokens"] == 512 and body["temperature"] == 0 and body["stop"] == ["\n"]
        assert body["model"] == "lumos-test"
        srv.fail_next = 1                 # a 500, then success on the retry
        n = len(srv.requests)
        assert b.complete(["<|user|>\nabcdefghijklmn\n"])[0].text == "Subgoal 1: DEFGHIJKLMN"
        assert len(srv.requests) == n + 2
        srv.fail_next = 5                 # more 500s than retries: a one-line BackendError
        with pytest.raises(BackendError, match="HTTP 500; gave up after 3 attempts"):
            b.complete(["x"])


def test_openai_backend_unreachable_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                             # nothing listens there now
    with pytest.raises(BackendError, match=f"cannot reach http://127.0.0.1:{port}/v1/models"):
        OpenAIBackend(f"http://127.0.0.1:{port}/v1/", retries=2, backoff=0.01, timeout=2)


GOLD = {"gsm8k-test-0": {"id": "gsm8k-test-0", "question": "Q0", "answer": "18",
                         "subgoals": ["Subgoal 1: Count the eggs left.", "Subgoal 2: Calculate the money."],
                         "actions": ["R1 = Calculator(16 - 3 - 4)", "R2 = Calculator(R1 * 2)"],
                         "results": ["9", "18"]}}


def test_gold_backend_iterative_replay():
    plan, ground = GoldBackend(GOLD, "planner", "iterative"), GoldBackend(GOLD, "grounder", "iterative")
    ids = ["gsm8k-test-0"]
    p = plan_prompt_first("Q0")
    g1 = plan.complete([p], ids)[0].text
    assert g1 == "Subgoal 1: Count the eggs left."
    gp = ground_prompt_first("maths", "Q0", g1)
    a1 = ground.complete([gp], ids)[0].text
    assert a1 == "R1 = Calculator(16 - 3 - 4)"
    p += plan_prompt_append(g1, 1, "9")
    g2 = plan.complete([p], ids)[0].text
    assert g2 == prompts.PLAN_KEEP_GOING + "Subgoal 2: Calculate the money."
    gp += ground_prompt_append(a1, "Subgoal 2: Calculate the money.")
    assert ground.complete([gp], ids)[0].text == "R2 = Calculator(R1 * 2)"
    p += plan_prompt_append(g2, 2, "18")
    assert plan.complete([p], ids)[0].text == "Yes, I will stop planning."
    assert plan.complete([p], ["unknown-id"])[0].finish_reason == "no_gold"
    with pytest.raises(BackendError, match="by example id"):
        plan.complete([p])


def test_gold_backend_onetime_replay():
    plan, ground = GoldBackend(GOLD, "planner", "onetime"), GoldBackend(GOLD, "grounder", "onetime")
    g = plan.complete([plan_prompt_first("Q0")], ["gsm8k-test-0"])[0].text
    assert g == "Subgoal 1: Count the eggs left.; Subgoal 2: Calculate the money."
    a = ground.complete([ground_prompt_onetime("maths", "Q0", g)], ["gsm8k-test-0"])[0].text
    assert a == "R1 = Calculator(16 - 3 - 4); R2 = Calculator(R1 * 2)"


def test_missing_checkpoint_is_one_clear_error(tmp_path, monkeypatch):
    from lumos import hub
    from lumos.model import smollm2  # noqa: F401  (resolve_checkpoint imports it: not part of the timing)

    def no_network(*a, **k):
        raise AssertionError("a local-looking path must not reach the hub")
    monkeypatch.setattr(hub, "download", no_network)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    # a mistyped path (absolute, ./, ~/, or under a directory that exists here): at once, no download
    for spec in (str(tmp_path / "nope"), "./nope", "~/surely-not-here-lumos", "checkpoints/nope", "../x/y"):
        t = time.perf_counter()
        with pytest.raises(HubError, match=r"^checkpoint .*: no such directory$"):
            resolve_checkpoint(spec)
        assert time.perf_counter() - t < 0.5
    with pytest.raises(HubError, match="not found"):  # neither a path nor a hub id
        resolve_checkpoint("nope")
    (tmp_path / "f.bin").write_text("x")
    with pytest.raises(HubError, match="is a file"):
        resolve_checkpoint(str(tmp_path / "f.bin"))
    assert resolve_checkpoint(str(tmp_path)) == tmp_path


def test_run_agent_over_an_openai_endpoint(tmp_path):
    import json as _json
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parents[1]))
    import run_agent
    with Server() as srv:
        out = tmp_path / "o.jsonl"
        assert run_agent.main(["--task", "svamp", "--backend", "openai", "--url", srv.url, "--limit", "3",
                               "--out", str(out)]) == 0
        rows = [_json.loads(line) for line in out.read_text().splitlines()]
        assert [r["id"] for r in sorted(rows, key=lambda r: r["id"])] == [f"svamp-test-{i}" for i in range(3)]
        for r in rows:  # the canned server plans one subgoal, then "grounds" it with a subgoal: unparsable
            assert [s["module"] for s in r["steps"]] == ["planner", "grounder"]
            assert r["failure"] == "unparsable_actions" and r["n_tokens"] == 14
        prompts_sent = [b["prompt"] for _, b, _ in srv.requests]
        assert sum(p.startswith("<|user|>\nPlease provide a reasonable") for p in prompts_sent) == 3
        assert sum(p.startswith("<|user|>\nPlease ground the given subgoal") for p in prompts_sent) == 3


def test_hub_ids_without_huggingface_hub_are_one_line(monkeypatch, tmp_path):
    import sys
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)    # as if not installed (an optional dependency)
    with pytest.raises(HubError, match=r"failed: downloading from the hub needs huggingface_hub: pip install huggingface_hub$"):
        resolve_checkpoint("ai2lumos/lumos_maths_plan_iterative")
