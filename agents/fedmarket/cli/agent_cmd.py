"""`fedmarket agent trainer|validator|aggregator`: one participant of one task, as a process.

The agent follows the task from chain state until it is settled, then withdraws its credit and
exits 0. Kill it at any point and start it again with the same --state-dir: it resumes in the
right phase and never submits twice (the trainer's commit salts live in the state dir).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fedmarket.chain.protocol import BPS
from fedmarket.cli import market_options as opt
from fedmarket.cli.output import one_line_errors
from fedmarket.roles.policy import JoinPolicy

agent_app = typer.Typer(help="Run a trainer, validator or aggregator agent for one task until it is settled.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(agent_app, name="agent")


def _command(role: str, summary: str) -> None:
    @agent_app.command(role, help=summary)
    @one_line_errors
    @opt.with_session()
    def run(
        model_id: int = typer.Option(..., "--model-id", min=1, help="The task to take part in."),
        ipfs: Optional[str] = typer.Option(None, "--ipfs", envvar="FEDMARKET_IPFS", help="Kubo RPC URL (default: the embedded store)."),
        store_dir: Optional[Path] = typer.Option(None, "--store-dir", file_okay=False, help="Embedded store directory (default: <data dir>/blobs)."),
        data: str = typer.Option("auto", "--data", help="Own data: 'auto' (the task's simulated split, by join order) or an .npz file with arrays x and y."),
        data_dir: Optional[Path] = typer.Option(None, "--data-dir", file_okay=False, help="Folder of the fmnist / cifar10 files."),
        device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
        threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads (1 keeps several agents on one machine from thrashing)."),
        join: bool = typer.Option(False, "--join/--no-join", help="Buy the licence and stake while the task is open."),
        withdraw: bool = typer.Option(True, "--withdraw/--no-withdraw", help="Withdraw the credit once the task is settled."),
        state_dir: Optional[Path] = typer.Option(
            None, "--state-dir", file_okay=False, help="Salts and the event cursor (default: <data dir>/agents/ROLE-ADDRESS-CHAIN-TASK)."
        ),
        log: Optional[Path] = typer.Option(None, "--log", dir_okay=False, help="Append one JSON line per action here."),
        name: Optional[str] = typer.Option(None, "--name", help="The agent's name in its log (default: ROLE-ADDRESS PREFIX)."),
        poll: float = typer.Option(0.5, "--poll", min=0.05, help="Seconds between looks at the chain when nothing happens."),
        attack: Optional[str] = typer.Option(None, "--attack", help="Misbehave (adversary tests): KIND[@ROUNDS]; see `fedmarket agent ROLE --help`."),
        fault: Optional[str] = typer.Option(
            None,
            "--fault",
            help="Crash test: SIGKILL itself at ROUND:POINT (before-commit, before-reveal, before-score, before-score-reveal, before-publish, before-confirm, before-vote-reveal).",
        ),
        min_window: int = typer.Option(
            JoinPolicy.min_window_s,
            "--min-window",
            min=1,
            help="Join policy: refuse a task with any phase window shorter than this (s); minutes on a real network.",
        ),
        max_late_slash_bps: int = typer.Option(
            JoinPolicy.max_late_slash_bps, "--max-late-slash-bps", min=0, max=BPS, help="Join policy: refuse a task whose late slash is above this (bps)."
        ),
        max_stake: Optional[str] = typer.Option(
            None, "--max-stake", help="Join policy: refuse a task whose stake for this role is above this amount ('0.1eth')."
        ),
        *,
        session: opt.MarketSession,
    ) -> None:
        import torch

        from fedmarket.paths import data_dir as default_data_dir
        from fedmarket.roles.adversary import Attack, attacks_of
        from fedmarket.roles.agent import AgentLog, AgentOptions
        from fedmarket.roles.faults import Fault
        from fedmarket.roles.runner import Stopped, run_agent
        from fedmarket.storage.store import open_store

        cls = _agent_class(role)
        options = AgentOptions(
            device=device, join=join, withdraw=withdraw, data=data, data_dir=data_dir,
            attack=Attack.parse(attack, attacks_of(cls.role)) if attack else None,
            fault=Fault.parse(fault) if fault else None, name=name,
            policy=JoinPolicy(min_window_s=min_window, max_late_slash_bps=max_late_slash_bps,
                              max_stake_wei=opt.parse_amount(max_stake, "max stake") if max_stake else None),
        )  # fmt: skip
        torch.set_num_threads(threads)
        market = session.open()
        store = open_store(ipfs, store_dir)
        directory = state_dir or default_data_dir() / "agents" / f"{role}-{market.sender.lower()}-{market.client.chain_id}-{model_id}"
        agent = cls(market.client, store, model_id, directory, AgentLog(log, _echo), options)
        try:
            run_agent(agent, poll_s=poll)
        except Stopped:
            raise typer.Exit(143) from None


def _echo(record: dict) -> None:
    """One human line per action on stderr (the JSON line goes to --log)."""
    from fedmarket.cli.output import err_console

    parts = [record["agent"], f"round {record['round']}" if record["round"] else "", record["action"]]
    if record.get("tx"):
        parts.append(f"tx {record['tx'][:12]}… gas {record['gas']:,}")
    if record.get("detail"):
        parts.append(str(record["detail"]))
    err_console.print("  ".join(p for p in parts if p), highlight=False, soft_wrap=True)


def _agent_class(role: str):
    from fedmarket.roles.aggregator import AggregatorAgent
    from fedmarket.roles.trainer import TrainerAgent
    from fedmarket.roles.validator import ValidatorAgent

    return {"trainer": TrainerAgent, "validator": ValidatorAgent, "aggregator": AggregatorAgent}[role]


_command(
    "trainer",
    "Train on your own data each round: download the global model, train, store the update, commit, reveal. "
    "Attacks: free-ride, sign-flip, scale, noise, label-flip, corrupt-blob, wrong-shape, pickle, bad-reveal.",
)
_command("validator", "On the round's committee: score every revealed update on your held-out data, then check the aggregator's proposal. Attack: approve-all.")
_command("aggregator", "Aggregate the accepted updates with the task's rule, store the global model, propose it. Attack: wrong-aggregate.")


@agent_app.command("semi-trainer", help="A client of a semi task (SemiMarket, docs/semi.md): train, gossip to the trusted neighbours, record rounds, withdraw.")
@one_line_errors
@opt.with_session(("account", "rpc", "contract", "keystore_dir", "password_file"))
def semi_trainer(
    task_id: int = typer.Option(..., "--task-id", min=0, help="The SemiMarket task to take part in."),
    gossip_dir: Path = typer.Option(..., "--gossip-dir", file_okay=False, help="Where the clients' loopback gossip endpoints are written and found."),
    ipfs: Optional[str] = typer.Option(None, "--ipfs", envvar="FEDMARKET_IPFS", help="Kubo RPC URL (default: the embedded store)."),
    store_dir: Optional[Path] = typer.Option(None, "--store-dir", file_okay=False, help="Embedded store directory (default: <data dir>/blobs)."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads."),
    join: bool = typer.Option(False, "--join/--no-join", help="Stake while the task is open."),
    withdraw: bool = typer.Option(True, "--withdraw/--no-withdraw", help="Withdraw the credit once the task is settled."),
    log: Optional[Path] = typer.Option(None, "--log", dir_okay=False, help="Append one JSON line per action here."),
    name: Optional[str] = typer.Option(None, "--name", help="The agent's name in its log."),
    poll: float = typer.Option(0.25, "--poll", min=0.05, help="Seconds between looks at the chain while waiting."),
    crash_after: Optional[int] = typer.Option(None, "--crash-after", min=1, help="Crash test: SIGKILL itself right after recording this round."),
    *,
    session: opt.MarketSession,
) -> None:
    import torch

    from fedmarket.chain.semi_client import SemiMarketClient
    from fedmarket.errors import FedmarketError
    from fedmarket.roles.agent import AgentLog
    from fedmarket.roles.semi_agent import SemiAgent, SemiAgentOptions
    from fedmarket.storage.store import open_store

    if not session.contract:
        raise FedmarketError("give the SemiMarket's address with --contract")
    torch.set_num_threads(threads)
    w3 = session.connect()
    account = session.signer(w3)
    market = SemiMarketClient(w3, session.contract, account)
    agent_log = AgentLog(log, _echo)
    agent = SemiAgent(market, account, task_id, open_store(ipfs, store_dir), gossip_dir, agent_log.write, name or f"semi-{account.address[:8].lower()}",
                      SemiAgentOptions(join=join, withdraw=withdraw, poll_s=poll, crash_after=crash_after))  # fmt: skip
    agent.run()
