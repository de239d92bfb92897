"""Shared constants and helpers of tests/chain (a uniquely named module: test dirs have no packages)."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils import keccak

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
