"""Commit-reveal salts, kept in the data dir from before the commit until the reveal.

A trainer commits to keccak256(modelId, round, updateDigest, numSamples, salt, trainer) and must
later reveal the same values; a lost salt means a lost reveal (and a late slash). So the salt is
written durably (fsync, atomic rename) *before* the commit transaction is sent, one file per
(chain, contract, task, round, trainer) under <data dir>/salts/. Committing again with the same
update reuses the stored salt (a retried commit is idempotent); a different update for a round
not yet committed on chain replaces it, and the old file is kept beside it, never deleted.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from fedmarket.errors import FedmarketError
from fedmarket.paths import data_dir


@dataclass(frozen=True)
class StoredCommit:
    """What a reveal needs, as stored at commit time."""

    chain_id: int
    contract: str
    model_id: int
    round: int
    trainer: str
    update_cid: str
    num_samples: int
    salt: str  # 0x + 64 hex digits
    commitment: str  # 0x + 64 hex digits

    @property
    def salt_bytes(self) -> bytes:
        return bytes.fromhex(self.salt[2:])

    @property
    def commitment_bytes(self) -> bytes:
        return bytes.fromhex(self.commitment[2:])


class SaltBook:
    """The stored commits of this data dir (or of `root`)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else data_dir() / "salts"

    def path(self, chain_id: int, contract: str, model_id: int, round: int, trainer: str) -> Path:
        return self.root / f"{chain_id}-{contract.lower()}" / f"task{model_id}-round{round}-{trainer.lower()}.json"

    def prepare(self, chain_id: int, contract: str, model_id: int, round: int, trainer: str, update_cid: str, num_samples: int) -> StoredCommit:
        """The commit for this update, with a fresh salt, durably stored before it is returned;
        the stored one if the same update was prepared before."""
        from fedmarket.chain.client import commitment, new_salt
        from fedmarket.storage.cid import cid_to_digest

        target = self.path(chain_id, contract, model_id, round, trainer)
        existing = self._read(target)
        if existing is not None and (existing.update_cid, existing.num_samples) == (update_cid, num_samples):
            return existing
        salt = new_salt()
        value = commitment(model_id, round, cid_to_digest(update_cid), num_samples, salt, trainer)
        stored = StoredCommit(chain_id, contract, model_id, round, trainer, update_cid, num_samples, "0x" + salt.hex(), "0x" + value.hex())
        if existing is not None:
            os.replace(target, target.with_name(f"{target.stem}.replaced-{time.time_ns()}.json"))
        self._write(target, stored)
        return stored

    def load(self, chain_id: int, contract: str, model_id: int, round: int, trainer: str) -> StoredCommit:
        target = self.path(chain_id, contract, model_id, round, trainer)
        stored = self._read(target)
        if stored is None:
            raise FedmarketError(
                f"no stored commit of {trainer} for task {model_id} round {round} in {self.root}: "
                "reveal with the data dir (FEDMARKET_HOME) that made the commit"
            )
        return stored

    @staticmethod
    def _read(path: Path) -> StoredCommit | None:
        try:
            return StoredCommit(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise FedmarketError(f"stored commit {path} is unreadable ({type(exc).__name__}); it is left as it is") from None

    @staticmethod
    def _write(path: Path, stored: StoredCommit) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(asdict(stored), handle, indent=2)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
