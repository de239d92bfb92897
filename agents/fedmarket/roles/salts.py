"""Commit-reveal salts, kept in the data dir from before the commit until the reveal.

A trainer commits to keccak256(modelId, round, updateDigest, numSamples, salt, trainer) and must
later reveal the same values; a lost salt means a lost reveal (and a late slash). So the salt is
written durably (fsync, atomic rename) *before* the commit transaction is sent, one file per
(chain, contract, task, round, trainer) under <data dir>/salts/. Committing again with the same
update reuses the stored salt (a retried commit is idempotent); a different update for a round
not yet committed on chain replaces it, and the old file is kept beside it, never deleted.

A committee member's scores and vote are committed the same way (`BallotBook`): the payload (the
scores in reveal order, or the vote) and its salt are stored before commitScores / commitVote is
sent, one file per (chain, contract, task, round, member, kind), so that a member restarted between
its commit and its reveal reveals exactly what it committed.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fedmarket.errors import FedmarketError
from fedmarket.paths import data_dir


class _Salted:
    """A stored commit's salt and commitment, kept as 0x-hex, as bytes."""

    salt: str
    commitment: str

    @property
    def salt_bytes(self) -> bytes:
        return bytes.fromhex(self.salt[2:])

    @property
    def commitment_bytes(self) -> bytes:
        return bytes.fromhex(self.commitment[2:])


@dataclass(frozen=True)
class StoredCommit(_Salted):
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


@dataclass(frozen=True)
class StoredBallot(_Salted):
    """A committee member's committed scores (kind "scores") or vote (kind "vote"), as stored at
    commit time: what revealScores / revealVote needs."""

    chain_id: int
    contract: str
    model_id: int
    round: int
    member: str
    kind: str  # "scores" or "vote"
    salt: str  # 0x + 64 hex digits
    commitment: str  # 0x + 64 hex digits
    scores: list[int] = field(default_factory=list)  # kind "scores": one per revealed update, in reveal order
    ok: bool = False  # kind "vote"

    @property
    def payload(self) -> tuple[int, ...] | bool:
        return tuple(self.scores) if self.kind == "scores" else self.ok


class _Book:
    """Durable JSON records, one per key, replaced only by moving the old file aside."""

    record: type

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else data_dir() / "salts"

    def _store(self, target: Path, existing: Any, stored: Any) -> None:
        if existing is not None:
            os.replace(target, target.with_name(f"{target.stem}.replaced-{time.time_ns()}.json"))
        _write(target, stored)

    def _read(self, path: Path) -> Any:
        try:
            return self.record(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise FedmarketError(f"stored commit {path} is unreadable ({type(exc).__name__}); it is left as it is") from None


class SaltBook(_Book):
    """The stored commits of this data dir (or of `root`)."""

    record = StoredCommit

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
        self._store(target, existing, stored)
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


class BallotBook(_Book):
    """A committee member's stored score and vote commits in this data dir (or in `root`)."""

    record = StoredBallot

    def path(self, chain_id: int, contract: str, model_id: int, round: int, member: str, kind: str) -> Path:
        return self.root / f"{chain_id}-{contract.lower()}" / f"task{model_id}-round{round}-{member.lower()}-{kind}.json"

    def prepare_scores(self, chain_id: int, contract: str, model_id: int, round: int, member: str, scores: list[int]) -> StoredBallot:
        """The score commit for `scores`, with a fresh salt, durably stored before it is returned
        (the stored one if the same scores were prepared before)."""
        from fedmarket.chain.client import new_salt, score_commitment

        def build(salt: bytes) -> StoredBallot:
            value = score_commitment(model_id, round, member, scores, salt)
            return StoredBallot(chain_id, contract, model_id, round, member, "scores", "0x" + salt.hex(), "0x" + value.hex(), scores=[int(s) for s in scores])

        return self._prepare(self.path(chain_id, contract, model_id, round, member, "scores"), tuple(int(s) for s in scores), build, new_salt)

    def prepare_vote(self, chain_id: int, contract: str, model_id: int, round: int, member: str, ok: bool) -> StoredBallot:
        """The vote commit for `ok`, with a fresh salt, durably stored before it is returned
        (the stored one if the same vote was prepared before)."""
        from fedmarket.chain.client import new_salt, vote_commitment

        def build(salt: bytes) -> StoredBallot:
            value = vote_commitment(model_id, round, member, ok, salt)
            return StoredBallot(chain_id, contract, model_id, round, member, "vote", "0x" + salt.hex(), "0x" + value.hex(), ok=bool(ok))

        return self._prepare(self.path(chain_id, contract, model_id, round, member, "vote"), bool(ok), build, new_salt)

    def _prepare(self, target: Path, payload: tuple[int, ...] | bool, build: Any, new_salt: Any) -> StoredBallot:
        existing = self._read(target)
        if existing is not None and existing.payload == payload:
            return existing
        stored = build(new_salt())
        self._store(target, existing, stored)
        return stored

    def load(self, chain_id: int, contract: str, model_id: int, round: int, member: str, kind: str) -> StoredBallot:
        stored = self._read(self.path(chain_id, contract, model_id, round, member, kind))
        if stored is None:
            raise FedmarketError(
                f"no stored {kind} commit of {member} for task {model_id} round {round} in {self.root}: "
                "reveal with the data dir (FEDMARKET_HOME) that made the commit"
            )
        return stored


def _write(path: Path, stored: Any) -> None:
    """Write `stored` as JSON durably: owner-only, fsync'd, atomically renamed, directory fsync'd."""
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
