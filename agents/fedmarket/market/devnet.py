"""`fedmarket up`'s engine: a local devnet where every participant is its own OS process.

One run, in one folder (default `runs/<UTC timestamp>`):

    anvil.log            the dev chain's log (copied when it stops)
    keystores/           one scrypt keystore per participant (throwaway keys, light KDF)
    (the keystores' password, $FEDMARKET_PASSWORD or a random one, is never written: the agents
    get it in their environment)
    store/               the shared embedded blob store (unless --ipfs names a Kubo node)
    state/<name>/        each agent's own state (salts, cursors)
    logs/<name>.jsonl    each agent's JSON lines, one per action
    logs/<name>.log      each agent's stdout + stderr
    supervisor.jsonl     every start / exit / kill / restart / withdrawal of the supervisor
    report.json, report.png

What happens (`Devnet.run()`): anvil starts on a free 127.0.0.1 port with mixed mining (every
transaction mined at once, plus a block a second, so the phase the contract derives from the
latest block's time moves on while nobody sends anything); dev account 0 deploys the
Marketplace and funds one fresh keystore per participant; the buyer stores the task spec and the
initial model and posts the task; every agent (`fedmarket agent trainer|validator|aggregator
--join --withdraw ...`) is launched in its own process group; once all have staked the buyer
starts training; the supervisor watches the chain and the processes, applies the fault plan
(`--fault NAME@ROUND:POINT->RESTART`: the agent SIGKILLs itself at POINT of ROUND and is restarted
at once, when round R opens, or never), and fails with one line when an agent exits unexpectedly
or the task stops moving; after the last round the buyer finalizes and settles, the agents
withdraw and exit, the buyer withdraws, and the supervisor withdraws what an agent that never
came back was credited (it holds every run key), so the contract ends holding only what the
settlement burned (CarryBurned). Whatever happens (an error, Ctrl-C, SIGTERM), everything
started is stopped: agents first (SIGTERM to their process groups, SIGKILL after a grace
period), then anvil.

Three layers, each usable alone (the unit tests drive the first two with dummy processes):

- `parse_fault` / `parse_attack` / `FaultPlan`: the fault and attack specs;
- `ProcessSupervisor`: launch, poll, restart and stop child processes, logging every event;
- `AgentSupervisor`: the agents' processes with the fault plan applied to their exits;
- `Devnet`: the whole run above.

Private keys never leave memory: nothing here prints or logs one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmarket.chain.protocol import (
    MAX_ROUNDS,
    MAX_TRAINERS,
    MAX_VALIDATORS,
    WEI_PER_ETH,
)
from fedmarket.chain.transactions import send_values
from fedmarket.files import atomic_write_json
from fedmarket.fl.taskspec import TaskSpec
from fedmarket.market.plan import DevnetError, FaultPlan
from fedmarket.market.run import DevnetResult, DevnetView, RoundTimes, default_run_dir
from fedmarket.market.setup import (
    MarketTerms,
    measure_training_s,
    participant_names,
    role_of,
    set_up_market,
    window_for_training,
)
from fedmarket.market.supervisor import (
    POLL_S,
    AgentLaunch,
    AgentSupervisor,
    EventLog,
    LogTail,
    ProcessSpec,
    ProcessSupervisor,
    read_jsonl,
    signals_deferred,
    sigterm_as_interrupt,
)
from fedmarket.wallet.password import PASSWORD_ENV

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from fedmarket.chain.anvil import AnvilProcess
    from fedmarket.chain.client import MarketClient
    from fedmarket.storage.store import BlobStore


DEFAULT_WINDOW_S = 20
WINDOW_S_PER_AGENT_PER_CORE = 4
"""The automatic window grows past DEFAULT_WINDOW_S when many agents share few cores: a round's
work (training, scoring) runs on every agent at once, ~1-3 s of CPU each for the demo task."""
DEFAULT_JOIN_TIMEOUT_S = 240.0
DEFAULT_EXIT_TIMEOUT_S = 120.0


DEVNET_TERMS = MarketTerms(
    rounds=3, reward=WEI_PER_ETH, top_up=0, license_fee=WEI_PER_ETH // 100, trainer_stake=WEI_PER_ETH // 100,
    validator_stake=WEI_PER_ETH // 100, aggregator_stake=WEI_PER_ETH // 100, committee=3, window=DEFAULT_WINDOW_S,
)  # fmt: skip
"""`fedmarket up`'s default terms: 3 rounds, 1 ETH reward, 0.01 ETH licence and stakes, committee 3."""


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


