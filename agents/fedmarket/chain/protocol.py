"""The Marketplace protocol's values and arithmetic in Python, in one place.

Everything here mirrors contracts/ (MarketStorage.sol's caps, lib/Shares.sol, lib/Median.sol,
RoundSettlement.sol's slash rules) and docs/protocol.md; a Python module that needs a cap, a share or the median rule takes it from here,
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
MIN_WINDOW_REAL_S = 300
"""The shortest window a Marketplace deployed on a real network accepts (blocks take seconds there)."""
DEFAULT_START_WINDOW_S = 7 * 24 * 3600
"""ModelParams.startWindow by default: a task that has not started a week after posting may be cancelled by anyone."""
DEFAULT_MAX_SAMPLES = 10**9
"""ModelParams.maxSamples by default: the largest sample count a reveal may claim (its FedAvg weight)."""
MAX_SCORE = 10**9
"""The contract clamps every score to -MAX_SCORE..MAX_SCORE micro-units (fl.utility's SCORE_LIMIT, 1000.0)."""

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


def lower_median(values: Sequence[int]) -> int:
    """Median.medianOf: the lower median, always one of the values (s[(k - 1) // 2] sorted); 0 for none."""
    ordered = sorted(int(v) for v in values)
    return ordered[(len(ordered) - 1) // 2] if ordered else 0


def clamp_score(score: int) -> int:
    """A score as the contract stores it: clamped to -MAX_SCORE..MAX_SCORE micro-units."""
    return max(-MAX_SCORE, min(MAX_SCORE, int(score)))


def utility_of(scores: Sequence[int], committee_size: int) -> int:
    """An update's utility as the contract takes it from the scores the members that scored gave it:
    each clamped to +-MAX_SCORE, their lower median; 0 unless more than half of the committee scored."""
    if len(scores) * 2 <= committee_size:
        return 0
    return lower_median([clamp_score(v) for v in scores])


def poison_slashed(scores: Sequence[int], committee_size: int, threshold: int) -> bool:
    """Whether the contract poison-slashes an update (RoundSettlement._slashTrainers) given the
    scores the members that scored gave it: its utility is below `threshold` and a qualified
    majority of the committee's SEATS (not of those that scored) scored it below `threshold`,
    3 * below >= 2 * committee_size; scores clamped as stored. (A trainer whose stake is already
    gone loses nothing more: the contract then emits no Slashed event.)"""
    below = sum(clamp_score(v) < threshold for v in scores)
    return utility_of(scores, committee_size) < threshold and 3 * below >= 2 * committee_size


def late_slashes_apply(committed: int, trainer_count: int) -> bool:
    """Whether the trainers that did not reveal are late-slashed in a round (issue 11's rule):
    not when fewer than half of the task's trainers committed, 2 * committed < trainer_count
    (the round's parent model was likely not retrievable)."""
    return 2 * committed >= trainer_count


def min_window_for(chain_id: int) -> int:
    """The Marketplace constructor's minWindow: MIN_WINDOW_S on dev chains, MIN_WINDOW_REAL_S elsewhere."""
    return MIN_WINDOW_S if chain_id in DEV_CHAIN_IDS else MIN_WINDOW_REAL_S
