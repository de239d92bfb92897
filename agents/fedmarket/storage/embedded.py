"""The embedded blob store: a directory of files named by CID, shared by every local process.

Layout: <root>/<two characters>/<CID>, sharded by the CID's next-to-last two characters as
Kubo's flatfs shards its blocks, so no directory grows past a few thousand entries.

Concurrency without locks: every write goes to a private temporary file in the target's
directory and is then renamed over the target (os.replace is atomic on one file system), so a
reader sees either no file or a whole one, and two processes writing the same CID write the same
bytes. Every read is hashed against the CID; a corrupted file is reported, never returned, and
the next add of that content replaces it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fedmarket.errors import FedmarketError
from fedmarket.files import atomic_write
from fedmarket.paths import data_dir
from fedmarket.storage.cid import (
    CHUNK_SIZE,
    CidHasher,
    cid_of,
    cid_of_file,
    validate_cid,
)
from fedmarket.storage.limits import too_large

_COPY_BLOCK = 4 * CHUNK_SIZE


class EmbeddedStore:
    """Blobs under `root` (default: fedmarket data dir / "blobs")."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else data_dir() / "blobs"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FedmarketError(f"cannot create the embedded store at {self.root}: {exc.strerror or exc}") from exc

    @property
    def location(self) -> str:
        return f"embedded store {self.root}"

    def path_of(self, cid: str) -> Path:
        validate_cid(cid)
        return self.root / cid[-3:-1] / cid

    # ------------------------------------------------------------------ writing

    def add(self, data: bytes) -> str:
        cid = cid_of(data)
        target = self.path_of(cid)
        if not self._holds_intact(target, cid):
            self._write_atomically(target, data)
        return cid

    def add_file(self, path: str | os.PathLike[str]) -> str:
        # One pass over the source: copy it into a temporary file while hashing it; only then is
        # the CID, and so the final name, known.
        hasher = CidHasher()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, temp_path = self._temp_file(self.root)
        except OSError as exc:
            raise FedmarketError(f"cannot write to the {self.location}: {exc.strerror or exc}") from exc
        try:
            with os.fdopen(fd, "wb") as sink, open(path, "rb") as source:
                while block := source.read(_COPY_BLOCK):
                    hasher.update(block)
                    sink.write(block)
                sink.flush()
                os.fsync(sink.fileno())
            cid = hasher.cid()
            target = self.path_of(cid)
            if self._holds_intact(target, cid):
                os.unlink(temp_path)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temp_path, target)
            return cid
        except OSError as exc:
            _unlink_quietly(temp_path)
            raise FedmarketError(f"cannot store {Path(path)}: {exc.strerror or exc}") from exc
        except BaseException:
            _unlink_quietly(temp_path)
            raise

    def _write_atomically(self, target: Path, data: bytes) -> None:
        try:
            atomic_write(target, data, durable=True)  # the bytes are on disk before the name points at them
        except OSError as exc:
            raise FedmarketError(f"cannot write {target}: {exc.strerror or exc}") from exc

    @staticmethod
    def _temp_file(directory: Path) -> tuple[int, str]:
        # Dot-prefixed names never look like a CID, so a half-written blob is never read.
        return tempfile.mkstemp(prefix=".incoming-", suffix=".tmp", dir=directory)

    @staticmethod
    def _holds_intact(target: Path, cid: str) -> bool:
        try:
            return cid_of_file(target) == cid
        except FedmarketError:  # absent or unreadable: (re)write it
            return False

    # ------------------------------------------------------------------ reading

    def get(self, cid: str, max_size: int | None = None) -> bytes:
        target = self.path_of(cid)
        try:
            with open(target, "rb") as handle:  # at most max_size + 1 bytes: a bigger file is refused unread
                data = handle.read() if max_size is None else handle.read(max_size + 1)
        except FileNotFoundError:
            raise FedmarketError(f"{cid} is not in the {self.location}") from None
        except OSError as exc:
            raise FedmarketError(f"cannot read {target}: {exc.strerror or exc}") from exc
        if max_size is not None and len(data) > max_size:
            raise too_large(cid, max_size, self.location)
        if cid_of(data) != cid:
            raise FedmarketError(f"stored blob {target} is corrupted: content does not match CID {cid}")
        return data

    def has(self, cid: str) -> bool:
        """Whether a file for `cid` exists (its content is verified on get, not here)."""
        return self.path_of(cid).is_file()

    def pin(self, cid: str) -> None:
        """The embedded store never deletes anything; pinning only checks that the blob is here."""
        if not self.has(cid):
            raise FedmarketError(f"cannot pin {cid}: it is not in the {self.location}")


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