# ============================================================================= the devnet


@dataclass(frozen=True)
class DevnetConfig:
    """Everything `fedmarket up` takes: the task, the buyer's terms (`terms.window` is replaced by
    `phase_window`), the fault and attack plan, and how the processes run."""

    spec: TaskSpec = field(default_factory=lambda: TaskSpec(trainers=4, validators=3))
    terms: MarketTerms = DEVNET_TERMS
    run_dir: Path | None = None
    ipfs: str | None = None
    window: int | None = None  # every phase window, seconds; None: `phase_window`'s automatic choice
    faults: tuple[str, ...] = ()
    attacks: tuple[str, ...] = ()
    device: str = "cpu"
    fund_wei: int = WEI_PER_ETH  # per participant, on top of nothing (stakes, licence and gas come out of it)
    join_timeout_s: float = DEFAULT_JOIN_TIMEOUT_S
    exit_timeout_s: float = DEFAULT_EXIT_TIMEOUT_S
    stall_timeout_s: float | None = None  # default: derived from the window
    python: str = sys.executable
    plot: bool = True

    @property
    def trainers(self) -> int:
        return self.spec.trainers

    @property
    def validators(self) -> int:
        return self.spec.validators

    @property
    def rounds(self) -> int:
        return self.terms.rounds

    def check(self) -> FaultPlan:
        if self.trainers > MAX_TRAINERS or self.validators > MAX_VALIDATORS:
            raise DevnetError(f"the contract takes at most {MAX_TRAINERS} trainers and {MAX_VALIDATORS} validators")
        if not 1 <= self.rounds <= MAX_ROUNDS:
            raise DevnetError(f"rounds must be 1 .. {MAX_ROUNDS}, not {self.rounds}")
        if self.window is not None and self.window < 2:
            raise DevnetError(f"a window of {self.window} s is too short for agents in separate processes (2 s at least)")
        if self.device not in ("cpu", "cuda", "auto") and not self.device.startswith("cuda:"):
            raise DevnetError(f"unknown device {self.device!r}: cpu, cuda or auto")
        self.terms.check()
        return FaultPlan.parse(self.faults, self.attacks, trainers=self.trainers, validators=self.validators, rounds=self.rounds)

    def posted_terms(self, window: int | None = None) -> MarketTerms:
        """The terms as posted: every phase window is `window` (default: `phase_window`)."""
        return replace(self.terms, window=window or self.phase_window)

    def window_for(self, train_s: float) -> tuple[int, int]:
        """(the window to post, the window the measured training needs): --window as given, else
        the larger of `phase_window` and what `train_s` of training per trainer needs here."""
        needed = window_for_training(train_s, self.trainers, _cores())
        return (self.window if self.window is not None else max(self.phase_window, needed)), needed

    def stall_timeout(self, window: int | None = None) -> float:
        """How long the task may show no change at all (phase, counts, round) before the run fails.

        A phase ends at the latest at its deadline, so something changes at least every window;
        twice the window plus a minute leaves room for slow agents and a loaded machine."""
        return self.stall_timeout_s if self.stall_timeout_s is not None else 2.0 * (window or self.phase_window) + 60.0

    @property
    def phase_window(self) -> int:
        """--window, else DEFAULT_WINDOW_S (20 s), or WINDOW_S_PER_AGENT_PER_CORE seconds per agent
        per CPU core when that is more: a round with a dead participant still ends within a few
        windows, while honest agents sharing the machine never miss a deadline."""
        if self.window is not None:
            return self.window
        agents = self.trainers + self.validators + 1
        return max(DEFAULT_WINDOW_S, -(-agents * WINDOW_S_PER_AGENT_PER_CORE // _cores()))


class Devnet:
    """One `fedmarket up` run. `run()` does everything and returns a DevnetResult; `view` is its
    live state and `on_update(view)` / `on_note(text)` are called as it changes."""

    def __init__(
        self,
        config: DevnetConfig,
        *,
        on_update: Callable[[DevnetView], None] | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.plan = config.check()
        self.view = DevnetView(rounds=config.rounds)
        self.on_update = on_update or (lambda _view: None)
        self.on_note = on_note or (lambda _text: None)
        self.run_dir = Path(config.run_dir) if config.run_dir is not None else default_run_dir()
        self.events: EventLog | None = None
        self.anvil: AnvilProcess | None = None
        self.agents: AgentSupervisor | None = None
        self.tails: dict[str, LogTail] = {}
        self.accounts: dict[str, LocalAccount] = {}
        self.times = RoundTimes()
        self.problems: list[str] = []
        self.window = config.phase_window  # replaced by the measured choice before anything is posted
        self._task_data: Any = None  # the spec's data set, loaded to time a training
        self._reporting: tuple[Any, ...] | None = None  # what a report needs, once the task is posted
        self._password = ""

    # ------------------------------------------------------------------ helpers

    def _stage(self, text: str) -> None:
        self.view.stage = text
        self.on_update(self.view)

    def _note(self, text: str) -> None:
        self.view.notes.append(text)
        self.on_note(text)

    def _log(self, event: str, **fields: Any) -> None:
        assert self.events is not None
        self.events.write(event, **fields)

    # ------------------------------------------------------------------ the run

    def run(self) -> DevnetResult:
        started = time.monotonic()
        self._prepare_dir()
        with sigterm_as_interrupt():
            try:
                return self._run(started)
            except BaseException:
                # Whatever stopped the run, what the chain holds is still worth a report.
                with signals_deferred():
                    self._report_what_the_chain_holds()
                raise
            finally:
                with signals_deferred():  # a second Ctrl-C must not cut the clean-up short
                    self._shutdown()

    def _prepare_dir(self) -> None:
        run = self.run_dir
        if run.exists() and any(run.iterdir()):
            raise DevnetError(f"run folder {run} is not empty: give a new --run-dir")
        for sub in ("keystores", "logs", "state"):
            (run / sub).mkdir(parents=True, exist_ok=True)
        # The run's keystore password lives in memory and in the agents' environment only: the
        # run folder keeps encrypted keystores, never what opens them. $FEDMARKET_PASSWORD, when
        # set, is used instead of a random one (to open the run's keystores afterwards).
        self._password = os.environ.get(PASSWORD_ENV) or secrets.token_urlsafe(24)
        self.events = EventLog(run / "supervisor.jsonl")
        self.view.run_dir = run

    def _run(self, started: float) -> DevnetResult:
        from fedmarket.chain.anvil import AnvilProcess, dev_accounts
        from fedmarket.storage.store import open_store

        cfg, run = self.config, self.run_dir
        # ---------------------------------------------------------------- the window
        self._stage("measuring a local training")
        self._choose_window()
        # ---------------------------------------------------------------- chain
        self._stage("starting anvil")
        self.anvil = AnvilProcess(accounts=1, block_time=1, mixed_mining=True)
        self.anvil.start()
        self._log("start", name="anvil", pid=self.anvil.pid, url=self.anvil.url)
        self.view.rpc = self.anvil.url
        w3 = self.anvil.web3()
        dev = dev_accounts(w3)[0]

        # ---------------------------------------------------------------- keys and funds
        self._stage("creating keystores")
        from eth_account import Account

        from fedmarket.wallet import LIGHT_SCRYPT_N, KeystoreDir

        keystores = KeystoreDir(run / "keystores")
        names = ["buyer", *participant_names(cfg.trainers, cfg.validators)]
        for name in names:
            account = Account.create()
            keystores.create(name, account.key, self._password, scrypt_n=LIGHT_SCRYPT_N)
            self.accounts[name] = account
        labels = {account.address: name for name, account in self.accounts.items()}
        atomic_write_json(run / "accounts.json", {name: a.address for name, a in self.accounts.items()})
        self._stage("funding the participants")
        funding = [(self.accounts["buyer"].address, cfg.terms.reward + cfg.terms.top_up + cfg.fund_wei)]
        funding += [(self.accounts[name].address, cfg.fund_wei) for name in names[1:]]
        send_values(w3, dev, funding)
        self._log("funded", accounts={name: wei for (address, wei), name in zip(funding, names, strict=True)})

        # ---------------------------------------------------------------- the task
        self._stage("deploying the Marketplace and posting the task")
        store: BlobStore = open_store(cfg.ipfs, root=run / "store")
        posted = set_up_market(
            w3, dev, self.accounts["buyer"], store, cfg.spec, cfg.posted_terms(self.window), self.accounts["aggregator"].address, task_data=self._task_data
        )
        buyer_market, model_id, task_data, deploy_block = posted.market, posted.model_id, posted.task_data, posted.deploy_block
        self._reporting = (buyer_market, model_id, store, task_data, labels, deploy_block)
        contract_address = buyer_market.address
        self.view.contract = contract_address
        self._log("deployed", contract=contract_address, block=deploy_block, chain_id=int(w3.eth.chain_id))
        self.view.model_id = model_id
        self._log("posted", model_id=model_id, spec_cid=posted.spec_cid, initial_cid=posted.initial_cid, rounds=cfg.rounds, window=self.window)

        # ---------------------------------------------------------------- the agents
        self._stage("launching the agents")
        assert self.events is not None
        launches = [self._agent_launch(name, model_id, contract_address) for name in names[1:]]
        self.agents = AgentSupervisor(ProcessSupervisor(self.events), launches, on_note=self._note)
        self.view.agents = self.agents.status
        self.tails = {name: LogTail(run / "logs" / f"{name}.jsonl") for name in names[1:]}
        self.agents.start_all()
        self._wait_for_joins(buyer_market, model_id)

        from fedmarket.roles import buyer

        self._stage("training")
        start = buyer.start_task(buyer_market, model_id)
        self.times.opened[1] = time.time()
        self._log("training-started", model_id=model_id, tx=start.tx_hash, block=start.block_number)
        self._log("round-opened", round=1)
        self._watch_rounds(buyer_market, model_id)

        # ---------------------------------------------------------------- the end
        self._stage("settling")
        self._settle(buyer_market, model_id)
        self._stage("waiting for the agents to withdraw and exit")
        self._wait_for_exits(buyer_market, model_id)
        self._withdraw_leftovers(buyer_market)

        # ---------------------------------------------------------------- report
        self._stage("writing the report")
        from fedmarket.market.report import check_conservation

        report, report_path, png_path = self._write_report()
        check_conservation(report)
        totals = report["totals"]
        if totals["contract_balance_wei"] != totals["burned_wei"]:  # burned: credit of the zero address, never withdrawn
            self.problems.append(f"the contract still holds {totals['contract_balance_wei']} wei, {totals['burned_wei']} of them burned")
        self._stage("done")
        return DevnetResult(
            run_dir=run, model_id=model_id, rpc=self.anvil.url, contract=contract_address, report=report,
            report_path=report_path, png_path=png_path, wall_s=time.monotonic() - started, round_wall_s=self.times.wall_s(), window=self.window,
            agents=self.agents.status, notes=list(self.view.notes), problems=self.problems,
        )  # fmt: skip

    def _choose_window(self) -> None:
        """Time one local training here, before anyone stakes, and post a window that fits it
        (or, for a --window too short for it, say so)."""
        from fedmarket.fl.taskspec import TaskData

        cfg = self.config
        self._task_data = TaskData.load(cfg.spec)  # loaded once: set_up_market posts from it too
        train_s = measure_training_s(cfg.spec, self._task_data, device=cfg.device)
        self.window, needed = cfg.window_for(train_s)
        self._log("window", window=self.window, needed=needed, train_s=round(train_s, 3), cores=_cores())
        if self.window < needed:
            self._note(
                f"warning: a local training takes {train_s:.1f} s here, so {cfg.trainers} trainers on {_cores()} cores need windows of "
                f"about {needed} s; --window {self.window} may make honest trainers miss the commit phase"
            )

    def _write_report(self) -> tuple[dict[str, Any], Path, Path | None]:
        """report.json (and report.png) of the task, rebuilt from the chain: (report, its path, the PNG's)."""
        from fedmarket.market.report import build_report, write_report

        assert self._reporting is not None
        market, model_id, store, task_data, labels, deploy_block = self._reporting
        report = build_report(
            market, model_id, store=store, task_data=task_data, labels=labels, round_wall_s=self.times.wall_s(),
            agent_logs=self.agent_records(), chain_kind="anvil", start_block=deploy_block,
        )  # fmt: skip
        report_path = self.run_dir / "report.json"
        write_report(report, report_path)
        png_path: Path | None = None
        if self.config.plot:
            from fedmarket.market.report_plot import plot_report

            png_path = self.run_dir / "report.png"
            plot_report(report, png_path)
        return report, report_path, png_path

    def _report_what_the_chain_holds(self) -> None:
        """After a failed run: the report of whatever the chain holds, if the task was posted and
        the chain still answers; a note says where, or why not."""
        if self._reporting is None or self.anvil is None:
            return
        try:
            _report, path, _png = self._write_report()
        except Exception as exc:  # noqa: BLE001 - the run's own error is the one to raise
            self._note(f"no report: {exc}")
            return
        self._note(f"the report of what the chain holds: {path}")

    def _agent_launch(self, name: str, model_id: int, contract: str) -> AgentLaunch:
        cfg, run = self.config, self.run_dir
        argv = [
            cfg.python, "-m", "fedmarket.cli.app",
            "agent", role_of(name),
            "--model-id", str(model_id),
            "--account", name,
            "--name", name,
            "--keystore-dir", str(run / "keystores"),
            "--rpc", self.view.rpc or "",
            "--contract", contract,
            *(["--ipfs", cfg.ipfs] if cfg.ipfs else ["--store-dir", str(run / "store")]),
            "--data", "auto",
            "--device", cfg.device,
            "--threads", "1",
            "--join",
            "--withdraw",
            "--state-dir", str(run / "state" / name),
            "--log", str(run / "logs" / f"{name}.jsonl"),
        ]  # fmt: skip
        if name in self.plan.attacks:
            argv += ["--attack", self.plan.attacks[name]]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEDMARKET_") or k in ("FEDMARKET_HOME", "FEDMARKET_DATA")}
        env[PASSWORD_ENV] = self._password
        env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"})
        spec = ProcessSpec(name, argv, run / "logs" / f"{name}.log", env, cwd=Path.cwd())
        return AgentLaunch(name, spec, self.plan.faults.get(name))

    # ------------------------------------------------------------------ watching

    def agent_records(self) -> list[dict[str, Any]]:
        """Every JSON record of every agent log of this run."""
        records: list[dict[str, Any]] = []
        for path in sorted((self.run_dir / "logs").glob("*.jsonl")):
            records += read_jsonl(path)
        return records

    def _read_tails(self) -> None:
        for name, tail in self.tails.items():
            for record in tail.read():
                action = record.get("action")
                if action:
                    where = f"r{record['round']} " if record.get("round") else ""
                    self.view.last_action[name] = f"{where}{action}"

    def _refresh(self, market: MarketClient, model_id: int) -> tuple[Any, Any]:
        """Read the task's state and its current round into the view; (state, round view or None)."""
        from fedmarket.chain.timecontrol import chain_now

        state = market.get_model(model_id).state
        self.view.status = str(state.status)
        self.view.current_round, self.view.rounds_closed = int(state.current_round), int(state.rounds_closed)
        round_view = None
        if state.current_round > 0:
            round_view = market.get_round(model_id, int(state.current_round))
            self.view.phase = "Closed" if round_view.closed else str(round_view.phase)
            self.view.phase_left_s = max(0, int(round_view.phase_deadline) - chain_now(market.w3)) if not round_view.closed else None
        self._read_tails()
        self.on_update(self.view)
        return state, round_view

    def _check_agents(self, current_round: int | None, market: MarketClient, model_id: int) -> None:
        from fedmarket.chain.client import Status

        def finished() -> bool:
            return market.get_model(model_id).state.status in (Status.FINALIZED, Status.SETTLED, Status.CANCELLED)

        assert self.agents is not None
        self.agents.check(current_round, finished=finished)

    def _wait_for_joins(self, market: MarketClient, model_id: int) -> None:
        cfg = self.config
        self._stage("waiting for every agent to join")
        deadline = time.monotonic() + cfg.join_timeout_s
        while True:
            state, _ = self._refresh(market, model_id)
            self.view.joined = f"{state.trainer_count}/{cfg.trainers} trainers, {state.validator_count}/{cfg.validators} validators, aggregator {'in' if state.aggregator_joined else 'not in'}"
            self._check_agents(None, market, model_id)
            if state.trainer_count == cfg.trainers and state.validator_count == cfg.validators and state.aggregator_joined:
                self._log("joined", model_id=model_id, trainers=state.trainer_count, validators=state.validator_count)
                return
            if time.monotonic() > deadline:
                raise DevnetError(f"not everyone joined within {cfg.join_timeout_s:.0f} s: {self.view.joined}; see {self.run_dir / 'logs'}")
            time.sleep(POLL_S)

    def _watch_rounds(self, market: MarketClient, model_id: int) -> None:
        from fedmarket.chain.client import Status

        cfg = self.config
        last_key: tuple[Any, ...] | None = None
        last_change = time.monotonic()
        seen_round, seen_closed = 1, 0
        while True:
            state, round_view = self._refresh(market, model_id)
            now = time.time()
            while seen_closed < state.rounds_closed:
                seen_closed += 1
                self.times.closed[seen_closed] = now
                self._log("round-closed", round=seen_closed, wall_s=round(now - self.times.opened.get(seen_closed, now), 3))
                self._note(f"round {seen_closed} closed after {now - self.times.opened.get(seen_closed, now):.1f} s")
            while seen_round < state.current_round:
                seen_round += 1
                self.times.opened.setdefault(seen_round, now)
                self._log("round-opened", round=seen_round)
            self._check_agents(int(state.current_round), market, model_id)
            if state.rounds_closed >= cfg.rounds or state.status != Status.TRAINING:
                return
            key = (
                int(state.status), int(state.current_round), int(state.rounds_closed),
                *((int(round_view.phase), round_view.commits, round_view.reveals, round_view.score_commits, round_view.scores_submitted,
                   round_view.proposed, round_view.vote_commits, round_view.confirmations, round_view.rejections) if round_view is not None else ()),
            )  # fmt: skip
            if key != last_key:
                last_key, last_change = key, time.monotonic()
            elif time.monotonic() - last_change > cfg.stall_timeout(self.window):
                raise DevnetError(
                    f"task {model_id} made no progress for {cfg.stall_timeout(self.window):.0f} s (round {state.current_round}, phase {self.view.phase}); "
                    f"see {self.run_dir / 'logs'}"
                )
            time.sleep(POLL_S)

    def _settle(self, market: MarketClient, model_id: int) -> None:
        from fedmarket.chain.client import ContractRevert, Status
        from fedmarket.roles import buyer

        for attempt in range(3):
            status = market.get_model(model_id).state.status
            if status == Status.SETTLED:
                self._log("settled", by="someone else")
                return
            try:
                settlement = buyer.finalize_and_settle(market, model_id)
            except ContractRevert:
                if attempt == 2:
                    raise
                time.sleep(0.5)  # an agent finalized or settled meanwhile: look again
                continue
            self._log("settled", by="buyer", credited_wei=settlement.credited, gas=settlement.gas_used)
            self._note(f"task {model_id} settled: {len(settlement.payouts)} payees credited")
            return

    def _wait_for_exits(self, market: MarketClient, model_id: int) -> None:
        assert self.agents is not None
        deadline = time.monotonic() + self.config.exit_timeout_s
        while True:
            self._refresh(market, model_id)
            self._check_agents(int(self.view.current_round), market, model_id)
            if not self.agents.running() and not self.agents.pending:
                return
            if time.monotonic() > deadline:
                left = ", ".join(self.agents.running())
                self.problems.append(f"agents still running {self.config.exit_timeout_s:.0f} s after settlement, stopped: {left}")
                self._log("exit-timeout", names=self.agents.running())
                self.agents.stop_all(reason="exit timeout after settlement")
                return
            time.sleep(POLL_S)

    def _withdraw_leftovers(self, market: MarketClient) -> None:
        """The buyer withdraws; so does the supervisor for every participant still credited (an
        agent killed for good, or one that did not withdraw), with its key."""
        from fedmarket.roles import buyer

        assert self.agents is not None
        for name, account in self.accounts.items():
            credit = market.credit(account.address)
            if credit == 0:
                continue
            amount, tx = buyer.withdraw(market.with_account(account))
            if name == "buyer":
                self._log("withdrawal", name=name, amount_wei=amount, tx=tx.tx_hash)
                continue
            status = self.agents.status[name]
            why = "killed for good" if status.state == "down" else f"left {amount} wei credited ({status.state})"
            self._log("withdrawal", name=name, amount_wei=amount, tx=tx.tx_hash, by="supervisor", why=why)
            self._note(f"the supervisor withdrew {amount} wei for {name} ({why})")
            if status.state != "down":
                self.problems.append(f"{name} exited without withdrawing its credit ({amount} wei); the supervisor withdrew it")

    # ------------------------------------------------------------------ shutdown

    def _shutdown(self) -> None:
        """Stop everything this run started: the agents (SIGTERM, then SIGKILL), then anvil."""
        if self.agents is not None:
            try:
                self.agents.stop_all(reason="shutdown")
            finally:
                leftovers = self.agents.processes.leftovers()
                if leftovers and self.events is not None:
                    self._log("leftovers", pids=leftovers)
        if self.anvil is not None:
            anvil, self.anvil = self.anvil, None
            process = anvil.process
            pid = process.pid if process is not None else None
            with contextlib.suppress(Exception):
                if anvil.home is not None and anvil.log.exists():
                    shutil.copyfile(anvil.log, self.run_dir / "anvil.log")
            if pid is not None and self.events is not None:
                self._log("kill", name="anvil", pid=pid, signal="SIGTERM", reason="shutdown")
            anvil.stop()
            if pid is not None and self.events is not None:
                self._log("exit", name="anvil", pid=pid, code=process.returncode if process is not None else None)
