"""A loopback (127.0.0.1) HTTP server that serves data files the way their real hosts do.

Routes: the Hugging Face Hub's file-resolve API ``/datasets/{id}/resolve/{revision}/{path}`` (GET and
HEAD), GitHub's raw files ``/{owner}/{name}/{commit}/{path}`` and PyPI's ``/packages/{tag}/{l}/{name}/{file}``.
The Hub route answers as the Hub does (the headers huggingface_hub's ``get_hf_file_metadata`` reads): an
LFS file with a 302 to ``/cdn/...`` carrying ``X-Linked-Etag`` (quoted sha256), ``X-Linked-Size`` and
``X-Repo-Commit``; a file stored in git directly (``add_hf(..., lfs=False)``) with 200, ``ETag`` (the
quoted git blob sha1) and ``X-Repo-Commit``. Files come from a mapping filled by the test (the
registered GitHub sources map to the shared data folder by default). Supports ``Range`` (206), and
faults: ``truncate_once`` (send half the body, then close), ``corrupt`` (flip one byte), ``require_token``,
``declare`` (URL path -> header overrides, e.g. a wrong ``X-Linked-Etag`` or ``X-Repo-Commit``).

    with DataServer(data_dir) as srv:
        monkeypatch.setenv("DEEPSIGHT_GITHUB_ENDPOINT", srv.url)
"""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from deepsight.data.sources import SOURCES


class DataServer:
    def __init__(self, data_dir: Path | None):
        self.files: dict[str, Path] = {}  # URL path -> local file
        if data_dir is not None:
            for s in SOURCES.values():
                if s.host == "github" and (data_dir / s.key).is_file():
                    self.files[f"/{s.repo}/{s.revision}/{s.path}"] = data_dir / s.key
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, headers) of every GET
        self.truncate_once: set[str] = set()
        self.corrupt: set[str] = set()
        self.require_token: dict[str, str] = {}  # URL path -> the bearer token it needs
        self.lfs: dict[str, bool] = {}  # Hub URL path -> stored in LFS (302 + X-Linked-*) or in git (200 + ETag)
        self.declare: dict[str, dict[str, str]] = {}  # Hub URL path -> header overrides (faults)
        self.heads: list[tuple[str, dict[str, str]]] = []  # (path, headers) of every HEAD
        self.cdn: str | None = None  # base URL the Hub route redirects to (default: this server)
        self._lock = threading.Lock()

    def add_hf(self, repo: str, revision: str, path: str, local: Path, lfs: bool = True) -> str:
        url_path = f"/datasets/{repo}/resolve/{revision}/{path}"
        self.files[url_path] = local
        self.lfs[url_path] = lfs
        return url_path

    def hub_headers(self, url_path: str) -> dict[str, str]:
        """What the Hub sends for a resolve request of ``url_path`` (before ``declare`` overrides)."""
        body = self.files[url_path].read_bytes()
        commit = url_path.split("/")[5]  # /datasets/{owner}/{name}/resolve/{revision}/...
        if self.lfs.get(url_path, True):
            h = {"X-Linked-Etag": f'"{hashlib.sha256(body).hexdigest()}"', "X-Linked-Size": str(len(body)),
                 "ETag": '"0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"'}  # the LFS pointer's oid, not the file's
        else:
            h = {"ETag": f'"{hashlib.sha1(b"blob %d" % len(body) + bytes(1) + body).hexdigest()}"'}
        return {"X-Repo-Commit": commit, **h, **self.declare.get(url_path, {})}

    def add(self, url_path: str, local: Path) -> None:
        self.files[url_path] = local

    def count(self, fragment: str = "") -> int:
        return sum(1 for p, _ in self.requests if fragment in p)

    # -- server ---------------------------------------------------------------------------------------
    def __enter__(self) -> DataServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _hub(self, path: str, head: bool) -> bool:
                """Answer a Hub resolve request; False when the body is still to be sent (git-stored file)."""
                need = owner.require_token.get(path)
                if need and self.headers.get("Authorization") != f"Bearer {need}":
                    self.send_error(401, "gated")
                    return True
                declared = owner.hub_headers(path)
                if owner.lfs.get(path, True):  # the Hub redirects LFS files to its CDN
                    self.send_response(302)
                    self.send_header("Location", (owner.cdn or "") + "/cdn" + path)
                    for k, v in declared.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return True
                if head:
                    self.send_response(200)
                    for k, v in declared.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(owner.files[path].stat().st_size))
                    self.end_headers()
                    return True
                self._extra = declared
                return False

            def do_HEAD(self):
                with owner._lock:
                    owner.heads.append((self.path, dict(self.headers)))
                if self.path.startswith("/datasets/") and self.path in owner.files:
                    self._hub(self.path, head=True)
                else:
                    self.send_error(404 if self.path not in owner.files else 405)

            def do_GET(self):
                with owner._lock:
                    owner.requests.append((self.path, dict(self.headers)))
                path = self.path
                self._extra = {}
                if path.startswith("/cdn"):
                    path = path[len("/cdn"):]
                elif path.startswith("/datasets/") and path in owner.files and self._hub(path, head=False):
                    return
                local = owner.files.get(path)
                if local is None:
                    self.send_error(404)
                    return
                body = bytearray(local.read_bytes())
                if path in owner.corrupt and body:
                    body[len(body) // 2] ^= 0xFF
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if m:
                    start = int(m.group(1))
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                chunk = bytes(body[start:])
                for k, v in self._extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                with owner._lock:
                    cut = path in owner.truncate_once
                    owner.truncate_once.discard(path)
                if cut:  # half the body, then the connection drops
                    self.wfile.write(chunk[: len(chunk) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(chunk)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
