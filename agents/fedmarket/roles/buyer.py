"""The model buyer's operations, as plain functions over a MarketClient signing as the buyer.

`task_params` is the one place a task's ModelParams are built from what a buyer decides (every
runner, the CLI and the benchmarks call it). The buyer posts a task (escrowing the reward), may
top the escrow up while the task is open,
starts training once enough participants have staked (or cancels before), ends the task and
settles it (finalizeContract, then generateTrainingPayments), and withdraws what it is owed.
The CLI's `fedmarket task ...` commands and the scripted market use these; so will the agents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fedmarket.chain.protocol import BUYER_RETURN_EVENT, PAYMENT_EVENTS
from fedmarket.errors import FedmarketError

if TYPE_CHECKING:
    from fedmarket.chain.client import MarketClient, ModelParams, TxResult


@dataclass(frozen=True)
class Payout:
    """One payee's settlement as generateTrainingPayments credited it."""

    role: str  # "trainer" | "validator" | "aggregator" | "buyer"
    address: str
    earned: int  # rewards (for the buyer: everything returned to it)
    stake_returned: int

    @property
    def total(self) -> int:
        return self.earned + self.stake_returned


@dataclass(frozen=True)
class Settlement:
    """What `finalize_and_settle` did."""

    model_id: int
    finalized: TxResult | None  # None when the task was already finalized
    payments: TxResult
    payouts: list[Payout] = field(default_factory=list)

    @property
    def credited(self) -> int:
        return sum(p.total for p in self.payouts)

    @property
    def gas_used(self) -> int:
        return self.payments.gas_used + (self.finalized.gas_used if self.finalized else 0)


PHASES = ("commit", "reveal", "score", "publish", "confirm")
"""The windows a task sets, by name: score is ScoreCommit's, confirm VoteCommit's; reveal serves every reveal
(trainers', then the committee's scores and votes)."""


def task_params(
    spec_cid: str | bytes,
    initial_model_cid: str | bytes,
    aggregator: str,
    *,
    rounds: int,
    trainers: int | tuple[int, int],
    validators: int,
    committee: int,
    window: int,
    windows: dict[str, int | None] | None = None,
    stake: int | None = None,
    **terms: Any,
) -> ModelParams:
    """A task's ModelParams. `trainers`: the exact number, or (min, max); `validators`: the most
    that may stake; `committee`: the committee size; `window`: every phase's window in
    seconds, unless `windows` names a phase's own (e.g. {"commit": 120}); `stake`: every role's
    stake unless `trainer_stake` / `validator_stake` / `aggregator_stake` is given. The other
    keywords are ModelParams' own (license_fee, slash bps, shares, poison_threshold, start_window)."""
    from fedmarket.chain.client import ModelParams

    low, high = (trainers, trainers) if isinstance(trainers, int) else trainers
    own = windows or {}
    unknown = sorted(set(own) - set(PHASES))
    if unknown:
        raise FedmarketError(f"unknown phase {', '.join(unknown)}: the phases are {', '.join(PHASES)}")
    phase_windows = {f"{phase}_window": own.get(phase) or window for phase in PHASES}
    stakes = {f"{role}_stake": stake for role in ("trainer", "validator", "aggregator") if stake is not None}
    return ModelParams(
        spec_digest=spec_cid, initial_model_digest=initial_model_cid, aggregator=aggregator, rounds=rounds,
        min_trainers=low, max_trainers=high, committee_size=committee, max_validators=validators,
        **phase_windows, **{**stakes, **terms},
    )  # fmt: skip


def post_task(market: MarketClient, params: ModelParams, reward_wei: int) -> TxResult:
    """Post a task escrowing `reward_wei`; the result's `.model_id` is the new task's id."""
    if reward_wei <= 0:
        raise FedmarketError("a task needs a reward > 0 wei")
    return market.new_model(params, reward_wei)


def fund_task(market: MarketClient, model_id: int, amount_wei: int) -> TxResult:
    """Top the escrow of an open task up (owner only)."""
    if amount_wei <= 0:
        raise FedmarketError("fund with an amount > 0 wei")
    return market.pay_for_model(model_id, amount_wei)


def start_task(market: MarketClient, model_id: int) -> TxResult:
    """Fix the reward and open round 1 (owner or aggregator; enough participants staked)."""
    return market.start_training(model_id)


def cancel_task(market: MarketClient, model_id: int) -> TxResult:
    """Cancel an open task: escrow and every stake are credited back (owner only)."""
    return market.cancel_model(model_id)


def finalize_and_settle(market: MarketClient, model_id: int) -> Settlement:
    """End the task if it still trains (finalizeContract), then credit every payee
    (generateTrainingPayments). A task already finalized is only settled; one already settled or
    cancelled is refused with one line."""
    from fedmarket.chain.client import Status

    state = market.get_model(model_id).state
    if state.status in (Status.SETTLED, Status.CANCELLED):
        raise FedmarketError(f"task {model_id} is already {str(state.status).lower()}: nothing to finalize")
    finalized = market.finalize_contract(model_id) if state.status != Status.FINALIZED else None
    payments = market.generate_training_payments(model_id)
    return Settlement(model_id, finalized, payments, payouts_of(payments))


def payouts_of(payments: TxResult) -> list[Payout]:
    """The payees of a generateTrainingPayments (or cancelModel) transaction, from its events."""
    payouts = []
    for event in payments.events:
        role = PAYMENT_EVENTS.get(event.name)
        if role is not None:
            address = event.args.get("trainer") or event.args.get("validator") or event.args.get("aggregator")
            payouts.append(Payout(role, address, int(event.args["earned"]), int(event.args["stakeReturned"])))
        elif event.name == BUYER_RETURN_EVENT:
            payouts.append(Payout("buyer", event.args["owner"], int(event.args["amount"]), 0))
    return payouts


def withdraw(market: MarketClient) -> tuple[int, TxResult]:
    """Pull the sender's whole credited balance; returns (wei withdrawn, transaction)."""
    result = market.withdraw()
    return int(result.event("Withdrawal").args["amount"]), result
