"""lumos.model.hub against a real HTTP server on 127.0.0.1 that speaks the hub's URL layout:
the model-info API, /resolve/ URLs that redirect LFS files to a "CDN" path with X-Linked-Etag,
Range requests, and injected faults (a connection cut mid-file, a corrupted blob)."""
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest
import torch

from lumos.model.checkpoint import load_model, save_hf
from lumos.model.config import ModelArgs
from lumos.model.hub import COMPLETE, DownloadError, download
from lumos.model.llama import Transformer

torch.set_num_threads(1)
REPO = "ai2lumos/lumos_tiny_ground_iterative"
LFS = (".safetensors", ".bin", ".model")  # stored in git LFS on the hub


class Hub(BaseHTTPRequestHandler):
    """Serves self.server.files {name: bytes} for REPO at revision main."""

    def log_message(self, *a):  # keep pytest output clean
        pass

    def do_GET(self):
        srv = self.server
        path = urlparse(self.path).path
        srv.log.append((path, self.headers.get("Range")))
        if path == f"/api/models/{REPO}/revision/main":
            siblings = []
            for name, data in srv.files.items():
                s = {"rfilename": name, "size": len(data)}
                if name.endswith(LFS):
                    s["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                siblings.append(s)
            return self._send(200, json.dumps({"sha": "0" * 40, "siblings": siblings}).encode(),
                              {"Content-Type": "application/json"})
        prefix = f"/{REPO}/resolve/main/"
        if path.startswith(prefix) and path[len(prefix):] in srv.files:
            name = path[len(prefix):]
            data = srv.files[name]
            if name.endswith(LFS):  # as the hub: redirect to the CDN, sha256 in X-Linked-Etag
                sha = hashlib.sha256(data).hexdigest()
                return self._send(302, b"", {"Location": f"/cdn/{name}", "X-Linked-Etag": f'"{sha}"',
                                             "X-Linked-Size": str(len(data))})
            return self._serve(name, data, {"ETag": '"' + hashlib.sha1(data).hexdigest() + '"'})
        if path.startswith("/cdn/") and path[5:] in srv.files:
            name = path[5:]
            return self._serve(name, srv.corrupt.get(name, srv.files[name]), {})
        self._send(404, b"not found", {})

    def _serve(self, name, data, headers):
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        cut = self.server.cut_after.pop(name, None)  # one-shot: drop the connection mid-body
        self.send_response(206 if rng else 200)
        headers["Content-Length"] = str(len(body))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body if cut is None else body[:cut])
        self.close_connection = True

    def _send(self, code, body, headers):
        self.send_response(code)
        headers["Content-Length"] = str(len(body))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny model saved by save_hf in two safetensors shards, plus repo files not to fetch."""
    args = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=300, multiple_of=32, max_seq_len=64)
    model = Transformer(args).init_weights(seed=3)
    d = tmp_path_factory.mktemp("repo")
    tok = d / "tok.model"
    tok.write_bytes(b"\x0a\x05tiny sentencepiece stand-in" * 10)
    save_hf(model, args, d / "ckpt", dtype="fp32", max_shard_bytes=150_000, tokenizer=tok)
    files = {p.name: p.read_bytes() for p in (d / "ckpt").iterdir()}
    assert sum(n.endswith(".safetensors") for n in files) >= 2
    wanted = set(files)
    files.update({"README.md": b"# tiny", ".gitattributes": b"*.bin filter=lfs",
                  "training_args.bin": b"not weights", "pytorch_model.bin": b"older copy of the weights"})
    with torch.no_grad():
        logits = model(torch.tensor([[1, 5, 17, 299]]))
    return files, wanted, logits


@pytest.fixture
def hub(checkpoint):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    srv.files, srv.log, srv.cut_after, srv.corrupt = dict(checkpoint[0]), [], {}, {}
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.endpoint = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def test_download_then_cache(hub, checkpoint, tmp_path):
    files, wanted, logits = checkpoint
    local = download(REPO, cache_dir=tmp_path, endpoint=hub.endpoint)
    assert local == tmp_path / REPO / "main"
    assert {p.name for p in local.iterdir()} == wanted | {COMPLETE}  # no README, training_args, .bin
    for name in wanted:
        assert (local / name).read_bytes() == files[name]
    with torch.no_grad():
        assert torch.equal(load_model(local)(torch.tensor([[1, 5, 17, 299]])), logits)
    n_requests = len(hub.log)
    assert download(REPO, cache_dir=tmp_path, endpoint=hub.endpoint) == local
    assert len(hub.log) == n_requests  # second call: cache only, no network


def test_interrupted_download_resumes(hub, checkpoint, tmp_path):
    files, wanted, _ = checkpoint
    shard = sorted(n for n in wanted if n.endswith(".safetensors"))[0]
    half = len(files[shard]) // 2
    hub.cut_after[shard] = half
    with pytest.raises(DownloadError) as e:  # no retries: the call fails and leaves a .part
        download(REPO, cache_dir=tmp_path, endpoint=hub.endpoint, max_retries=0)
    assert "resume" in str(e.value) and "\n" not in str(e.value)
    part = tmp_path / REPO / "main" / (shard + ".part")
    assert part.stat().st_size == half
    assert not (tmp_path / REPO / "main" / COMPLETE).exists()

    local = download(REPO, cache_dir=tmp_path, endpoint=hub.endpoint)  # the next call resumes
    assert (f"/cdn/{shard}", f"bytes={half}-") in hub.log
    assert (local / shard).read_bytes() == files[shard] and not part.exists()
    assert (local / COMPLETE).exists()


def test_dropped_connection_retried_within_one_call(hub, checkpoint, tmp_path):
    files, wanted, _ = checkpoint
    shard = sorted(n for n in wanted if n.endswith(".safetensors"))[1]
    hub.cut_after[shard] = 1000
    local = download(REPO, cache_dir=tmp_path, endpoint=hub.endpoint)
    assert (f"/cdn/{shard}", "bytes=1000-") in hub.log
    assert (local / shard).read_bytes() == files[shard]


def test_corrupt_file_fails_sha256(hub, checkpoint, tmp_path):
    files, wanted, _ = checkpoint
    shard = sorted(n for n in wanted if n.endswith(".safetensors"))[0]
    bad = bytearray(files[shard])
    bad[-1] ^= 0xFF  # same size, one byte flipped
    hub.corrupt[shard] = bytes(bad)
    with pytest.raises(DownloadError) as e:
        download(REPO, cache_dir=tmp_path, endpoint=hub.endpoint)
    assert shard in str(e.value) and "sha256" in str(e.value)
    d = tmp_path / REPO / "main"
    assert not (d / shard).exists() and not (d / (shard + ".part")).exists() and not (d / COMPLETE).exists()


def test_unknown_repo_and_unreachable(hub, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download("ai2lumos/no_such_model", cache_dir=tmp_path, endpoint=hub.endpoint)
    with pytest.raises(DownloadError, match="not a hub id"):
        download("../etc", cache_dir=tmp_path, endpoint=hub.endpoint)
    with pytest.raises(DownloadError, match="cannot reach"):
        download(REPO, cache_dir=tmp_path, endpoint="http://127.0.0.1:9", timeout=2)
