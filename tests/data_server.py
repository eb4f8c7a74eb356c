"""A loopback (127.0.0.1) HTTP server that serves data files the way their real hosts do.

Routes: the Hugging Face Hub's file-resolve API ``/datasets/{id}/resolve/{revision}/{path}`` (answered
with a 302 to ``/cdn/...`` as the Hub does for LFS files), GitHub's raw files ``/{owner}/{name}/{commit}/{path}``
and PyPI's ``/packages/{tag}/{l}/{name}/{file}``. Files come from a mapping filled by the test (the
registered GitHub sources map to the shared data folder by default). Supports ``Range`` (206), and
faults: ``truncate_once`` (send half the body, then close), ``corrupt`` (flip one byte), ``require_token``.

    with DataServer(data_dir) as srv:
        monkeypatch.setenv("DEEPSIGHT_GITHUB_ENDPOINT", srv.url)
"""

from __future__ import annotations

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
        self.cdn: str | None = None  # base URL the Hub route redirects to (default: this server)
        self._lock = threading.Lock()

    def add_hf(self, repo: str, revision: str, path: str, local: Path) -> str:
        url_path = f"/datasets/{repo}/resolve/{revision}/{path}"
        self.files[url_path] = local
        return url_path

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

            def do_GET(self):
                with owner._lock:
                    owner.requests.append((self.path, dict(self.headers)))
                path = self.path
                if path.startswith("/cdn"):
                    path = path[len("/cdn"):]
                elif path.startswith("/datasets/") and path in owner.files:  # the Hub redirects LFS files
                    need = owner.require_token.get(path)
                    if need and self.headers.get("Authorization") != f"Bearer {need}":
                        self.send_error(401, "gated")
                        return
                    self.send_response(302)
                    self.send_header("Location", (owner.cdn or "") + "/cdn" + path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
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
