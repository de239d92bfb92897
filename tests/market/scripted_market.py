"""A test fixture: a whole market with fixed scores and no learning, for the report's tests.

It drives every phase of the protocol with real transactions on a dev chain (the embedded one by
default, or anvil), signing as the chain's dev accounts: a buyer posts and funds a task, four
trainers buy licences and stake, four validators and the aggregator stake, and three rounds run
with fixed utilities. The script is chosen so that every kind of settlement shows:

- trainer A, B: honest, utilities 0.4 and 0.2 (A earns twice what B does);
- trainer C ("late"): honest in rounds 1 and 3, never commits in round 2 -> late slash;
- trainer D ("poisoner"): utility -0.5 in rounds 1 and 2 (below the -0.1 poison threshold) ->
  bad slash twice (its whole stake), a small honest update in round 3;
- validator committee of 3 out of 4, rotating; in round 2 one member never scores -> late slash
  and no validator pay for it;
- the aggregator publishes a (made-up) global model CID every round and the committee confirms it.

Nothing is trained: updates and global models are CIDs of short labels. The report says so.
Everything is paid by the contract; this module only reads what it did (events and views) and
checks conservation: deposited == withdrawn and the contract ends with 0 wei.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fedmarket.chain.protocol import ANVIL_CHAIN_ID, WEI_PER_ETH, of_bps
from fedmarket.errors import FedmarketError
from fedmarket.roles import buyer

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

    from fedmarket.chain.client import MarketClient, TxResult

ETH = WEI_PER_ETH
NOTE = "scripted market: nothing is trained (updates and global models are CIDs of labels); accuracy, loss and auc are null"


@dataclass(frozen=True)
class ScriptedTrainer:
    label: str
    utilities: tuple[int | None, ...]  # per round, micro-units; None = does not commit that round


@dataclass(frozen=True)
class ScriptConfig:
    """The scripted task. Amounts in wei, windows in seconds, utilities in micro-units."""

    rounds: int = 3
    reward: int = 3 * ETH
    top_up: int = ETH
    license_fee: int = ETH // 100
    trainer_stake: int = ETH // 10
    validator_stake: int = ETH // 20
    aggregator_stake: int = ETH // 10
    window: int = 60
    committee: int = 3
    validators: int = 4
    late_slash_bps: int = 1_000
    bad_slash_bps: int = 5_000
    poison_threshold: int = -100_000
    trainers: tuple[ScriptedTrainer, ...] = (
        ScriptedTrainer("trainer A", (400_000, 400_000, 400_000)),
        ScriptedTrainer("trainer B", (200_000, 200_000, 200_000)),
        ScriptedTrainer("trainer C (late)", (100_000, None, 100_000)),
        ScriptedTrainer("trainer D (poisoner)", (-500_000, -500_000, 50_000)),
    )
    silent_validator_round: int = 2  # in this round the committee's last member never scores (0: never)
    score_spread: int = 10_000  # member j scores utility + (j - middle) * spread: the median is the utility

    @property
    def accounts_needed(self) -> int:
        return 2 + len(self.trainers) + self.validators


@dataclass
class RoundRecord:
    round: int
    global_cid: str
    accepted: list[str]
    gas_used: int
    wall_s: float
    chain_s: float
    storage_s: float
    budget_wei: int = 0
    trainer_pool_wei: int = 0
    validator_pool_wei: int = 0
    aggregator_pool_wei: int = 0
    trainer_earned_wei: int = 0
    validator_earned_wei: int = 0
    aggregator_earned_wei: int = 0
    slashed_wei: int = 0
    returned_to_buyer_wei: int = 0
    slashes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Party:
    label: str
    role: str  # trainer | validator | aggregator | buyer
    account: LocalAccount
    deposited: int = 0
    earned: int = 0
    slashed: int = 0
    withdrawn: int = 0

    @property
    def address(self) -> str:
        return self.account.address


@dataclass
class MarketRun:
    """The outcome of a scripted run: what went in, what came out, round by round."""

    chain_kind: str
    chain_id: int
    contract: str
    model_id: int
    buyer: Party
    parties: list[Party]
    rounds: list[RoundRecord]
    refunded: int
    license_income: int
    contract_balance: int
    final_model_cid: str
    gas_used: int
    wall_s: float

    @property
    def deposited(self) -> int:
        return self.buyer.deposited + sum(p.deposited for p in self.parties)

    @property
    def withdrawn(self) -> int:
        return self.buyer.withdrawn + sum(p.withdrawn for p in self.parties)

    def report(self) -> dict[str, Any]:
        """The report of design.md §6 (fields that need learning are null; see `note`)."""
        return {
            "note": NOTE,
            "model_id": self.model_id,
            "chain": {"kind": self.chain_kind, "chain_id": self.chain_id, "contract": self.contract},
            "rounds": [
                {
                    "round": r.round,
                    "global_cid": r.global_cid,
                    "accuracy": None,
                    "loss": None,
                    "accepted": r.accepted,
                    "gas_used": r.gas_used,
                    "wall_s": round(r.wall_s, 3),
                    "train_s": 0.0,
                    "chain_s": round(r.chain_s, 3),
                    "storage_s": round(r.storage_s, 3),
                    "budget_wei": r.budget_wei,
                    "pools_wei": {"trainer": r.trainer_pool_wei, "validator": r.validator_pool_wei, "aggregator": r.aggregator_pool_wei},
                    "earned_wei": {"trainer": r.trainer_earned_wei, "validator": r.validator_earned_wei, "aggregator": r.aggregator_earned_wei},
                    "slashed_wei": r.slashed_wei,
                    "returned_to_buyer_wei": r.returned_to_buyer_wei,
                    "slashes": r.slashes,
                }
                for r in self.rounds
            ],
            "participants": {
                p.address: {
                    "label": p.label,
                    "role": p.role,
                    "deposited_wei": p.deposited,
                    "earned_wei": p.earned,
                    "slashed_wei": p.slashed,
                    "withdrawn_wei": p.withdrawn,
                }
                for p in self.parties
            },
            "buyer": {
                "address": self.buyer.address,
                "deposited_wei": self.buyer.deposited,
                "refunded_wei": self.refunded,
                "license_income_wei": self.license_income,
                "withdrawn_wei": self.buyer.withdrawn,
            },
            "totals": {
                "deposited_wei": self.deposited,
                "withdrawn_wei": self.withdrawn,
                "contract_balance_wei": self.contract_balance,
                "gas_used": self.gas_used,
                "wall_s": round(self.wall_s, 3),
            },
            "final": {"accuracy": None, "auc": None, "model_cid": self.final_model_cid},
        }


Progress = Callable[[str], None]
"""Told each step as it starts ("round 2: reveal"); the CLI draws it."""


class ScriptedMarket:
    """Runs the script of `config` on `w3` (a dev chain: its dev accounts sign)."""

    def __init__(self, w3: Web3, config: ScriptConfig | None = None, progress: Progress | None = None, note: Progress | None = None) -> None:
        self.w3 = w3
        self.config = config or ScriptConfig()
        self.progress = progress or (lambda _text: None)
        self.note = note or (lambda _text: None)
        self.gas_used = 0
        self.chain_s = 0.0
        self.storage_s = 0.0

    # ------------------------------------------------------------------ the steps

    def total_steps(self) -> int:
        """How many times `progress` will be called (for a progress bar)."""
        return 6 + self.config.rounds * 6 + 2

    def run(self) -> MarketRun:
        from fedmarket.chain.anvil import dev_accounts
        from fedmarket.chain.client import open_market
        from fedmarket.chain.deploy import deploy_marketplace
        from fedmarket.chain.embedded import is_embedded
        from fedmarket.wallet.accounts import require_dev_chain

        cfg = self.config
        started = time.perf_counter()
        chain_id = require_dev_chain(self.w3, "the scripted market (it signs with dev accounts)")
        accounts = dev_accounts(self.w3)
        if len(accounts) < cfg.accounts_needed:
            raise FedmarketError(f"the scripted market needs {cfg.accounts_needed} dev accounts; this chain has {len(accounts)}")
        buyer_party = Party("buyer", "buyer", accounts[0])
        aggregator = Party("aggregator", "aggregator", accounts[1])
        trainers = [Party(t.label, "trainer", accounts[2 + i]) for i, t in enumerate(cfg.trainers)]
        validators = [Party(f"validator {i + 1}", "validator", accounts[2 + len(trainers) + i]) for i in range(cfg.validators)]
        parties = trainers + validators + [aggregator]
        by_address = {p.address: p for p in parties}

        self.progress("deploy the Marketplace")
        contract = self._timed(lambda: deploy_marketplace(self.w3, buyer_party.account))
        market = open_market(self.w3, contract.address, buyer_party.account)
        self.gas_used += int(contract.deployment_receipt["gasUsed"])

        self.progress("buyer posts the task")
        spec_cid, initial_cid = self._cid(b"scripted task spec: no model, fixed scores\n"), self._cid(b"scripted initial model\n")
        params = buyer.task_params(
            spec_cid, initial_cid, aggregator.address, rounds=cfg.rounds, trainers=len(trainers), validators=cfg.validators,
            committee=cfg.committee, window=cfg.window, license_fee=cfg.license_fee, trainer_stake=cfg.trainer_stake,
            validator_stake=cfg.validator_stake, aggregator_stake=cfg.aggregator_stake, late_slash_bps=cfg.late_slash_bps,
            bad_slash_bps=cfg.bad_slash_bps, poison_threshold=cfg.poison_threshold,
        )  # fmt: skip
        model_id = self._tx(lambda: buyer.post_task(market, params, cfg.reward)).model_id
        buyer_party.deposited += cfg.reward

        self.progress("buyer tops the escrow up")
        if cfg.top_up:
            self._tx(lambda: buyer.fund_task(market, model_id, cfg.top_up))
            buyer_party.deposited += cfg.top_up

        self.progress("trainers buy licences and stake")
        for party in trainers:
            client = market.with_account(party.account)
            self._tx(lambda: client.buy_license(model_id, cfg.license_fee))
            self._tx(lambda: client.join_as_trainer(model_id, cfg.trainer_stake))
            party.deposited += cfg.license_fee + cfg.trainer_stake

        self.progress("validators and the aggregator stake")
        for party in validators:
            self._tx(lambda: market.with_account(party.account).join_as_validator(model_id, cfg.validator_stake))
            party.deposited += cfg.validator_stake
        self._tx(lambda: market.with_account(aggregator.account).join_as_aggregator(model_id, cfg.aggregator_stake))
        aggregator.deposited += cfg.aggregator_stake

        self.progress("buyer starts training")
        self._tx(lambda: buyer.start_task(market, model_id))

        rounds = [self._round(market, model_id, r, trainers, aggregator, by_address) for r in range(1, cfg.rounds + 1)]

        self.progress("buyer finalizes; the contract credits every payee")
        settlement = self._tx_many(lambda: buyer.finalize_and_settle(market, model_id))
        refunded = sum(p.earned for p in buyer.payouts_of(settlement.payments) if p.role == "buyer")
        state = self._timed(lambda: market.get_model(model_id).state)
        for party in parties:
            view = self._timed(lambda: market.participant(model_id, party.address))
            party.earned, party.slashed = int(view.earned), int(view.slashed)

        self.progress("everyone withdraws")
        for party in [buyer_party, *parties]:
            client = market.with_account(party.account)
            if self._timed(lambda: client.credit(party.address)) > 0:
                amount, result = self._timed(lambda: buyer.withdraw(client))
                self.gas_used += result.gas_used
                party.withdrawn += amount

        contract_balance = int(self.w3.eth.get_balance(market.address))
        return MarketRun(
            chain_kind="embedded" if is_embedded(self.w3) else ("anvil" if chain_id == ANVIL_CHAIN_ID else "rpc"),
            chain_id=chain_id,
            contract=market.address,
            model_id=model_id,
            buyer=buyer_party,
            parties=parties,
            rounds=rounds,
            refunded=refunded,
            license_income=int(state.license_income),
            contract_balance=contract_balance,
            final_model_cid=state.global_model_cid,
            gas_used=self.gas_used,
            wall_s=time.perf_counter() - started,
        )

    def _round(self, market: MarketClient, model_id: int, r: int, trainers: list[Party], aggregator: Party, by_address: dict[str, Party]) -> RoundRecord:
        from fedmarket.chain.client import commitment, new_salt, score_commitment, vote_commitment
        from fedmarket.chain.timecontrol import advance_to

        cfg = self.config
        started, gas0, chain0, storage0 = time.perf_counter(), self.gas_used, self.chain_s, self.storage_s
        view = self._timed(lambda: market.get_round(model_id, r))
        committee = list(view.committee)
        scripted = {p.address: t for p, t in zip(trainers, cfg.trainers, strict=True)}

        self.progress(f"round {r}: trainers commit")
        reveals: dict[str, tuple[str, int, bytes]] = {}
        for party in trainers:
            if scripted[party.address].utilities[r - 1] is None:
                self.note(f"round {r}: {party.label} does not commit")
                continue
            update_cid = self._cid(f"update of {party.address} in task {model_id} round {r}\n".encode())
            samples, salt = 100 + 10 * len(reveals), new_salt()
            value = commitment(model_id, r, update_cid, samples, salt, party.address)
            self._tx(lambda: market.with_account(party.account).commit_update(model_id, r, value))
            reveals[party.address] = (update_cid, samples, salt)
        # A phase lasts while block.timestamp <= its deadline: stragglers make the script wait past it.
        if len(reveals) < len(trainers):  # someone never commits: the phase ends at its deadline
            deadline = self._timed(lambda: market.get_round(model_id, r)).phase_deadline
            self._timed(lambda: advance_to(self.w3, deadline + 1))

        self.progress(f"round {r}: trainers reveal")
        for address, (update_cid, samples, salt) in reveals.items():
            self._tx(lambda: market.with_account(by_address[address].account).reveal_update(model_id, r, update_cid, samples, salt))

        self.progress(f"round {r}: committee commits to its scores, then reveals them")
        order = [u.trainer for u in self._timed(lambda: market.revealed_updates(model_id, r))]
        silent = committee[-1] if r == cfg.silent_validator_round else None
        middle = (len(committee) - 1) // 2
        ballots: dict[str, tuple[list[int], bytes]] = {}
        for j, member in enumerate(committee):
            if member == silent:
                self.note(f"round {r}: {by_address[member].label} never scores")
                continue
            scores = [int(scripted[t].utilities[r - 1]) + (j - middle) * cfg.score_spread for t in order]  # type: ignore[arg-type]
            ballots[member] = (scores, new_salt())
            value = score_commitment(model_id, r, member, scores, ballots[member][1])
            self._tx(lambda: market.with_account(by_address[member].account).commit_scores(model_id, r, value))
        if silent is not None:  # ScoreCommit waits for the silent member until its deadline
            deadline = self._timed(lambda: market.get_round(model_id, r)).phase_deadline
            self._timed(lambda: advance_to(self.w3, deadline + 1))
        for member, (scores, salt) in ballots.items():
            self._tx(lambda: market.with_account(by_address[member].account).reveal_scores(model_id, r, scores, salt))

        self.progress(f"round {r}: aggregator publishes")
        global_cid = self._cid(f"global model of task {model_id} round {r}\n".encode())
        utilities = self._timed(lambda: market.utilities(model_id, r))
        self._tx(lambda: market.with_account(aggregator.account).publish_global_model(model_id, r, global_cid, 0))

        self.progress(f"round {r}: committee commits to its votes, then reveals them")
        closing: list[TxResult] = []
        votes = {member: new_salt() for member in committee if member != silent}
        for member, salt in votes.items():
            value = vote_commitment(model_id, r, member, True, salt)
            self._tx(lambda: market.with_account(by_address[member].account).commit_vote(model_id, r, value))
        if silent is not None:
            deadline = self._timed(lambda: market.get_round(model_id, r)).phase_deadline
            self._timed(lambda: advance_to(self.w3, deadline + 1))
        for member, salt in votes.items():
            closing.append(self._tx(lambda: market.with_account(by_address[member].account).reveal_vote(model_id, r, True, salt)))
        if not any(e.name == "RoundClosed" for e in closing[-1].events):
            deadline = self._timed(lambda: market.get_round(model_id, r)).phase_deadline
            self._timed(lambda: advance_to(self.w3, deadline + 1))
            closing.append(self._tx(lambda: market.close_round(model_id)))

        self.progress(f"round {r}: settled")
        record = RoundRecord(
            round=r,
            global_cid=global_cid,
            accepted=[t for t, u in zip(order, utilities, strict=True) if u > 0],
            gas_used=self.gas_used - gas0,
            wall_s=time.perf_counter() - started,
            chain_s=self.chain_s - chain0,
            storage_s=self.storage_s - storage0,
        )
        self._settlement(record, closing[-1], market.get_model(model_id).params, by_address)
        return record

    def _settlement(self, record: RoundRecord, result: TxResult, params: Any, by_address: dict[str, Party]) -> None:
        """Fill the round's money from the closing transaction's events."""
        from fedmarket.chain.client import Role, SlashReason

        closed = result.event("RoundClosed").args
        record.budget_wei = int(closed["budget"])
        record.returned_to_buyer_wei = int(closed["returnedToBuyer"])
        record.trainer_pool_wei = of_bps(record.budget_wei, params.trainer_share_bps)
        record.validator_pool_wei = of_bps(record.budget_wei, params.validator_share_bps)
        record.aggregator_pool_wei = record.budget_wei - record.trainer_pool_wei - record.validator_pool_wei
        for event in result.events:
            if event.name == "RewardAccrued":
                role = Role(int(event.args["role"])).name.lower()
                attr = f"{role}_earned_wei"
                setattr(record, attr, getattr(record, attr) + int(event.args["amount"]))
            elif event.name == "Slashed":
                amount = int(event.args["amount"])
                record.slashed_wei += amount
                party = by_address.get(event.args["participant"])
                reason = SlashReason(int(event.args["reason"])).name.lower()
                record.slashes.append({"participant": event.args["participant"], "reason": reason, "amount_wei": amount})
                self.note(f"round {record.round}: {party.label if party else event.args['participant']} slashed {amount / ETH:g} ETH ({reason})")

    # ------------------------------------------------------------------ plumbing

    def _cid(self, data: bytes) -> str:
        from fedmarket.storage.cid import cid_of

        t0 = time.perf_counter()
        try:
            return cid_of(data)
        finally:
            self.storage_s += time.perf_counter() - t0

    def _timed(self, call: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return call()
        finally:
            self.chain_s += time.perf_counter() - t0

    def _tx(self, call: Callable[[], TxResult]) -> TxResult:
        result = self._timed(call)
        self.gas_used += result.gas_used
        return result

    def _tx_many(self, call: Callable[[], Any]) -> Any:
        settlement = self._timed(call)
        self.gas_used += settlement.gas_used
        return settlement


def run_scripted_market(w3: Web3, config: ScriptConfig | None = None, progress: Progress | None = None, note: Progress | None = None) -> MarketRun:
    """Run the scripted market on `w3` and check that nothing was created or lost."""
    run = ScriptedMarket(w3, config, progress, note).run()
    if run.deposited != run.withdrawn or run.contract_balance != 0:
        raise FedmarketError(f"conservation violated: deposited {run.deposited} wei, withdrawn {run.withdrawn} wei, contract holds {run.contract_balance} wei")
    return run
