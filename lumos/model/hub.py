"""Download a checkpoint from the Hugging Face hub (or a mirror) into a local cache, once.

    download("ai2lumos/lumos_maths_ground_iterative") -> ~/.cache/lumos/ai2lumos/lumos_maths_ground_iterative/main

Only what load_checkpoint needs is fetched: the top-level *.json files, tokenizer.model, and the
weights (safetensors when the repo has them, else pytorch_model*.bin, else consolidated.NN.pth;
not training_args.bin or optimizer states). The hub's URL layout:
    {endpoint}/api/models/{repo_id}/revision/{revision}     JSON, "siblings": [{"rfilename", "size", "lfs"}]
    {endpoint}/{repo_id}/resolve/{revision}/{filename}      the file (large ones redirect to a CDN)
Each file streams into `name.part` (resumed with an HTTP Range request after an interruption),
is checked against its size and, for LFS files, its sha256, then renamed into place. A marker file
records a finished download, so later calls use the cache without touching the network.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path

import requests
from tqdm import tqdm

DEFAULT_ENDPOINT = "https://huggingface.co"
COMPLETE = ".lumos_download.json"  # written last: its presence means the directory is complete
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download that can't complete; the message is one line."""


class _Incomplete(requests.ConnectionError):
    """The server closed the connection before the whole file came: resume it."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("LUMOS_CACHE", Path.home() / ".cache" / "lumos"))


def is_repo_id(s: str) -> bool:
    """'ai2lumos/lumos_maths_plan_iterative' -> True (and not an existing local path)."""
    return bool(_REPO_ID.fullmatch(s)) and ".." not in s and not Path(s).exists()


def resolve(path_or_repo_id: str, **kw) -> Path:
    """A local checkpoint directory as is; a hub id downloaded (once) into the cache."""
    if Path(path_or_repo_id).exists():
        return Path(path_or_repo_id)
    if is_repo_id(path_or_repo_id):
        return download(path_or_repo_id, **kw)
    raise DownloadError(f"{path_or_repo_id}: neither a local directory nor a hub id like org/name")


def _wanted(files: list[str]) -> list[str]:
    """The files load_checkpoint reads, from a repo listing."""
    top = [f for f in files if "/" not in f]  # subfolders (e.g. original/) are other formats
    weights = ([f for f in top if f.endswith(".safetensors")]
               or [f for f in top if re.fullmatch(r"pytorch_model(-\d+-of-\d+)?\.bin", f)]
               or [f for f in top if re.fullmatch(r"consolidated\.\d+\.pth", f)])
    extra = [f for f in top if f.endswith(".json") or f == "tokenizer.model"]
    return sorted(set(weights + extra))


def _human(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def download(repo_id: str, cache_dir: str | os.PathLike | None = None, revision: str = "main",
             endpoint: str | None = None, token: str | None = None, max_retries: int = 5,
             timeout: float = 60.0) -> Path:
    """Fetch `repo_id` at `revision` into cache_dir/repo_id/revision and return that directory.

    endpoint: a mirror, default $HF_ENDPOINT or https://huggingface.co. token: for gated repos,
    default $HF_TOKEN. A dropped connection is resumed up to max_retries times; if the download
    still fails, the .part files stay and the next call resumes them."""
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise DownloadError(f"{repo_id!r} is not a hub id of the form org/name")
    if not re.fullmatch(r"[\w.-]+", revision) or ".." in revision:
        raise DownloadError(f"{revision!r} is not a plain revision name (branch, tag or commit)")
    local = Path(cache_dir or default_cache_dir()) / repo_id / revision
    if (local / COMPLETE).exists():
        return local
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    token = token or os.environ.get("HF_TOKEN")
    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"

    info = _get_json(session, f"{endpoint}/api/models/{repo_id}/revision/{revision}",
                     {"blobs": "true"}, timeout, repo_id)
    siblings = {s["rfilename"]: s for s in info.get("siblings", []) if isinstance(s.get("rfilename"), str)}
    files = _wanted(list(siblings))
    if not any(f.endswith((".safetensors", ".bin", ".pth")) for f in files):
        raise DownloadError(f"{repo_id}@{revision}: no model weights (safetensors, pytorch_model*.bin "
                            "or consolidated.NN.pth) in the repository")
    sizes = {f: siblings[f].get("size") for f in files}
    known = [s for s in sizes.values() if isinstance(s, int)]
    total = sum(known)
    print(f"Downloading {repo_id}@{revision}: {len(files)} files, "
          f"{_human(total) if len(known) == len(files) else 'size unknown'} into {local}"
          + (" (this takes a while; interrupted downloads resume)" if total > 1e9 else ""),
          file=sys.stderr, flush=True)
    local.mkdir(parents=True, exist_ok=True)
    for f in files:
        lfs = siblings[f].get("lfs") or {}
        sha = lfs.get("sha256") if isinstance(lfs.get("sha256"), str) else None
        size = lfs.get("size", sizes[f])
        dest = local / f
        if not dest.exists():
            url = f"{endpoint}/{repo_id}/resolve/{revision}/{f}"
            _fetch(session, url, dest, size if isinstance(size, int) else None, sha, max_retries, timeout)
    (local / COMPLETE).write_text(json.dumps({"repo_id": repo_id, "revision": revision,
                                              "sha": info.get("sha"), "files": files}, indent=1))
    return local


def _get_json(session, url, params, timeout, repo_id):
    try:
        r = session.get(url, params=params, timeout=timeout)
    except requests.RequestException as e:
        raise DownloadError(f"{repo_id}: cannot reach {url}: {type(e).__name__}") from e
    if r.status_code in (401, 403, 404):
        raise DownloadError(f"{repo_id}: HTTP {r.status_code} from {url} (no such repo or revision, "
                            "or a gated repo: set HF_TOKEN)")
    if not r.ok:
        raise DownloadError(f"{repo_id}: HTTP {r.status_code} from {url}")
    try:
        return r.json()
    except ValueError as e:
        raise DownloadError(f"{repo_id}: {url} did not return JSON") from e


def _sha_from_headers(r: requests.Response) -> str | None:
    """The hub puts an LFS file's sha256 in X-Linked-Etag on the redirect; some servers in ETag."""
    for resp in [*r.history, r]:
        for h in ("X-Linked-Etag", "ETag"):
            tag = resp.headers.get(h, "").removeprefix("W/").strip('"').lower()
            if _SHA256.fullmatch(tag):
                return tag
    return None


