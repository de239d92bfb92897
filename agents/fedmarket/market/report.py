"""The market report (design.md §6, extended), rebuilt from the chain and, for accuracy, the store.

`build_report(market, model_id, ...)` reads everything the contract said about one task: its
events (an EventCursor over the Marketplace, filtered on the task's modelId, from `start_block`)
and its views (the task's state, each participant's standing, the contract's balance). Nothing
comes from the process that ran the market, so a market run in one process (`fedmarket demo`)
and one run by separate agent processes (`fedmarket up`) give the same report, and
`fedmarket report` can write it afterwards from the chain alone. What only the runners know
(wall time per round, the agents' train / chain / storage seconds) is passed in when known.

Learning metrics: with a `store` and the task's `TaskData`, every round's global model (its CID
is in RoundClosed) is downloaded, decoded against the task's model and evaluated on the
clients' test splits, sample-weighted, exactly as `fl.sim` evaluates its global models, so a
market round can be compared with the simulation's. Without them, accuracy / loss / auc are null.

Utilities are recomputed from the ScoresRevealed events (the contract's views keep only the
last two rounds' scores): u_i is `chain.protocol.utility_of` of the committee's revealed scores for
trainer i (clamped, their lower median, 0 without a quorum), trainers in reveal order
(UpdateRevealed.index), as the contract takes it. Each round also lists its committee's commit-
reveal (who committed scores and a vote, who revealed them, how each voted), what each member was
paid (pro rata to how close its scores came to the medians), who was slashed for disagreeing with
them (Disagreed), and the reveals refused as duplicates of a digest already revealed in the round.

Gas: every distinct transaction that emitted an event of the task is counted once. A transaction
belongs to round r when it closed round r (RoundClosed; it also opens round r + 1: RoundStarted is
not used to attribute gas, so nothing is counted twice) or, failing that, when its events name
round r (commit, reveal, score and vote commits and reveals, publish); the others (newModel, payForModel, licences,
joins, startTraining, finalizeContract, generateTrainingPayments) are set-up and settlement,
counted in `totals.gas_used` only. `withdraw()` emits no event of a task (Withdrawal names only
the account), so withdrawals are not in the task's gas.

Assumptions: withdrawals are the Withdrawal events of each account on this contract from
`start_block` on; the Marketplace's credit is per account, not per task, so this assumes fresh
accounts per run (no account of the task withdrew credit of another task in that range). Likewise
`totals.conserved` compares the task's deposits with its withdrawals plus the contract's whole
balance: exact for a contract that holds this task alone (the demo deploys its own).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmarket.chain.protocol import (
    ANVIL_CHAIN_ID,
    PAYMENT_EVENTS,
    ROLES,
    utility_of,
)
from fedmarket.chain.records import Role, SlashReason, Status
from fedmarket.errors import FedmarketError
from fedmarket.storage.cid import digest_to_cid

if TYPE_CHECKING:
    from fedmarket.chain.client import MarketClient
    from fedmarket.chain.events import Event
    from fedmarket.fl.taskspec import TaskData
    from fedmarket.storage.store import BlobStore

ZERO_DIGEST = bytes(32)
CREDITING_EVENTS = {
    "ContributionPayment": ("earned", "stakeReturned"), "ValidationPayment": ("earned", "stakeReturned"),
    "OrchestrationPayment": ("earned", "stakeReturned"), "ModelBuyerReturnPayment": ("amount",),
    "LicenseIncomeCredited": ("amount",), "ParticipantLeft": ("stakeReturned", "feeReturned"),
}  # fmt: skip
"""The events by which a task credits accounts (pull payments), and the amounts each credits."""

# ----------------------------------------------------------------------------- pure helpers


def utilities_of(reveal_order: Sequence[str], scores: Iterable[Sequence[int]], committee_size: int) -> dict[str, int]:
    """u_i per revealed trainer, as the contract takes it (chain.protocol.utility_of): the lower
    median of the submitted score lists' i-th entries, clamped (each list in reveal order, one per
    committee member that scored); 0 without a quorum of more than half the committee."""
    lists = [list(s) for s in scores]
    for entry in lists:
        if len(entry) != len(reveal_order):
            raise FedmarketError(f"a score list has {len(entry)} scores for {len(reveal_order)} revealed updates")
    return {trainer: utility_of([entry[i] for entry in lists], committee_size) for i, trainer in enumerate(reveal_order)}


def _num(value: float | None) -> float | None:
    """A JSON number: rounded to 6 decimals; None for null, NaN and infinities."""
    if value is None:
        return None
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return None
    return round(value, 6)


NULL_METRICS: dict[str, float | None] = {"accuracy": None, "loss": None, "auc": None}

# ----------------------------------------------------------------------------- evaluation


class _Evaluator:
    """Metrics of global models by CID (cached: a rejected round carries the previous model over)."""

    def __init__(self, store: BlobStore | None, task_data: TaskData | None, notes: list[str]) -> None:
        self.store = store
        self.task_data = task_data
        self.notes = notes
        self.cache: dict[str, dict[str, float | None]] = {}
        self._model: Any = None
        self._expected: Any = None
        self._max_size: int | None = None

    @property
    def enabled(self) -> bool:
        return self.store is not None and self.task_data is not None

    def metrics(self, cid: str) -> dict[str, float | None]:
        if not self.enabled:
            return dict(NULL_METRICS)
        if cid not in self.cache:
            try:
                self.cache[cid] = self._evaluate(cid)
            except FedmarketError as exc:
                # One unreadable model must not sink the whole report: say which and go on.
                self.notes.append(f"model {cid} not evaluated: {exc}")
                self.cache[cid] = dict(NULL_METRICS)
        return dict(self.cache[cid])

    def _evaluate(self, cid: str) -> dict[str, float | None]:
        from fedmarket.fl.evaluation import evaluate_clients, weighted_overall
        from fedmarket.storage.weights import decode_weights, expected_layout, max_weights_size

        assert self.store is not None and self.task_data is not None
        data = self.task_data
        spec = data.model_spec
        if self._model is None:
            self._model = spec.build()
            self._expected = expected_layout(self._model.state_dict())
            self._max_size = max_weights_size(self._model.state_dict(), spec.id)
        # A blob larger than the task's weights file cannot be one: refused unread (issue 11).
        state, _meta = decode_weights(self.store.get(cid, max_size=self._max_size), self._expected, expected_arch=spec.id)
        # The same call as fl.sim's record(): same test splits, same weighting.
        per_client = evaluate_clients(self._model, state, data.dataset.x, data.dataset.y, data.test_sets(), data.dataset.task)
        overall = weighted_overall(per_client)
        return {"accuracy": _num(overall.accuracy), "loss": _num(overall.loss), "auc": _num(overall.auc)}


# ----------------------------------------------------------------------------- gas


class _GasMeter:
    """gasUsed per transaction, each receipt read once."""

    def __init__(self, w3: Any) -> None:
        self.w3 = w3
        self.cache: dict[str, int] = {}

    def gas(self, event: Event) -> int:
        if event.tx_hash not in self.cache:
            self.cache[event.tx_hash] = self._embedded(event)
        return self.cache[event.tx_hash]

    def _embedded(self, event: Event) -> int:
        # The embedded chain's fast path (eth-tester scans the chain for a receipt); else the receipt.
        from fedmarket.chain.embedded import transaction_gas_used

        used = transaction_gas_used(self.w3, event.block_number, event.tx_index, event.tx_hash)
        return used if used is not None else int(self.w3.eth.get_transaction_receipt(event.tx_hash)["gasUsed"])


# ----------------------------------------------------------------------------- the report


def short_address(address: str) -> str:
    """0x1234…cdef: enough of an address to tell participants apart in a table or a legend."""
    return f"{address[:6]}…{address[-4:]}"


def _chain_kind(market: MarketClient, chain_kind: str | None) -> str:
    from fedmarket.chain.embedded import is_embedded

    if chain_kind is not None:
        return chain_kind
    if is_embedded(market.w3):
        return "embedded"
    return "anvil" if market.chain_id == ANVIL_CHAIN_ID else "rpc"


def build_report(
    market: MarketClient,
    model_id: int,
    *,
    store: BlobStore | None = None,
    task_data: TaskData | None = None,
    labels: dict[str, str] | None = None,
    round_wall_s: dict[int, float] | None = None,
    agent_logs: Iterable[dict[str, Any]] = (),
    chain_kind: str | None = None,
    start_block: int = 0,
) -> dict[str, Any]:
    """The report of task `model_id`, from the chain's events and views (see the module docstring).

    - `store` + `task_data`: evaluate every global model (else accuracy / loss / auc are null);
    - `labels`: address -> human label (default: role and join order, "trainer 1", "buyer");
    - `round_wall_s`: round -> seconds it took (null when absent);
    - `agent_logs`: records with "round" and some of "train_s", "chain_s", "storage_s", summed per round;
    - `chain_kind`: overrides "embedded" / "anvil" (chain id 31337) / "rpc";
    - `start_block`: where to start reading events (the block the contract was deployed in, or before).
    """
    from eth_utils import to_checksum_address

    from fedmarket.chain.events import EventCursor

    w3 = market.w3
    notes: list[str] = []
    info = market.get_model(model_id)  # UnknownModel for a task that does not exist
    params, state = info.params, info.state
    labels = {to_checksum_address(a): v for a, v in (labels or {}).items()}
    round_wall_s = round_wall_s or {}
    logs = list(agent_logs)

    events = EventCursor(w3, market.address, market.abi, model_id=model_id, start_block=start_block).poll()
    withdrawals = EventCursor(w3, market.address, market.abi, names=["Withdrawal"], start_block=start_block).poll()
    withdrawn: dict[str, int] = {}
    for event in withdrawals:
        account = event.args["account"]
        withdrawn[account] = withdrawn.get(account, 0) + int(event.args["amount"])

    # ---------------------------------------------------------------- who is who
    owner = state.owner
    roles: dict[str, str] = {}  # join order
    deposited: dict[str, int] = {}
    stake_returned: dict[str, int] = {}
    buyer_deposited = buyer_refunded = 0
    credited = 0  # what the task has credited to accounts (payments, refunds, licence fees)
    burned = 0  # verdict slashes and the carry no round paid out (CarryBurned): nobody's, ever
    for event in events:
        args = event.args
        if event.name in CREDITING_EVENTS:
            credited += sum(int(args[field]) for field in CREDITING_EVENTS[event.name])
        elif event.name == "CarryBurned":
            burned += int(args["amount"])
        if event.name == "ParticipantJoined":
            who = args["participant"]
            roles[who] = Role(int(args["role"])).name.lower()
            deposited[who] = deposited.get(who, 0) + int(args["stake"])
        elif event.name == "LicensePurchased":
            who = args["licensee"]
            deposited[who] = deposited.get(who, 0) + int(args["fee"])
        elif event.name == "ModelCreationPayment":
            buyer_deposited += int(args["amount"])
        elif event.name == "ModelBuyerReturnPayment":
            buyer_refunded += int(args["amount"])
        elif event.name in PAYMENT_EVENTS:
            who = args[PAYMENT_EVENTS[event.name]]
            stake_returned[who] = stake_returned.get(who, 0) + int(args["stakeReturned"])
        elif event.name == "ParticipantLeft":  # left an Open task, or took a licence fee back after a cancel
            who = args["participant"]
            stake_returned[who] = stake_returned.get(who, 0) + int(args["stakeReturned"]) + int(args["feeReturned"])
    for who in deposited:  # licensees that never joined
        roles.setdefault(who, "licensee")
    # Named by `labels` (keystore names, the engine's names) where known, else by short address.
    label = {owner: "buyer", **{who: short_address(who) for who in roles}, **labels}

    def name(address: str) -> str:
        return label.get(address, address)

    # ---------------------------------------------------------------- rounds and gas
    gas = _GasMeter(w3)
    tx_gas: dict[str, int] = {}
    closing_round: dict[str, int] = {}
    named_rounds: dict[str, set[int]] = {}
    for event in events:
        tx_gas[event.tx_hash] = gas.gas(event)
        if event.name == "RoundClosed":
            closing_round[event.tx_hash] = int(event.args["round"])
        elif event.round is not None and event.name != "RoundStarted":
            named_rounds.setdefault(event.tx_hash, set()).add(event.round)
    round_gas: dict[int, int] = {}
    for tx, used in tx_gas.items():
        owner_round = closing_round.get(tx, min(named_rounds[tx]) if tx in named_rounds else None)
        if owner_round is not None:
            round_gas[owner_round] = round_gas.get(owner_round, 0) + used

    by_round: dict[int, list[Event]] = {}
    for event in events:
        if event.round is not None:
            by_round.setdefault(event.round, []).append(event)

    evaluator = _Evaluator(store, task_data, notes)
    if not evaluator.enabled:
        notes.append("accuracy, loss and auc are null: no store and task data to evaluate the global models with")
    initial_cid = params.initial_model_cid
    rounds = []
    for closed in (e for e in events if e.name == "RoundClosed"):
        r = int(closed.args["round"])
        rounds.append(_round_entry(r, closed, by_round.get(r, []), round_gas.get(r, 0), evaluator, name, round_wall_s, logs))

    # ---------------------------------------------------------------- money
    participants: dict[str, dict[str, Any]] = {}
    for who, role in roles.items():
        view = market.participant(model_id, who)
        participants[who] = {
            "label": name(who),
            "role": role,
            "deposited_wei": deposited.get(who, 0),
            "earned_wei": int(view.earned),
            "slashed_wei": int(view.slashed),
            "stake_returned_wei": stake_returned.get(who, 0),
            "withdrawn_wei": withdrawn.get(who, 0),
        }
    buyer = {
        "address": owner,
        "label": name(owner),
        "deposited_wei": buyer_deposited,
        "refunded_wei": buyer_refunded,
        "license_income_wei": int(state.license_income),
        "withdrawn_wei": withdrawn.get(owner, 0),
    }
    total_deposited = buyer_deposited + sum(p["deposited_wei"] for p in participants.values())
    total_withdrawn = buyer["withdrawn_wei"] + sum(p["withdrawn_wei"] for p in participants.values())
    balance = int(w3.eth.get_balance(market.address))
    task_balance = int(market.task_balance(model_id))

    final_digest = bytes(state.global_model_digest)
    final_cid = digest_to_cid(final_digest) if final_digest != ZERO_DIGEST else initial_cid
    final = {**evaluator.metrics(final_cid), "model_cid": final_cid}
    report: dict[str, Any] = {
        "model_id": int(model_id),
        "status": str(Status(state.status)).lower(),
        "chain": {"kind": _chain_kind(market, chain_kind), "chain_id": int(market.chain_id), "contract": market.address},
        "initial": {"model_cid": initial_cid, **evaluator.metrics(initial_cid)},
        "rounds": rounds,
        "participants": participants,
        "buyer": buyer,
        "totals": {
            "deposited_wei": total_deposited,
            "withdrawn_wei": total_withdrawn,
            "contract_balance_wei": balance,
            "task_balance_wei": task_balance,
            "credited_wei": credited,
            "burned_wei": burned,
            "gas_used": sum(tx_gas.values()),
            # Per task: what it took in is what it credited, burned, and still holds. (Credit is
            # per account, so withdrawals and the contract's balance mix every task's money; burned
            # wei stays in the contract as credit of the zero address, which cannot withdraw.)
            "conserved": total_deposited == credited + burned + task_balance,
        },
        "final": {k: final[k] for k in ("accuracy", "auc", "loss", "model_cid")},
        "notes": notes,
    }
    return report


def _round_entry(
    r: int,
    closed: Event,
    events: list[Event],
    gas_used: int,
    evaluator: _Evaluator,
    name: Callable[[str], str],
    round_wall_s: dict[int, float],
    logs: list[dict[str, Any]],
) -> dict[str, Any]:
    """One closed round: its model and metrics, who was accepted, its money and gas."""
    reveals = sorted((int(e.args["index"]), e.args["trainer"]) for e in events if e.name == "UpdateRevealed")
    order = [trainer for _index, trainer in reveals]
    scores = [e.args["scores"] for e in events if e.name == "ScoresRevealed"]
    committee: list[str] = next((list(e.args["committee"]) for e in events if e.name == "RoundStarted"), [])
    utilities = utilities_of(order, scores, len(committee))
    earned = dict.fromkeys(ROLES, 0)
    validator_pay: dict[str, int] = dict.fromkeys(committee, 0)
    slashes = []
    for event in events:
        if event.name == "RewardAccrued":
            role = Role(int(event.args["role"])).name.lower()
            earned[role] = earned.get(role, 0) + int(event.args["amount"])
            if role == "validator":
                who = event.args["participant"]
                validator_pay[who] = validator_pay.get(who, 0) + int(event.args["amount"])
        elif event.name == "Slashed":
            who = event.args["participant"]
            reason = SlashReason(int(event.args["reason"])).name.lower()
            slashes.append({"participant": who, "label": name(who), "reason": reason, "amount_wei": int(event.args["amount"])})
    global_cid = digest_to_cid(bytes(closed.args["globalModelDigest"]))
    mine = [entry for entry in logs if entry.get("round") == r]
    wall = round_wall_s.get(r)
    return {
        "round": r,
        "global_cid": global_cid,
        "accepted_proposal": bool(closed.args["accepted"]),
        **evaluator.metrics(global_cid),
        "committee": committee,
        "revealed": order,
        "accepted": [t for t in order if utilities[t] > 0],
        "utilities": utilities,
        "gas_used": gas_used,
        "budget_wei": int(closed.args["budget"]),
        "returned_to_buyer_wei": int(closed.args["returnedToBuyer"]),
        "earned_wei": earned,
        "slashed_wei": sum(s["amount_wei"] for s in slashes),
        "slashes": slashes,
        "committee_actions": _committee_actions(committee, events, name),
        "validator_pay_wei": {name(who): wei for who, wei in validator_pay.items()},
        "disagreed": [s["label"] for s in slashes if s["reason"] == "disagreed"],
        "refused": [
            {"trainer": e.args["trainer"], "label": name(e.args["trainer"]), "update_cid": digest_to_cid(bytes(e.args["updateDigest"]))}
            for e in events
            if e.name == "UpdateRefused"
        ],
        "wall_s": _num(wall),
        **{key: _num(sum(float(entry.get(key) or 0.0) for entry in mine)) for key in ("train_s", "chain_s", "storage_s")},
    }


def _committee_actions(committee: list[str], events: list[Event], name: Callable[[str], str]) -> list[dict[str, Any]]:
    """Per committee member of a round: whether it committed and revealed its scores and its
    vote (from the ScoresCommitted / ScoresRevealed / VoteCommitted / GlobalModelConfirmed events),
    and how it voted (None: no vote revealed)."""
    done: dict[str, set[str]] = {member: set() for member in committee}
    votes: dict[str, bool] = {}
    for event in events:
        if event.name in ("ScoresCommitted", "ScoresRevealed", "VoteCommitted", "GlobalModelConfirmed"):
            who = event.args["validator"]
            done.setdefault(who, set()).add(event.name)
            if event.name == "GlobalModelConfirmed":
                votes[who] = bool(event.args["ok"])
    return [
        {
            "validator": who,
            "label": name(who),
            "scores_committed": "ScoresCommitted" in did,
            "scores_revealed": "ScoresRevealed" in did,
            "vote_committed": "VoteCommitted" in did,
            "vote": votes.get(who),
        }
        for who, did in done.items()
    ]


# ----------------------------------------------------------------------------- output


def write_report(report: dict[str, Any], path: Path) -> None:
    """The report as JSON (indent 2) at `path`, parent folders created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def check_conservation(report: dict[str, Any]) -> None:
    """Raise FedmarketError (one line) unless the task's deposits equal what it credited, plus what
    it burned (CarryBurned), plus what it still holds (escrow, stakes, accrued rewards): per task,
    whatever other tasks hold."""
    totals = report["totals"]
    deposited, credited, held = int(totals["deposited_wei"]), int(totals["credited_wei"]), int(totals["task_balance_wei"])
    burned = int(totals.get("burned_wei", 0))
    if deposited != credited + burned + held:
        raise FedmarketError(
            f"conservation violated in task {report['model_id']}: deposited {deposited} wei != credited {credited} wei "
            f"+ burned {burned} wei + held by the task {held} wei (off by {deposited - credited - burned - held} wei)"
        )
