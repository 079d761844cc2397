"""A real HTTP server on 127.0.0.1 serving MNIST-format IDX files built from the sample.

Paths are ``/<mode>/<file name>``; the mode says how the server behaves:
``good`` serves the files, ``404`` and ``500`` answer with that status,
``corrupt`` serves other bytes of the same length, ``truncated`` announces the
full length but hangs up half-way.  Every request is logged in ``requests``.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

from seqgen.data import load_mnist
from seqgen.idx import write_idx

FILES = {
    "train-images-idx3-ubyte.gz": ("train", "images"),
    "train-labels-idx1-ubyte.gz": ("train", "labels"),
    "t10k-images-idx3-ubyte.gz": ("test", "images"),
    "t10k-labels-idx1-ubyte.gz": ("test", "labels"),
}


def build_idx_folder(folder: Path) -> dict[str, str]:
    """Write the four files (from the sample) into ``folder``; return a pooch sha256 registry."""
    folder.mkdir(parents=True, exist_ok=True)
    registry = {}
    for name, (split, field) in FILES.items():
        digits = load_mnist(split, source="sample")
        path = write_idx(folder / name, getattr(digits, field))
        registry[name] = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return registry


class MnistServer:
    def __init__(self, folder: Path):
        self.folder = folder
        self.registry = build_idx_folder(folder)
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                _, mode, name = self.path.split("/", 2)
                path = server.folder / name
                if mode in ("404", "500") or not path.is_file():
                    self.send_error(int(mode) if mode in ("404", "500") else 404)
                    return
                body = path.read_bytes()
                if mode == "corrupt":
                    body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "truncated":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, mode: str = "good") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{mode}/"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
