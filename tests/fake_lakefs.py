"""A stand-in lakeFS server: the REST endpoints the ``lakefs`` SDK calls to read a repository, nothing more.

No lakeFS server can run in CI, so the lakeFS source is tested against the HTTP contract instead:
the SDK itself talks to this server, so request shapes, JSON models (lakefs_sdk/models/*.py: every
required field is present), pagination, ranged reads and error statuses are exercised for real.

Endpoints, all under ``/api/v1`` and behind HTTP basic auth:

    GET /config                                          server + storage configuration
    GET /repositories/{repo}                             repository properties
    GET /repositories/{repo}/commits/{ref}               a branch, tag or commit id -> its commit
    GET /repositories/{repo}/refs/{ref}/objects/ls       listing: prefix, after, amount; pages of page_size
    GET /repositories/{repo}/refs/{ref}/objects/stat     one object's stats (?path=)
    GET /repositories/{repo}/refs/{ref}/objects          the bytes (?path=), Range -> 206 / 416;
                                                         presign=true -> 302 to /_presigned/...
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "/api/v1"


@dataclass
class FakeRepository:
    name: str
    default_branch: str = "main"
    commits: dict[str, dict] = field(default_factory=dict)  # id -> {"parents", "message", "tree", "date"}
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit id
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query
    query: dict[str, str]
    headers: dict[str, str]


class FakeLakeFS:
    """Start with ``with FakeLakeFS() as server:``; ``server.url`` is the endpoint to configure."""

    def __init__(self, access_key_id: str = "AKIAFAKE", secret_access_key: str = "fake-secret",
                 page_size: int = 2):
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.page_size = page_size
        self.repositories: dict[str, FakeRepository] = {}
        self.requests: list[RecordedRequest] = []
        self.failing_objects: set[str] = set()  # object paths whose bytes answer 500, as a sick store would
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- data -------------------------------------------------------------------------------------
    def create_repository(self, name: str, default_branch: str = "main") -> FakeRepository:
        repo = FakeRepository(name=name, default_branch=default_branch)
        root = self._new_commit(repo, parents=[], tree={}, message="Repository created")
        repo.branches[default_branch] = root
        self.repositories[name] = repo
        return repo

    def commit(self, repo_name: str, files: dict[str, bytes], branch: str = "main",
               delete: tuple[str, ...] = (), message: str = "add data") -> str:
        """Commit ``files`` (path -> bytes) onto ``branch``; returns the new commit id."""
        repo = self.repositories[repo_name]
        parent = repo.branches[branch]
        tree = {k: v for k, v in repo.commits[parent]["tree"].items() if k not in delete}
        tree.update(files)
        commit_id = self._new_commit(repo, parents=[parent], tree=tree, message=message)
        repo.branches[branch] = commit_id
        return commit_id

    def tag(self, repo_name: str, tag: str, commit_id: str) -> None:
        self.repositories[repo_name].tags[tag] = commit_id

    @staticmethod
    def _new_commit(repo: FakeRepository, parents: list[str], tree: dict[str, bytes], message: str) -> str:
        digest = hashlib.sha256(repr((parents, sorted((k, hashlib.md5(v).hexdigest()) for k, v in tree.items()),
                                      message)).encode())
        commit_id = digest.hexdigest()
        repo.commits[commit_id] = {"parents": parents, "message": message, "tree": dict(tree),
                                   "date": int(time.time())}
        return commit_id

    def resolve(self, repo: FakeRepository, ref: str) -> str | None:
        if ref in repo.branches:
            return repo.branches[ref]
        if ref in repo.tags:
            return repo.tags[ref]
        if ref in repo.commits:
            return ref
        matches = [c for c in repo.commits if len(ref) >= 6 and c.startswith(ref)]
        return matches[0] if len(matches) == 1 else None

    def object_requests(self) -> list[RecordedRequest]:
        """Requests that fetched object bytes (through the API or a pre-signed URL)."""
        with self._lock:
            return [r for r in self.requests
                    if r.path.endswith("/objects") or r.path.startswith("/_presigned/")]

    # --- server lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> FakeLakeFS:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


def object_stats(path: str, data: bytes) -> dict:
    """lakefs_sdk.models.ObjectStats; checksum is the MD5 hex, as lakeFS reports for single-part uploads."""
    return {
        "path": path,
        "path_type": "object",
        "physical_address": f"local://fake-storage/{hashlib.sha256(data).hexdigest()}",
        "checksum": hashlib.md5(data).hexdigest(),
        "size_bytes": len(data),
        "mtime": 1_700_000_000,
        "content_type": "video/mp4" if path.endswith(".mp4") else "application/octet-stream",
    }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLakeFS

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # keep test output clean

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parsed = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        self.fake.record(RecordedRequest("GET", parsed.path, query, dict(self.headers)))
        if parsed.path.startswith("/_presigned/"):
            return self._presigned(parsed.path)
        if not parsed.path.startswith(API + "/"):
            return self._error(404, "not found")
        if not self._authorized():
            return self._error(401, "error authenticating request")
        route = parsed.path[len(API):]
        if route == "/config":
            return self._json(200, _server_config())
        match = re.fullmatch(r"/repositories/([^/]+)(/.*)?", route)
        if not match:
            return self._error(404, "not found")
        repo = self.fake.repositories.get(urllib.parse.unquote(match.group(1)))
        if repo is None:
            return self._error(404, "repository not found")
        rest = match.group(2) or ""
        if rest == "":
            return self._json(200, {"id": repo.name, "creation_date": 1_700_000_000,
                                    "default_branch": repo.default_branch, "storage_id": "",
                                    "storage_namespace": f"local://fake-storage/{repo.name}", "read_only": False})
        if m := re.fullmatch(r"/commits/([^/]+)", rest):
            return self._commit(repo, urllib.parse.unquote(m.group(1)))
        if m := re.fullmatch(r"/refs/([^/]+)/objects(/ls|/stat)?", rest):
            commit_id = self.fake.resolve(repo, urllib.parse.unquote(m.group(1)))
            if commit_id is None:
                return self._error(404, "not found: ref")
            tree = repo.commits[commit_id]["tree"]
            if m.group(2) == "/ls":
                return self._list(tree, query)
            data = tree.get(query.get("path", ""))
            if data is None:
                return self._error(404, "object not found")
            if m.group(2) == "/stat":
                return self._json(200, object_stats(query["path"], data))
            if query["path"] in self.fake.failing_objects:
                return self._error(500, "block adapter: storage unavailable")
            if query.get("presign", "").lower() == "true":  # the SDK sends Python's "True"
                target = f"/_presigned/{repo.name}/{commit_id}/{urllib.parse.quote(query['path'])}"
                return self._redirect(self.fake.url + target)
            return self._bytes(data)
        return self._error(404, "not found")

    # --- endpoints --------------------------------------------------------------------------------
    def _commit(self, repo: FakeRepository, ref: str) -> None:
        commit_id = self.fake.resolve(repo, ref)
        if commit_id is None:
            return self._error(404, "not found: ref")
        c = repo.commits[commit_id]
        return self._json(200, {"id": commit_id, "parents": c["parents"], "committer": "tester",
                                "message": c["message"], "creation_date": c["date"],
                                "meta_range_id": hashlib.sha1(commit_id.encode()).hexdigest(),
                                "metadata": {}, "generation": len(repo.commits)})

    def _list(self, tree: dict[str, bytes], query: dict[str, str]) -> None:
        if query.get("delimiter"):
            return self._error(400, "the fake server lists flat only (no delimiter)")
        prefix, after = query.get("prefix", ""), query.get("after", "")
        amount = min(int(query.get("amount", self.fake.page_size)), self.fake.page_size)
        paths = sorted(p for p in tree if p.startswith(prefix) and p > after)
        page = paths[:amount]
        has_more = len(paths) > len(page)
        return self._json(200, {
            "pagination": {"has_more": has_more, "next_offset": page[-1] if has_more else "",
                           "results": len(page), "max_per_page": self.fake.page_size},
            "results": [object_stats(p, tree[p]) for p in page],
        })

    def _presigned(self, path: str) -> None:
        parts = path.split("/", 4)  # "", "_presigned", repo, commit, object path
        repo = self.fake.repositories.get(parts[2]) if len(parts) == 5 else None
        commit = repo.commits.get(parts[3]) if repo else None
        data = commit["tree"].get(urllib.parse.unquote(parts[4])) if commit else None
        if data is None:
            return self._error(404, "no such pre-signed object")
        return self._bytes(data)

    # --- responses --------------------------------------------------------------------------------
    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == (self.fake.access_key_id, self.fake.secret_access_key)

    def _bytes(self, data: bytes) -> None:
        size = len(data)
        byte_range = self.headers.get("Range")
        if not byte_range:
            return self._send(200, data, "application/octet-stream", {"ETag": f'"{hashlib.md5(data).hexdigest()}"'})
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", byte_range.strip())
        if not m:
            return self._error(400, f"bad Range {byte_range!r}")
        start = int(m.group(1))
        end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
        if start >= size:
            return self._send(416, b"", "application/octet-stream", {"Content-Range": f"bytes */{size}"})
        return self._send(206, data[start:end + 1], "application/octet-stream",
                          {"Content-Range": f"bytes {start}-{end}/{size}"})

    def _redirect(self, location: str) -> None:
        self._send(302, b"", "text/plain", {"Location": location})

    def _json(self, status: int, body: dict) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"message": message})

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


def _server_config() -> dict:
    """lakefs_sdk.models.Config with the required StorageConfig fields."""
    storage = {
        "blockstore_type": "local",
        "blockstore_namespace_example": "local://example-bucket/",
        "blockstore_namespace_ValidityRegex": "^local://",
        "pre_sign_support": False,
        "pre_sign_support_ui": False,
        "import_support": False,
        "import_validity_regex": "^local://",
    }
    return {"version_config": {"version": "1.0.0-fake"}, "storage_config": storage}


def tiny_mp4_bytes(frames: int = 8, size: int = 32) -> bytes:
    """A real, decodable MPEG-4 video of a few frames, so a downloaded object is genuine media."""
    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.full((size, size, 3), (i * 30) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
