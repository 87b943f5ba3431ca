"""Complex-QA tools: BM25, ParagraphRetrieve, QA, and KnowledgeQuery offline and against a real
HTTP server on 127.0.0.1 that speaks the MediaWiki API (search, extracts, 500s, timeouts)."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from lumos.tools import ToolError
from lumos.tools.bm25 import BM25
from lumos.tools.qa import QA, KnowledgeQuery, ParagraphRetrieve

PAGES = {
    "Julius Caesar": "Julius Caesar was a Roman general and statesman.\n== Family ==\n"
                     "Caesar had three children.\nHe was assassinated on the Ides of March.",
    "Genghis Khan": "Genghis Khan was the founder of the Mongol Empire.\nGenghis Khan had sixteen children.",
}


def test_bm25_ranks_by_rare_shared_words():
    docs = ["the cat sat on the mat", "dogs chase cats", "a cat and a dog and a cat", "quantum chromodynamics"]
    bm = BM25(docs)
    s = bm.scores("cat")
    assert s[3] == 0 and s[1] == 0 and s[2] > s[0] > 0       # 'cats' != 'cat'; more mentions win
    assert bm.top("quantum cat", 2) == [3, 2]
    assert BM25([]).top("x", 3) == []


def test_paragraph_retrieve_top_k_and_context_forms():
    env = {"R1": PAGES["Julius Caesar"], "R4": PAGES["Genghis Khan"]}
    pr = ParagraphRetrieve(top_k=1)
    assert pr("R1, Query: How many children did Caesar have?", env) == "Caesar had three children."
    two = ParagraphRetrieve(top_k=2)("[R1, R4], Query: children, sixteen or three?", env).split("\n")
    # both share 'children' plus one rare word; BM25's length normalisation puts the shorter first
    assert two == ["Caesar had three children.", "Genghis Khan had sixteen children."]
    assert "== Family ==" not in ParagraphRetrieve(top_k=10)("R1, Query: family", env)
    with pytest.raises(ToolError, match="expected"):
        pr("R1", env)
    with pytest.raises(ToolError, match="undefined variable R9"):
        pr("R9, Query: x", env)


def test_qa_calls_the_backend_with_question_and_paragraphs():
    calls = []

    def answer_fn(question, paragraphs):
        calls.append((question, paragraphs))
        return "  three\n"

    env = {"R2": "Caesar had three children.", "R5": "Genghis Khan had sixteen children."}
    assert QA(answer_fn)("[R2, R5], Question: Who had more kids, Caesar or Khan?", env) == "three"
    assert calls == [("Who had more kids, Caesar or Khan?", [env["R2"], env["R5"]])]
    with pytest.raises(ToolError, match="QA backend failed: RuntimeError: cuda oom"):
        QA(lambda q, p: (_ for _ in ()).throw(RuntimeError("cuda oom")))("[R2], Question: q", env)
    with pytest.raises(ToolError, match="empty answer"):
        QA(lambda q, p: "")("[R2], Question: q", env)


def test_knowledge_query_offline_corpus(tmp_path):
    (tmp_path / "Julius Caesar.txt").write_text(PAGES["Julius Caesar"])
    (tmp_path / "more.jsonl").write_text(json.dumps({"title": "Genghis Khan", "text": PAGES["Genghis Khan"]}) + "\n")
    kq = KnowledgeQuery(corpus_dir=tmp_path)
    assert kq("julius caesar") == PAGES["Julius Caesar"]               # exact title, any case
    assert kq("Mongol Empire founder") == PAGES["Genghis Khan"] and kq.last_title == "Genghis Khan"
    with pytest.raises(ToolError, match="no page found"):
        kq("photosynthesis")
    (tmp_path / "bad.jsonl").write_text('{"title": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        KnowledgeQuery(corpus_dir=tmp_path)


class FakeWikipedia(BaseHTTPRequestHandler):
    """list=search -> the page sharing most words with srsearch; prop=extracts -> its text.
    server.fail_first: answer that many requests with HTTP 500 first; server.sleep: stall that long."""

    def do_GET(self):
        srv = self.server
        srv.hits += 1
        q = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        if srv.sleep:
            time.sleep(srv.sleep)
        if srv.fail_first > 0:
            srv.fail_first -= 1
            return self.reply(500, b"oops")
        if srv.status != 200:
            return self.reply(srv.status, b"{}")
        if q.get("list") == "search":
            words = set(q["srsearch"].lower().split())
            best = max(PAGES, key=lambda t: len(words & set(t.lower().split())))
            hits = [{"title": best}] if words & set(best.lower().split()) else []
            body = {"batchcomplete": "", "query": {"searchinfo": {"totalhits": len(hits)}, "search": hits}}
        elif q.get("prop") == "extracts":
            t = q["titles"]
            body = {"query": {"pages": {"17": {"pageid": 17, "ns": 0, "title": t, "extract": PAGES.get(t, "")}}}}
        else:
            return self.reply(400, b"{}")
        self.reply(200, json.dumps(body).encode())

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):    # the client timed out first: expected
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def wiki():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeWikipedia)
    srv.daemon_threads, srv.block_on_close = True, False
    srv.hits, srv.fail_first, srv.sleep, srv.status = 0, 0, 0.0, 200
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/w/api.php"
    yield srv
    srv.shutdown()
    srv.server_close()


def test_knowledge_query_over_http_with_cache(wiki, tmp_path):
    kq = KnowledgeQuery(api_url=wiki.url, cache_dir=tmp_path / "cache", timeout=2, retries=0)
    assert kq("Genghis Khan") == PAGES["Genghis Khan"] and kq.last_title == "Genghis Khan"
    assert wiki.hits == 2                                   # search + extracts
    again = KnowledgeQuery(api_url=wiki.url, cache_dir=tmp_path / "cache", timeout=2, retries=0)
    assert again("Genghis Khan") == PAGES["Genghis Khan"]
    assert wiki.hits == 2 and again.n_requests == 0         # served from the on-disk cache
    with pytest.raises(ToolError, match="no Wikipedia page found"):
        kq("photosynthesis")


def test_knowledge_query_retries_500s_then_succeeds(wiki):
    wiki.fail_first = 2
    kq = KnowledgeQuery(api_url=wiki.url, timeout=2, retries=2, backoff=0.01)
    assert kq("Julius Caesar") == PAGES["Julius Caesar"]
    assert wiki.hits == 4                                   # 500, 500, search, extracts


def test_knowledge_query_gives_up_cleanly(wiki):
    wiki.fail_first = 100
    kq = KnowledgeQuery(api_url=wiki.url, timeout=2, retries=2, backoff=0.01)
    with pytest.raises(ToolError, match=r"unreachable after 3 tries \(HTTP 500\)"):
        kq("Julius Caesar")
    wiki.fail_first, wiki.status = 0, 404                   # a 4xx is not retried
    with pytest.raises(ToolError, match="HTTP 404"):
        kq("Julius Caesar")
    assert wiki.hits == 4


def test_knowledge_query_timeout_is_bounded(wiki):
    wiki.sleep = 1.5
    kq = KnowledgeQuery(api_url=wiki.url, timeout=0.2, retries=1, backoff=0.01)
    t = time.perf_counter()
    with pytest.raises(ToolError, match=r"unreachable after 2 tries \(ReadTimeout\)"):
        kq("Julius Caesar")
    assert time.perf_counter() - t < 1.2


def test_knowledge_query_unreachable_host():
    kq = KnowledgeQuery(api_url="http://127.0.0.1:9/w/api.php", timeout=0.5, retries=1, backoff=0.01)
    with pytest.raises(ToolError, match="ConnectionError"):
        kq("Julius Caesar")
