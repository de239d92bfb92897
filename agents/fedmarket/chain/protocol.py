"""The Marketplace protocol's values and arithmetic in Python, in one place.

Everything here mirrors contracts/ (MarketStorage.sol's caps, lib/Shares.sol, lib/Median.sol) and
docs/protocol.md; a Python module that needs a cap, a share or the median rule takes it from here,
never from a literal. tests/contracts checks these against the deployed contract.
"""

from __future__ import annotations

from collections.abc import Sequence

WEI_PER_ETH = 10**18
"""1 ether in wei."""

BPS = 10_000
"""Basis points in a whole (Shares.BPS): shares and slash fractions are out of this."""

MAX_TRAINERS = 64
MAX_VALIDATORS = 32
MAX_COMMITTEE = 9
MAX_ROUNDS = 1000
MIN_WINDOW_S = 1
MAX_WINDOW_S = 30 * 24 * 3600
DEFAULT_START_WINDOW_S = 7 * 24 * 3600
"""ModelParams.startWindow by default: a task that has not started a week after posting may be cancelled by anyone."""

DEFAULT_TRAINER_SHARE_BPS = 7000
DEFAULT_VALIDATOR_SHARE_BPS = 2000
DEFAULT_AGGREGATOR_SHARE_BPS = 1000

ANVIL_CHAIN_ID = 31337
"""anvil's (and hardhat's) default chain id."""
ETH_TESTER_CHAIN_ID = 131277322940537
"""The embedded chain's (eth-tester / py-evm) chain id."""
DEV_CHAIN_IDS = (ANVIL_CHAIN_ID, ETH_TESTER_CHAIN_ID)

PAYMENT_EVENTS = {"ContributionPayment": "trainer", "ValidationPayment": "validator", "OrchestrationPayment": "aggregator"}
"""generateTrainingPayments' per-participant payment events -> the role each pays."""
BUYER_RETURN_EVENT = "ModelBuyerReturnPayment"
ROLES = ("trainer", "validator", "aggregator")


def of_bps(amount: int, bps: int) -> int:
    """Shares.ofBps: `bps` basis points of `amount`, rounded down."""
    return amount * bps // BPS


def round_budget(reward: int, rounds: int, round: int) -> int:
    """Shares.roundBudget: reward / rounds for every round, the last one also takes the remainder."""
    if round < rounds:
        return reward // rounds
    return reward // rounds + reward % rounds


def pro_rata(amount: int, part: int, total: int) -> int:
    """Shares.proRata: `amount * part / total`, rounded down."""
    return amount * part // total


def median_toward_zero(values: Sequence[int]) -> int:
    """Median.medianOf: the middle value; with an even count the mean of the middle two, rounded
    toward zero as Solidity's signed division does; 0 for no values."""
    ordered = sorted(int(v) for v in values)
    k = len(ordered)
    if k == 0:
        return 0
    if k % 2 == 1:
        return ordered[k // 2]
    total = ordered[k // 2 - 1] + ordered[k // 2]
    half = abs(total) // 2  # Solidity's signed division rounds toward zero; Python's // would not
    return half if total >= 0 else -half
