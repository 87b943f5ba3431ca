"""lumos.http.request against a real HTTP server on 127.0.0.1 that answers from a script of statuses."""
import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest

from lumos import http


class Script(BaseHTTPRequestHandler):
    """Answers request n with server.script[n] = (status, headers) (the last entry repeats) and body {"n": n}."""

    def do_GET(self):
        srv = self.server
        status, headers = srv.script[min(srv.hits, len(srv.script) - 1)]
        body = json.dumps({"n": srv.hits, "path": self.path}).encode()
        srv.hits += 1
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Script)
    srv.script, srv.hits = [(200, {})], 0
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/api"
    Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                               # nothing listens there now
    return port


def test_500_then_200_is_retried_with_backoff(server):
    server.script = [(500, {}), (200, {})]
    slept, logged = [], []
    r = http.request("GET", server.url, params={"q": "x"}, retries=3, backoff=0.5, timeout=2,
                     sleep=slept.append, log=logged.append)
    assert r.status_code == 200 and r.json() == {"n": 1, "path": "/api?q=x"}
    assert server.hits == 2 and slept == [0.5]
    assert logged == [f"attempt 1/4: HTTP 500 from {server.url}; retrying in 0.5 s"]


def test_429_honours_numeric_retry_after_capped_by_max_backoff(server):
    server.script = [(429, {"Retry-After": "7"}), (429, {"Retry-After": "30"}),
                     (503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), (200, {})]
    slept = []
    r = http.request("POST", server.url, json={"a": 1}, retries=5, backoff=1.0, max_backoff=10, timeout=2,
                     sleep=slept.append)
    assert r.status_code == 200 and server.hits == 4
    assert slept == [7.0, 10, 4.0]    # the server's 7 s; 30 s capped at 10; a date is ignored: 1 * 2**2


def test_persistent_5xx_gives_up_with_one_line(server):
    server.script = [(503, {})]
    slept, calls = [], []
    with pytest.raises(http.HTTPRetryError) as e:
        http.request("GET", server.url, retries=3, backoff=1.0, max_backoff=3, timeout=2, sleep=slept.append,
                     before=lambda: calls.append(1))
    assert str(e.value) == f"{server.url}: HTTP 503; gave up after 4 attempts"
    assert (e.value.status, e.value.attempts, e.value.cause) == (503, 4, "HTTP 503")
    assert server.hits == 4 and len(calls) == 4 and slept == [1.0, 2.0, 3]


def test_unreachable_port_is_retried_then_raises():
    url = f"http://127.0.0.1:{_free_port()}/v1/models"
    slept = []
    with pytest.raises(http.HTTPRetryError) as e:
        http.request("GET", url, retries=2, backoff=0.25, timeout=2, sleep=slept.append)
    assert str(e.value) == f"{url}: ConnectionError; gave up after 3 attempts" and "\n" not in str(e.value)
    assert e.value.status is None and slept == [0.25, 0.5]


def test_read_timeout_is_retried():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)                                          # accepts connections, never answers
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        with pytest.raises(http.HTTPRetryError, match="ReadTimeout; gave up after 2 attempts"):
            http.request("GET", url, retries=1, backoff=0.0, timeout=0.2, sleep=lambda s: None)
    finally:
        sock.close()


def test_404_is_returned_not_retried(server):
    server.script = [(404, {})]
    slept = []
    r = http.request("GET", server.url, retries=5, backoff=1.0, timeout=2, sleep=slept.append)
    assert r.status_code == 404 and server.hits == 1 and slept == []
