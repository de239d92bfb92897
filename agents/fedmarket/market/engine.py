"""A whole market in one process: `fedmarket demo`'s engine and `fedmarket bench overhead`'s.

The same agents that `fedmarket agent` runs as processes are stepped here in turn, on one chain
connection (the embedded chain by default, or a dev node such as anvil) and one store: a buyer
posts and funds a task, every participant buys its licence and stakes, the buyer starts
training, the agents play every round, the buyer finalizes and settles, everyone withdraws.
Signing uses the dev chain's accounts (index 0 the buyer, 1 the aggregator, then the trainers,
then the validators).

Time: a phase ends as soon as everyone it waits for has acted, so an honest market never waits.
When nobody can act (a participant is silent, or its reveal was refused), the engine moves the
dev chain's clock to the phase's deadline, as real time would.

Timing: a round's wall time runs from when the engine starts training (round 1) or sees the
round open, to when it sees the round closed. The engine's own chain calls (get_model and
get_round every sweep, start, finalize, withdraw, clock moves; deploy and post in round 0) and
its store calls are chain and storage time too: they are summed per round, attributed to the
round the engine saw open when it made them, and logged as records of a pseudo-agent "engine"
(same fields as an agent's), so a report's per-round chain_s counts them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmarket.errors import FedmarketError
from fedmarket.fl.taskspec import TaskSpec
from fedmarket.market.setup import MarketTerms, participant_names, set_up_market
from fedmarket.roles.adversary import Attack, attacks_of
from fedmarket.roles.agent import Agent, AgentLog, AgentOptions

if TYPE_CHECKING:
    from web3 import Web3

    from fedmarket.storage.store import BlobStore

MAX_IDLE_SWEEPS = 3  # clock moves in a row without anyone acting: the market is stuck


@dataclass(frozen=True)
class MarketConfig:
    """The demo's market: the task, the buyer's terms, who misbehaves, the training device."""

    spec: TaskSpec = field(default_factory=TaskSpec)
    terms: MarketTerms = field(default_factory=MarketTerms)
    attacks: dict[str, str] = field(default_factory=dict)  # agent name (trainer-2, validator-1, aggregator) -> KIND[@ROUNDS]
    device: str = "cpu"

    def names(self) -> list[str]:
        return participant_names(self.spec.trainers, self.spec.validators)

    def check(self) -> None:
        unknown = sorted(set(self.attacks) - set(self.names()))
        if unknown:
            raise FedmarketError(
                f"no participant called {', '.join(unknown)}: attack one of trainer-1..{self.spec.trainers}, validator-1..{self.spec.validators}, aggregator"
            )
        self.terms.check()


@dataclass
class LocalRun:
    """What happened: the task, who was who, and the timings the report needs."""

    model_id: int
    market: Any  # MarketClient (the buyer's)
    store: BlobStore
    labels: dict[str, str]
    round_wall_s: dict[int, float]
    logs: list[dict[str, Any]]
    start_block: int
    wall_s: float
    spec: TaskSpec
    task_data: Any  # fl.taskspec.TaskData: the spec's data set, as the engine loaded it
    engine_chain_s: dict[int, float] = field(default_factory=dict)  # round (0: set-up and settlement) -> the engine's own chain seconds


Progress = Callable[[str], None]


def run_local_market(
    w3: Web3, store: BlobStore, config: MarketConfig, state_dir: Path, progress: Progress | None = None, log_dir: Path | None = None
) -> LocalRun:
    """Run the market of `config` to the end; raise FedmarketError (one line) if it cannot."""
    from fedmarket.chain.anvil import dev_accounts
    from fedmarket.chain.client import Status
    from fedmarket.chain.timecontrol import advance_to, chain_now
    from fedmarket.roles import buyer
    from fedmarket.roles.aggregator import AggregatorAgent
    from fedmarket.roles.trainer import TrainerAgent
    from fedmarket.roles.validator import ValidatorAgent, store_wait_ends
    from fedmarket.wallet.accounts import require_dev_chain

    config.check()
    tell = progress or (lambda _text: None)
    started = time.perf_counter()
    spec = config.spec
    require_dev_chain(w3, "the local market (it signs with dev accounts and moves the clock)")
    accounts = dev_accounts(w3)
    names = config.names()
    if len(accounts) < 1 + len(names):
        raise FedmarketError(f"the market needs {1 + len(names)} dev accounts; this chain has {len(accounts)}")
    buyer_account = accounts[0]
    by_name = dict(zip(names, accounts[1:], strict=False))
    engine_chain: dict[int, float] = {}
    engine_storage: dict[int, float] = {}
    engine_round = 0  # the round the engine last saw open (0: none), which its calls are attributed to

    def timed(seconds: dict[int, float]) -> Callable[[Callable[[], Any]], Any]:
        """A wrapper that adds each call's seconds to `seconds`, under the round it was made in."""

        def call_timed(call: Callable[[], Any]) -> Any:
            t0 = time.perf_counter()
            try:
                return call()
            finally:
                seconds[engine_round] = seconds.get(engine_round, 0.0) + time.perf_counter() - t0

        return call_timed

    on_chain, on_store = timed(engine_chain), timed(engine_storage)

    tell("deploy the Marketplace; the buyer stores the task spec and the initial model, posts and funds the task")
    posted = set_up_market(w3, buyer_account, buyer_account, store, spec, config.terms, by_name["aggregator"].address, on_chain=on_chain, on_store=on_store)
    market, model_id, data = posted.market, posted.model_id, posted.task_data
    start_block = posted.deploy_block

    logs: list[dict[str, Any]] = []
    kinds = {"trainer": TrainerAgent, "validator": ValidatorAgent, "aggregator": AggregatorAgent}
    agents: list[Agent] = []
    for name in [n for n in names if n.startswith("trainer")] + [n for n in names if n.startswith("validator")] + ["aggregator"]:
        cls = kinds[name.split("-")[0]]
        attack = Attack.parse(config.attacks[name], attacks_of(cls.role)) if name in config.attacks else None
        log = AgentLog(log_dir / f"{name}.jsonl" if log_dir else None, logs.append)
        options = AgentOptions(device=config.device, join=True, withdraw=True, attack=attack, name=name)
        agent = cls(market.with_account(by_name[name]), store, model_id, state_dir / name, log, options, task_data=data)
        agents.append(agent)
    labels = {buyer_account.address: "buyer", **{account.address: name for name, account in by_name.items()}}

    tell("participants buy licences and stake")
    round_open: dict[int, float] = {}
    round_wall: dict[int, float] = {}
    idle = 0
    announced = (None, None)
    while True:
        acted = False
        for agent in agents:
            acted |= agent.step()
        info = on_chain(lambda: market.get_model(model_id))
        state = info.state
        if state.status == Status.OPEN and state.trainer_count == spec.trainers and state.validator_count == spec.validators and state.aggregator_joined:
            tell("buyer starts training")
            on_chain(lambda: buyer.start_task(market, model_id))
            round_open.setdefault(1, time.perf_counter())  # round 1 opens now, before the agents' next sweep trains it
            engine_round = 1
            acted = True
        elif state.status == Status.TRAINING:
            _time_rounds(state, round_open, round_wall)
            current = int(state.current_round)
            engine_round = current if current <= config.terms.rounds and current in round_open and current not in round_wall else 0
            if state.rounds_closed >= config.terms.rounds:
                tell("buyer finalizes; the contract credits every payee")
                on_chain(lambda: buyer.finalize_and_settle(market, model_id))
                acted = True
            else:
                view = on_chain(lambda: market.get_round(model_id, state.current_round))
                now = (state.current_round, view.phase)
                if now != announced:
                    tell(f"round {state.current_round} of {config.terms.rounds}: {str(view.phase).lower()}")
                    announced = now
        elif state.status == Status.SETTLED and all(a.finished for a in agents):
            engine_round = 0
            if on_chain(lambda: market.credit(buyer_account.address)) > 0:
                tell("buyer withdraws")
                on_chain(lambda: buyer.withdraw(market))
            break
        if acted:
            idle = 0
            continue
        idle += 1
        if idle > MAX_IDLE_SWEEPS or state.status != Status.TRAINING:
            raise FedmarketError(f"the market is stuck: task {model_id} is {str(state.status).lower()} and nobody can act")
        view = on_chain(lambda: market.get_round(model_id, state.current_round))
        # Nobody can act before this phase's deadline: let the clock run to it; in a committee
        # commit phase first to where a validator waiting for its store gives up, so that it
        # still commits in time.
        target = view.phase_deadline + 1
        gives_up = store_wait_ends(view.phase, view.phase_deadline, info.params)
        if gives_up is not None and on_chain(lambda: chain_now(w3)) < gives_up:
            target = gives_up
        on_chain(lambda: advance_to(w3, target))
    engine_log = AgentLog(log_dir / "engine.jsonl" if log_dir else None, logs.append)
    for r in sorted(set(engine_chain) | set(engine_storage)):
        engine_log.write({
            "t": round(time.time(), 3), "agent": "engine", "role": "engine", "address": buyer_account.address,
            "model_id": model_id, "round": r, "phase": "engine", "action": "own-calls", "tx": None, "gas": None,
            "train_s": 0.0, "chain_s": round(engine_chain.get(r, 0.0), 6), "storage_s": round(engine_storage.get(r, 0.0), 6),
            "detail": "the engine's own chain and store calls in this round (views every sweep, start / finalize / withdraw)",
        })  # fmt: skip
    return LocalRun(
        model_id,
        market,
        store,
        labels,
        round_wall,
        logs,
        start_block,
        time.perf_counter() - started,
        spec,
        data,
        {r: round(s, 6) for r, s in sorted(engine_chain.items())},
    )


def _time_rounds(state: Any, round_open: dict[int, float], round_wall: dict[int, float]) -> None:
    """Wall seconds per round: from when the engine first sees it open to when it sees it closed."""
    now = time.perf_counter()
    for r in range(1, int(state.rounds_closed) + 1):
        if r not in round_wall and r in round_open:
            round_wall[r] = now - round_open[r]
    current = int(state.current_round)
    if current > state.rounds_closed and current not in round_open:
        round_open[current] = now
