"""The Marketplace protocol's values and arithmetic in Python, in one place.

Everything here mirrors contracts/ (MarketStorage.sol's caps, lib/Shares.sol, lib/Median.sol,
lib/Agreement.sol, RoundSettlement.sol's slash and pay rules, the committee's commitments) and docs/protocol.md; a Python module that needs a cap, a share or the median rule takes it from here,
never from a literal. tests/contracts checks these against the deployed contract.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi import encode as abi_encode
from eth_utils import keccak

WEI_PER_ETH = 10**18
"""1 ether in wei."""

BPS = 10_000
"""Basis points in a whole (Shares.BPS): shares and slash fractions are out of this."""

MAX_TRAINERS = 64
MAX_VALIDATORS = 32
MAX_COMMITTEE = 9
MAX_ELECTED_TRAINERS = 32
"""Most trainers of an elected-committee task (maxValidators 0): its committee map has 32 bits."""
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

MAX_TOLERANCE_BPS = 20_000
"""ModelParams.agreementToleranceBps is 1..MAX_TOLERANCE_BPS."""
DEFAULT_POISON_THRESHOLD = -500_000
"""ModelParams.poisonThreshold by default (micro-units of utility, -0.5): a median utility below it,
with two thirds of the committee's seats below it, is poison-slashed (docs/protocol.md). Chosen by
`bench fairness` at issue scale (bench/results/fairness.md, "The poison threshold"): honest
non-IID updates scored down to -0.42, so -0.1 poison-slashed 11 % of honest Dir(0.1) updates and
4 % of pat:2's; at -0.5 none, while noise, x10 scale and ALIE (-1) stay slashed every round and the
attacks above it (sign and label flips, copies) are still paid nothing."""
DEFAULT_AGREEMENT_TOLERANCE_BPS = 10_000
"""ModelParams.agreementToleranceBps by default: a member is paid while its distance from the
utilities is below their size (docs/protocol.md, "Validator pay")."""

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


def score_commitment(model_id: int, round: int, validator: str, scores: Sequence[int], salt: bytes) -> bytes:
    """The commitment commitScores expects: keccak256(abi.encode(modelId, round, validator,
    int64[] scores, bytes32 salt)), scores as they will be revealed (unclamped)."""
    encoded = abi_encode(["uint256", "uint32", "address", "int64[]", "bytes32"], [model_id, round, validator, [int(v) for v in scores], salt])
    return keccak(encoded)


def vote_commitment(model_id: int, round: int, validator: str, ok: bool, salt: bytes) -> bytes:
    """The commitment commitVote expects: keccak256(abi.encode(modelId, round, validator, bool ok, bytes32 salt))."""
    return keccak(abi_encode(["uint256", "uint32", "address", "bool", "bytes32"], [model_id, round, validator, bool(ok), salt]))


def validator_weights(scores: Sequence[Sequence[int] | None], utilities: Sequence[int], tolerance_bps: int) -> tuple[list[int], list[bool]]:
    """RoundSettlement._agreement (lib/Agreement.sol): each committee position's agreement weight
    and whether it is slashed Disagreed. `scores[j]` is position j's revealed scores (None: it
    revealed none), `utilities` the round's medians as scored (before any duplicate refusal).
    With M = sum |u_k| and tolerance = M * tolerance_bps // BPS, a member with distance
    D = sum |clamp(s_k) - u_k| weighs tolerance - D while D < tolerance, else 0 and is Disagreed;
    when M == 0 every member that revealed weighs 1 and none is Disagreed."""
    magnitude = sum(abs(int(u)) for u in utilities)
    tolerance = of_bps(magnitude, tolerance_bps)
    weights: list[int] = []
    disagreed: list[bool] = []
    for member in scores:
        if member is None:
            weights.append(0)
            disagreed.append(False)
            continue
        if magnitude == 0:
            weights.append(1)
            disagreed.append(False)
            continue
        distance = sum(abs(clamp_score(s) - int(u)) for s, u in zip(member, utilities, strict=True))
        weight = tolerance - distance if distance < tolerance else 0
        weights.append(weight)
        disagreed.append(weight == 0)
    return weights, disagreed


def validator_pay(pool: int, weights: Sequence[int], eligible: Sequence[bool]) -> tuple[list[int], int, int]:
    """RoundSettlement._payCommittee: the validator pool V split equally among the eligible members
    (revealed scores, and a vote when a proposal was published). An eligible member of weight 0
    (Disagreed) forfeits its share to the trainer carry, never to the others nor to the buyer.
    Returns each position's pay, what returns to the buyer (the dust, or all of V when nobody is
    eligible) and what goes to the trainer carry."""
    members = sum(1 for ok in eligible if ok)
    if members == 0:
        return [0] * len(weights), pool, 0
    share = pool // members
    pay = [share if ok and w > 0 else 0 for w, ok in zip(weights, eligible, strict=True)]
    carried = share * sum(1 for w, ok in zip(weights, eligible, strict=True) if ok and w == 0)
    return pay, pool - sum(pay) - carried, carried


def refused_updates(digests: Sequence[bytes]) -> list[bool]:
    """Which reveals (in reveal order) settlement refuses: a digest an earlier reveal of the round
    already revealed (MarketCore._revealedDigests); such an update's utility is 0."""
    seen: set[bytes] = set()
    refused = []
    for digest in digests:
        refused.append(bytes(digest) in seen)
        seen.add(bytes(digest))
    return refused
