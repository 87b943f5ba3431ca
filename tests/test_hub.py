"""lumos.hub (huggingface_hub.snapshot_download underneath) against a real HTTP server on 127.0.0.1 that
answers the hub's routes, reached through HF_ENDPOINT as a mirror would be: the model-info API, /resolve/
URLs that redirect LFS files to a "CDN" path with X-Linked-Etag, Range requests, a gated repo (HF_TOKEN),
and a connection cut mid-file."""
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest
import torch

pytest.importorskip("huggingface_hub", reason="huggingface_hub (the optional hub dependency) is not installed")

from lumos.hub import HubError, resolve_checkpoint  # noqa: E402
from lumos.model.checkpoint import load_model, save_hf  # noqa: E402
from lumos.model.config import ModelArgs  # noqa: E402
from lumos.model.llama import Transformer  # noqa: E402

torch.set_num_threads(1)
REPO = "ai2lumos/lumos_tiny_ground_iterative"
SHA = "0123456789abcdef0123456789abcdef01234567"
LFS = (".safetensors", ".bin", ".model")  # stored in git LFS on the hub


class Hub(BaseHTTPRequestHandler):
    """Serves self.server.files {name: bytes} for REPO (any revision: main, or the commit SHA)."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):  # keep pytest output clean
        pass

    def do_HEAD(self):
        self._route(head=True)

    def do_GET(self):
        self._route(head=False)

    def _route(self, head):
        srv = self.server
        path = urlparse(self.path).path
        srv.log.append((self.command, path, self.headers.get("Range")))
        if srv.token and not path.startswith("/cdn/") and self.headers.get("Authorization") != f"Bearer {srv.token}":
            return self._send(401, b'{"error": "gated repo"}', {"Content-Type": "application/json"}, head)
        if path in (f"/api/models/{REPO}", f"/api/models/{REPO}/revision/main", f"/api/models/{REPO}/revision/{SHA}"):
            body = {"id": REPO, "modelId": REPO, "sha": SHA, "siblings": [{"rfilename": n} for n in srv.files]}
            return self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head)
        if path in (f"/api/models/{REPO}/tree/main", f"/api/models/{REPO}/tree/{SHA}"):   # the file listing
            tree = [{"type": "file", "path": n, "size": len(d), "oid": hashlib.sha1(d).hexdigest(),
                     **({"lfs": {"oid": hashlib.sha256(d).hexdigest(), "size": len(d), "pointerSize": 134}}
                        if n.endswith(LFS) else {})}
                    for n, d in srv.files.items()]
            return self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, head)
        for rev in ("main", SHA):
            prefix = f"/{REPO}/resolve/{rev}/"
            if path.startswith(prefix) and path[len(prefix):] in srv.files:
                name = path[len(prefix):]
                data = srv.files[name]
                common = {"X-Repo-Commit": SHA}
                if name.endswith(LFS):  # as the hub: redirect to the CDN, sha256 in X-Linked-Etag
                    sha = hashlib.sha256(data).hexdigest()
                    cdn = f"http://localhost:{srv.server_address[1]}/cdn/{name}"   # another host, as the hub's CDN is
                    return self._send(302, b"", {**common, "Location": cdn, "X-Linked-Etag": f'"{sha}"',
                                                 "X-Linked-Size": str(len(data)), "ETag": f'"{sha}"'}, head)
                return self._serve(name, data, {**common, "ETag": '"' + hashlib.sha1(data).hexdigest() + '"'}, head)
        if path.startswith("/cdn/") and path[5:] in srv.files:
            name = path[5:]
            return self._serve(name, srv.files[name], {}, head)
        self._send(404, b'{"error": "Repository not found"}', {"Content-Type": "application/json",
                                                              "X-Error-Code": "RepoNotFound"}, head)

    def _serve(self, name, data, headers, head):
        start = 0
        rng = self.headers.get("Range")
        if rng and not head:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        cut = None if head else self.server.cut_after.pop(name, None)  # one-shot: drop the connection mid-body
        self.send_response(206 if rng and not head else 200)
        headers["Content-Length"] = str(len(body))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.close_connection = True

    def _send(self, code, body, headers, head):
        self.send_response(code)
        headers["Content-Length"] = str(len(body))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
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
def hub(checkpoint, tmp_path, monkeypatch):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    srv.files, srv.log, srv.cut_after, srv.token = dict(checkpoint[0]), [], {}, None
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{srv.server_address[1]}")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    srv.cache = tmp_path / "hf"
    yield srv
    srv.shutdown()
    srv.server_close()


def fetched(log) -> set[str]:
    return {p.rsplit("/", 1)[-1] for m, p, _ in log if m == "GET" and "/api/" not in p}


def test_download_then_cache(hub, checkpoint):
    files, wanted, logits = checkpoint
    local = resolve_checkpoint(REPO, cache_dir=hub.cache)
    assert local.is_dir() and local.is_relative_to(hub.cache) and local.name == SHA   # the HF cache layout
    assert {p.name for p in local.iterdir()} == wanted       # no README, training_args.bin, older .bin
    assert fetched(hub.log) == wanted
    with torch.no_grad():
        assert torch.equal(load_model(str(local))(torch.tensor([[1, 5, 17, 299]])), logits)
    hub.log.clear()
    assert resolve_checkpoint(REPO, cache_dir=hub.cache) == local
    assert fetched(hub.log) == set()                          # second call: the cache, no file fetched again


def test_dropped_connection_is_retried_within_one_call(hub, checkpoint):
    shard = sorted(n for n in checkpoint[1] if n.endswith(".safetensors"))[0]
    hub.cut_after[shard] = 1000
    local = resolve_checkpoint(REPO, cache_dir=hub.cache)
    assert [m for m, p, _ in hub.log if p == f"/cdn/{shard}"] == ["GET", "GET"]   # cut, then fetched again
    assert (local / shard).read_bytes() == checkpoint[0][shard]


def test_gated_repo_needs_hf_token(hub, checkpoint, monkeypatch):
    hub.token = "hf_secret"
    with pytest.raises(HubError, match=r"downloading it from the hub failed: .*HF_TOKEN") as e:
        resolve_checkpoint(REPO, cache_dir=hub.cache)
    assert "\n" not in str(e.value)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert {p.name for p in resolve_checkpoint(REPO, cache_dir=hub.cache).iterdir()} == checkpoint[1]


def test_offline_uses_the_cache(hub, checkpoint, monkeypatch):
    local = resolve_checkpoint(REPO, cache_dir=hub.cache)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")          # nothing listens there
    assert resolve_checkpoint(REPO, cache_dir=hub.cache) == local


def test_unknown_repo_and_bad_ids(hub):
    with pytest.raises(HubError, match="no_such_model"):
        resolve_checkpoint("ai2lumos/no_such_model", cache_dir=hub.cache)
    with pytest.raises(HubError, match="not found"):
        resolve_checkpoint("not-a-repo-id", cache_dir=hub.cache)
