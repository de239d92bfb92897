"""Shared constants and helpers of tests/chain (a uniquely named module: test dirs have no packages)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from fedmarket.chain.client import MarketClient, TxResult, score_commitment, vote_commitment

WINDOW = 100
REWARD = 1_000_003


@dataclass(frozen=True)
class Actors:
    owner: LocalAccount
    aggregator: LocalAccount
    validators: list[LocalAccount]
    trainers: list[LocalAccount]
    outsider: LocalAccount
    deployer: LocalAccount


def update_digest(trainer: str, round: int) -> bytes:
    return keccak(text=f"update {trainer} {round}")


def salt_of(trainer: str, round: int) -> bytes:
    return keccak(text=f"salt {trainer} {round}")


def ballot_salt(member: str, round: int, kind: str) -> bytes:
    return keccak(text=f"{kind} salt {member} {round}")


def score_by_commit_reveal(members: Sequence[MarketClient], model_id: int, round: int, scores: Sequence[Sequence[int]]) -> list[TxResult]:
    """Every member commits to its scores, then every member reveals them; the reveals' results."""
    for m, s in zip(members, scores, strict=True):
        m.commit_scores(model_id, round, score_commitment(model_id, round, m.sender, s, ballot_salt(m.sender, round, "scores")))
    return [m.reveal_scores(model_id, round, s, ballot_salt(m.sender, round, "scores")) for m, s in zip(members, scores, strict=True)]


def vote_by_commit_reveal(members: Sequence[MarketClient], model_id: int, round: int, votes: Sequence[bool]) -> list[TxResult]:
    """Every member commits to its vote, then every member reveals it (the last reveal settles); the reveals' results."""
    for m, ok in zip(members, votes, strict=True):
        m.commit_vote(model_id, round, vote_commitment(model_id, round, m.sender, ok, ballot_salt(m.sender, round, "vote")))
    return [m.reveal_vote(model_id, round, ok, ballot_salt(m.sender, round, "vote")) for m, ok in zip(members, votes, strict=True)]