def _fetch(session, url, dest: Path, size: int | None, sha: str | None, max_retries: int, timeout) -> None:
    part = dest.with_name(dest.name + ".part")
    for attempt in range(max_retries + 1):
        try:
            _fetch_once(session, url, dest, part, size, sha, timeout)
            return
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
            if attempt == max_retries:
                have = part.stat().st_size if part.exists() else 0
                raise DownloadError(f"{dest.name}: connection failed {max_retries + 1} times "
                                    f"({type(e).__name__}) at {_human(have)}; run again to resume") from e
            print(f"{dest.name}: connection dropped ({type(e).__name__}); resuming", file=sys.stderr)


def _fetch_once(session, url, dest, part, size, sha, timeout) -> None:
    have = part.stat().st_size if part.exists() else 0
    # identity: Range offsets must count the file's bytes, not a compressed stream's
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
    with session.get(url, headers=headers, stream=True, timeout=timeout) as r:
        if r.status_code == 416 and size is not None and have == size:
            pass  # the .part is already whole; verify it below
        elif r.status_code == 206:
            m = re.match(r"bytes (\d+)-", r.headers.get("Content-Range", ""))
            start = int(m.group(1)) if m else -1
            if start != have:
                raise DownloadError(f"{dest.name}: server resumed at byte {start}, expected {have}")
        elif r.status_code == 200:
            have = 0  # no range support (or no .part): start over
        else:
            raise DownloadError(f"{dest.name}: HTTP {r.status_code} from {url}")
        sha = sha or _sha_from_headers(r)
        if r.status_code in (200, 206):
            length = r.headers.get("Content-Length")
            expected = have + int(length) if length is not None else size
            if size is not None and expected is not None and expected != size:
                raise DownloadError(f"{dest.name}: server sends {expected} bytes, the hub listing says {size}")
            size = size if size is not None else expected
            with open(part, "ab" if have else "wb") as out, tqdm(
                    total=size, initial=have, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                # Read to EOF and check the length ourselves: urllib3's own check would raise
                # with the last partial chunk still in its buffer, and that chunk would be lost.
                r.raw.enforce_content_length = False
                for chunk in r.iter_content(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    got = part.stat().st_size
    if size is not None and got < size:
        raise _Incomplete(f"{dest.name}: {got} of {size} bytes")
    if size is not None and got > size:
        part.unlink()
        raise DownloadError(f"{dest.name}: got {got} bytes, expected {size}; deleted, run again")
    if sha is not None:
        digest = _sha256(part)
        if digest != sha:
            part.unlink()
            raise DownloadError(f"{dest.name}: sha256 {digest} does not match the hub's {sha}; deleted, run again")
    os.replace(part, dest)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
