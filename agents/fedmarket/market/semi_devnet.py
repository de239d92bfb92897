"""`fedmarket up --mode semi`: the semi-centralised market with every client its own OS process.

One run, in one folder (default `runs/<UTC timestamp>`), laid out as `fedmarket up`'s
(market.devnet): keystores/, store/ (unless --ipfs), logs/<name>.jsonl and .log,
supervisor.jsonl, report.json; and gossip/, where each client's loopback gossip endpoint is.

`SemiDevnet.run()`: anvil on a free port; dev account 0 deploys SemiMarket and funds one fresh
keystore per participant; the buyer stores the spec and θ0 and posts the task
(market.semi_engine.post_semi_task); every client (`fedmarket agent semi-trainer --join ...`)
is launched in its own process group, stakes, and once all have joined the buyer starts the
task. The clients then run their rounds asynchronously in wall-clock time, the stragglers
`slowdown` times slower, gossiping over loopback (roles.gossip) and recording on chain; the
supervisor watches, and restarts a client process that fails (it resumes from the chain;
`--fault client-K@R` injects such a crash). When every client has recorded all its rounds, chain time is moved to
the end of the last payment epoch (the epochs are sized for the run's time budget, so a quick
run would otherwise wait for them), every epoch is settled, the clients withdraw and exit, the
buyer withdraws. The report is rebuilt from the chain (records re-verified, payouts, the
conservation of wei) and the agents' logs (final models, evaluated here; busy and existence
seconds; gossip messages sent, accepted and refused).

Unlike the in-process engine (`demo --mode semi`), this run is not bit-reproducible: which
models a client holds when it aggregates depends on how the processes are scheduled.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedmarket.chain.semi_client import SemiMarketClient, deploy_semi_market
from fedmarket.chain.transactions import send_values
from fedmarket.files import atomic_write_json
from fedmarket.fl.semi.config import AsyncConfig
from fedmarket.market.plan import DevnetError
from fedmarket.market.run import default_run_dir
from fedmarket.market.semi_engine import SemiMarketConfig, SemiTerms, chain_report, post_semi_task
from fedmarket.market.supervisor import POLL_S, EventLog, ProcessSpec, ProcessSupervisor, last_line, read_jsonl, signals_deferred, sigterm_as_interrupt
from fedmarket.wallet.password import PASSWORD_ENV

WEI = 10**18
DEFAULT_RUN_BUDGET_S = 600
"""Wall-clock seconds the clients get for all their rounds: the payment epochs span this."""
CRASH_RESTARTS = 3
"""Exits of a client process (a planned fault or not) it is restarted after before the run fails."""


@dataclass(frozen=True)
class SemiDevnetConfig:
    sim: AsyncConfig
    terms: SemiTerms = field(default_factory=lambda: SemiTerms(epochs=1))
    run_dir: Path | None = None
    ipfs: str | None = None
    run_budget_s: int = DEFAULT_RUN_BUDGET_S
    join_timeout_s: float = 240.0
    exit_timeout_s: float = 120.0
    fund_wei: int = WEI
    python: str = sys.executable
    crashes: tuple[str, ...] = ()  # `client-K@R`: client-K SIGKILLs itself after recording round R, restarted at once

    def market_config(self) -> SemiMarketConfig:
        return SemiMarketConfig(self.sim, self.terms)

    def check(self) -> None:
        self.market_config().check()
        if self.run_budget_s < 10 * self.terms.epochs:
            raise DevnetError(f"a run budget of {self.run_budget_s} s is too short for {self.terms.epochs} payment epochs")
        self.crash_plan()

    def crash_plan(self) -> dict[str, int]:
        """--fault client-K@R for a semi run: name -> the round after which it kills itself."""
        plan: dict[str, int] = {}
        for text in self.crashes:
            match = re.fullmatch(r"(client-[1-9][0-9]*)@([1-9][0-9]*)", text.strip())
            if not match:
                raise DevnetError(f"invalid semi fault {text!r}: give client-K@R (client-K kills itself after recording round R and is restarted)")
            name, after = match[1], int(match[2])
            if int(name.split("-")[1]) > self.sim.clients or after >= self.sim.rounds or name in plan:
                raise DevnetError(f"semi fault {text!r}: K must be 1..{self.sim.clients}, R below the {self.sim.rounds} rounds, one fault per client")
            plan[name] = after
        return plan


class SemiDevnet:
    """One `fedmarket up --mode semi` run; `run()` returns the report (also in report.json)."""

    def __init__(self, config: SemiDevnetConfig, on_note: Callable[[str], None] | None = None) -> None:
        config.check()
        self.config = config
        self.note = on_note or (lambda _text: None)
        self.run_dir = Path(config.run_dir) if config.run_dir is not None else default_run_dir()
        self.names = [f"client-{i + 1}" for i in range(config.sim.clients)]
        self.processes: ProcessSupervisor | None = None
        self.anvil: Any = None
        self.crash_plan = config.crash_plan()
        self.specs: dict[str, ProcessSpec] = {}
        self.restarts: dict[str, int] = {}

    def run(self) -> dict[str, Any]:
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise DevnetError(f"run folder {self.run_dir} is not empty: give a new --run-dir")
        for sub in ("keystores", "logs", "gossip"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        events = EventLog(self.run_dir / "supervisor.jsonl")
        with sigterm_as_interrupt():
            try:
                return self._run(events)
            finally:
                with signals_deferred():
                    self._shutdown(events)

    def _run(self, events: EventLog) -> dict[str, Any]:
        from eth_account import Account

        from fedmarket.chain.anvil import AnvilProcess, dev_accounts
        from fedmarket.fl.semi.engine import make_setup
        from fedmarket.storage.store import open_store
        from fedmarket.wallet import LIGHT_SCRYPT_N, KeystoreDir

        cfg, run, began = self.config, self.run_dir, time.monotonic()
        self.note("loading the data and the clients' splits")
        setup = make_setup(cfg.sim)
        self.anvil = AnvilProcess(accounts=1).start()
        events.write("start", name="anvil", pid=self.anvil.pid, url=self.anvil.url)
        w3 = self.anvil.web3()
        dev = dev_accounts(w3)[0]
        password = os.environ.get(PASSWORD_ENV) or secrets.token_urlsafe(24)
        keystores = KeystoreDir(run / "keystores")
        accounts = {name: Account.create() for name in ["buyer", *self.names]}
        for name, account in accounts.items():
            keystores.create(name, account.key, password, scrypt_n=LIGHT_SCRYPT_N)
        atomic_write_json(run / "accounts.json", {name: a.address for name, a in accounts.items()})
        buyer = accounts["buyer"]
        send_values(w3, dev, [(buyer.address, cfg.terms.reward_wei + cfg.fund_wei), *((accounts[n].address, cfg.fund_wei) for n in self.names)])

        self.note("deploying SemiMarket, posting the task")
        store = open_store(cfg.ipfs, root=run / "store")
        market = deploy_semi_market(w3, dev)
        owner = market.with_account(buyer)
        epoch_length = math.ceil(cfg.run_budget_s / cfg.terms.epochs)
        posted = post_semi_task(owner, store, cfg.market_config(), setup, epoch_length)
        task_id = posted.task_id
        events.write("posted", contract=market.address, task_id=task_id, spec_cid=posted.spec_cid, epoch_length=epoch_length)

        self.processes = ProcessSupervisor(events)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEDMARKET_") or k in ("FEDMARKET_HOME", "FEDMARKET_DATA")}
        env.update({PASSWORD_ENV: password, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"})
        for name in self.names:
            self.specs[name] = ProcessSpec(name, self._argv(name, market.address, task_id), run / "logs" / f"{name}.log", env, cwd=Path.cwd())
            crash = ["--crash-after", str(self.crash_plan[name])] if name in self.crash_plan else []
            self.processes.launch(ProcessSpec(name, self.specs[name].argv + crash, self.specs[name].output, env, cwd=Path.cwd()))
        self.note(f"launched {len(self.names)} client processes; waiting for them to join")
        self._wait(lambda: len(market.clients(task_id)) == cfg.sim.clients, cfg.join_timeout_s, "every client to join")
        start = owner.start_task(task_id)
        events.write("started", task_id=task_id, block=start.block_number)
        self.note("task started: the clients train, gossip and record at their own pace")
        rounds = cfg.sim.rounds
        self._wait(lambda: all(c.rounds == rounds for c in market.clients(task_id)), cfg.run_budget_s, f"every client to record {rounds} rounds")

        self.note("every client is done: settling the payment epochs")
        from fedmarket.chain.timecontrol import advance_to

        advance_to(w3, market.get_task(task_id).state.start_time + cfg.terms.epochs * epoch_length)
        for _ in range(cfg.terms.epochs):
            owner.settle_epoch(task_id)
        self._wait(lambda: not self.processes.running, cfg.exit_timeout_s, "the clients to withdraw and exit", exits_ok=True)
        for account in accounts.values():
            if market.credit(account.address) > 0:
                market.with_account(account).withdraw()
        report = self._report(market, task_id, setup, store, accounts, buyer.address, posted.spec_cid)
        report["wall_s"] = round(time.monotonic() - began, 3)
        report["run_dir"] = str(run)
        atomic_write_json(run / "report.json", report)
        return report

    def _argv(self, name: str, contract: str, task_id: int) -> list[str]:
        cfg, run = self.config, self.run_dir
        return [
            cfg.python, "-m", "fedmarket.cli.app", "agent", "semi-trainer",
            "--task-id", str(task_id), "--account", name, "--name", name, "--keystore-dir", str(run / "keystores"),
            "--rpc", self.anvil.url, "--contract", contract, "--gossip-dir", str(run / "gossip"),
            *(["--ipfs", cfg.ipfs] if cfg.ipfs else ["--store-dir", str(run / "store")]),
            "--threads", "1", "--join", "--withdraw", "--log", str(run / "logs" / f"{name}.jsonl"),
        ]  # fmt: skip

    def _wait(self, done: Callable[[], bool], timeout_s: float, what: str, *, exits_ok: bool = False) -> None:
        """Poll `done` until true. A client process that fails meanwhile is restarted (it resumes
        from the chain), up to CRASH_RESTARTS times; one that exits 0 before `exits_ok` fails the
        run, as does one failing too often (with its last log line)."""
        deadline = time.monotonic() + timeout_s
        while not done():
            assert self.processes is not None
            for ended in self.processes.poll():
                if ended.code == 0 and exits_ok:
                    continue
                tail = last_line(self.run_dir / "logs" / f"{ended.name}.log")
                if ended.code == 0 or self.restarts.get(ended.name, 0) >= CRASH_RESTARTS:
                    raise DevnetError(f"{ended.name} exited with code {ended.code} while waiting for {what}: {tail}")
                self.restarts[ended.name] = self.restarts.get(ended.name, 0) + 1
                self.note(f"{ended.name} exited with code {ended.code}; restarted (it resumes from the chain)")
                self.processes.launch(self.specs[ended.name], note={"why": f"exit {ended.code}"})
            if time.monotonic() > deadline:
                raise DevnetError(f"gave up waiting for {what} after {timeout_s:.0f} s; see {self.run_dir / 'logs'}")
            time.sleep(POLL_S)

    def _report(self, market: SemiMarketClient, task_id: int, setup: Any, store: Any, accounts: dict[str, Any], buyer: str, spec_cid: str) -> dict[str, Any]:
        from fedmarket.fl.semi.engine import score_clients
        from fedmarket.fl.sim import state_digest
        from fedmarket.roles.semi_trainer import fetch_verified, weights_check_for

        clients = [c.account for c in market.clients(task_id)]
        name_of = {accounts[n].address: n for n in self.names}
        logs = {address: read_jsonl(self.run_dir / "logs" / f"{name_of[address]}.jsonl") for address in clients}
        rounds = [r for address in clients for r in logs[address] if r.get("action") == "round"]
        finals = [next(r for r in logs[address] if r.get("action") == "final") for address in clients]
        check = weights_check_for(setup)
        states = [fetch_verified(store, f["cid"], f["round"], check) for f in finals]
        client_metrics, average_metrics = score_clients(setup, states)
        seconds = {k: round(sum(r[k] for r in rounds), 3) for k in ("train_s", "chain_s", "storage_s")}
        report = chain_report(market, task_id, self.config.market_config(), clients, buyer, setup.stragglers, [r["gas"] for r in rounds], seconds)
        busy, working, exists = (sum(f[k] for f in finals) for k in ("busy_s", "working_s", "exists_s"))
        for address, f in zip(clients, finals, strict=True):
            report["participants"][address].update(name=name_of[address], busy_s=round(f["busy_s"], 3), exists_s=round(f["exists_s"], 3))
        report.update(
            processes=True,
            bit_reproducible=False,
            restarts=dict(self.restarts),
            final={"client_models": client_metrics.to_dict(), "average_model": average_metrics.to_dict()},
            compute_time_ratio=busy / exists if exists > 0 else 1.0,
            working_time_ratio=working / exists if exists > 0 else 1.0,
            gossip=gossip_summary([r for address in clients for r in logs[address]]),
            client_digests=[state_digest(s) for s in states],
            spec_cid=spec_cid,
        )
        return report

    def _shutdown(self, events: EventLog) -> None:
        if self.processes is not None:
            self.processes.stop_all(reason="shutdown")
        if self.anvil is not None:
            anvil, self.anvil = self.anvil, None
            events.write("kill", name="anvil", pid=anvil.pid, reason="shutdown")
            anvil.stop()


def gossip_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Gossip messages sent, accepted (verified), refused (with the reasons) and undelivered, from the agents' logs."""
    count = {k: sum(1 for r in records if r.get("action") == f"gossip-{k}") for k in ("sent", "accepted", "refused", "undelivered")}
    count["refusals"] = sorted({str(r.get("detail")) for r in records if r.get("action") == "gossip-refused"})
    return count
