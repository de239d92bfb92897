"""`fedmarket up`: a local devnet, every participant its own OS process (fedmarket.market.devnet).

    fedmarket up --trainers 4 --validators 3 --rounds 3
    fedmarket up --trainers 4 --validators 3 --rounds 4 \\
        --fault 'trainer-2@2:before-commit->r3' --fault 'aggregator@1:before-publish->now' \\
        --fault 'validator-3@1:before-score->never'

A live view of the task and the agents while it runs (on stderr with --json), then the report's
tables and the run folder (logs, keystores, supervisor.jsonl, report.json, report.png).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Optional

import typer

from fedmarket.cli import run_options as ro
from fedmarket.cli import spec_options as so
from fedmarket.cli.output import console, err_console, one_line_errors, print_json


def register(app: typer.Typer) -> None:
    app.command("up")(up)


@one_line_errors
@so.with_spec_flags
def up(
    trainers: int = typer.Option(4, "--trainers", "-n", min=1, max=64, help="Trainer agents (processes)."),
    validators: int = typer.Option(3, "--validators", "-k", min=1, max=32, help="Validator agents (processes); the committee is min(K, 3)."),
    rounds: int = typer.Option(3, "--rounds", "-r", min=1, max=1000, help="Training rounds."),
    committee: str = so.CommitteeOption,
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", file_okay=False, help="Run folder (default: runs/<UTC timestamp> under the current directory)."),
    ipfs: Optional[str] = typer.Option(None, "--ipfs", help="Kubo RPC URL for the blobs (default: an embedded store in the run folder)."),
    report: Optional[Path] = typer.Option(None, "--report", dir_okay=False, help="Copy report.json here too."),
    png: Optional[Path] = typer.Option(None, "--png", dir_okay=False, help="Copy report.png here too."),
    window: Optional[int] = typer.Option(
        None,
        "--window",
        min=2,
        max=86_400,
        help="Every phase window, seconds (a phase ends early once everyone acted; the window only bites the dead and the slow). "
        "Default: 20, or 4 per agent per CPU core when that is more.",
    ),  # fmt: skip
    fault: Optional[list[str]] = typer.Option(
        None,
        "--fault",
        help="NAME@ROUND:POINT->RESTART, e.g. trainer-2@2:before-commit->r3; NAME trainer-I|validator-J|aggregator, "
        "POINT before-commit|before-reveal|before-score|before-score-reveal|before-publish|before-confirm|before-vote-reveal, RESTART rR (when round R opens)|now|never. Repeatable. "
        "--mode semi: client-K@R (client-K SIGKILLs itself after recording round R and is restarted at once).",
    ),  # fmt: skip
    attack: list[str] = ro.AttackOption,
    device: str = typer.Option("cpu", "--device", help="Agents' torch device: cpu, cuda or auto."),
    reward: str = typer.Option("1", "--reward", help="The buyer's reward escrow (ETH, or with a unit: 500000gwei)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result (run folder, report) as JSON on stdout; the live view goes to stderr."),
    mode: str = typer.Option("sync", "--mode", help="sync: the Marketplace's rounds; semi: the semi-centralised market (SemiMarket), a process per client."),
    stragglers: float = typer.Option(0.5, "--stragglers", min=0.0, max=1.0, help="semi: share of client processes slowed down."),
    slowdown: float = ro.SlowdownOption,
    trust: str = ro.TrustOption,
    payment_epochs: int = typer.Option(1, "--payment-epochs", min=1, max=1000, help="semi: payment epochs of the task."),
    *,
    spec_flags: dict[str, Any],
) -> None:
    """Run a local devnet: anvil, the Marketplace, a buyer's task and N trainer, K validator and
    1 aggregator agents, each its own process, supervised (faults injected and restarted as
    planned) until the task is settled and everyone has withdrawn; then the report."""
    from dataclasses import replace

    from fedmarket.cli.market_options import parse_amount
    from fedmarket.market.devnet import DEVNET_TERMS, Devnet, DevnetConfig

    validators, spec_flags = so.committee_flags(committee, validators, spec_flags)
    spec = so.spec_of(trainers=trainers, validators=validators, committee=committee, **spec_flags)
    if mode == "semi":
        if attack:
            raise typer.BadParameter("--attack drives the Marketplace's roles; --mode semi takes none")
        from fedmarket.cli.semi_demo import run_semi_up

        semi = dict(stragglers=stragglers, slowdown=slowdown, trust=trust, payment_epochs=payment_epochs, crashes=tuple(fault or ()))
        return run_semi_up(
            spec=spec,
            rounds=rounds,
            device=device,
            run_dir=run_dir,
            ipfs=ipfs,
            reward_wei=parse_amount(reward, "reward"),
            report=report,
            as_json=as_json,
            **semi,
        )
    if mode != "sync":
        raise typer.BadParameter(f"--mode must be sync or semi, not {mode!r}")
    config = DevnetConfig(
        spec=spec, terms=replace(DEVNET_TERMS, rounds=rounds, reward=parse_amount(reward, "reward")), run_dir=run_dir, ipfs=ipfs,
        window=window, faults=tuple(fault or ()), attacks=tuple(attack), device=device,
    )  # fmt: skip
    live_console = err_console if as_json else console
    view = _LiveView(live_console)
    devnet = Devnet(config, on_update=view.update, on_note=view.note)  # checks the config: errors before anything starts
    live_console.print(f"run folder {devnet.run_dir}", highlight=False)
    try:
        with view:
            result = devnet.run()
    except BaseException:
        live_console.print(f"run folder (logs, supervisor.jsonl): {devnet.run_dir}", highlight=False)
        raise
    for target, source in ((report, result.report_path), (png, result.png_path)):
        if target is not None and source is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    if as_json:
        print_json(result.as_json())
    else:
        from fedmarket.cli.report_view import print_report_tables

        print_report_tables(result.report, console)
        for note in result.notes:
            console.print(f"  {note}", style="dim", highlight=False)
        console.print(f"{result.wall_s:.1f} s in all; rounds took {', '.join(f'{s:.1f}' for s in result.round_wall_s.values())} s", highlight=False)
        console.print(f"run folder {result.run_dir}", highlight=False)
    if result.problems:
        from fedmarket.errors import FedmarketError

        raise FedmarketError("; ".join(result.problems))


class _LiveView:
    """A rich Live table of the task and the agents, refreshed as the devnet's view changes."""

    def __init__(self, target: Any) -> None:
        from rich.live import Live

        self.console = target
        self.view: Any = None
        self.live = Live(console=target, refresh_per_second=4, transient=False, get_renderable=self._render)

    def __enter__(self) -> _LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(*exc)

    def update(self, view: Any) -> None:
        self.view = view

    def note(self, text: str) -> None:
        self.live.console.print(f"[dim]{_clock()}[/] {text}", highlight=False)

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        v = self.view
        if v is None:
            return Text("starting ...")
        head = f"{v.stage}  [{v.elapsed_s:5.0f} s]"
        if v.model_id is not None:
            head += f"  task {v.model_id}"
        if v.current_round:
            from fedmarket.chain.timecontrol import time_left

            left = f": {time_left(v.phase_left_s)} left" if v.phase_left_s is not None else ""
            head += f"  round {v.current_round}/{v.rounds}, {str(v.phase).lower()} phase{left}  closed {v.rounds_closed}"
        elif v.joined:
            head += f"  joined: {v.joined}"
        table = Table(expand=False, show_edge=False, pad_edge=False)
        for column in ("agent", "pid", "state", "launches", "last action"):
            table.add_column(column)
        for name, s in v.agents.items():
            state = s.state + (f" ({s.detail})" if s.detail and s.state != "running" else "")
            table.add_row(name, str(s.pid or "-"), state, str(s.launches), v.last_action.get(name, ""))
        return Group(Text(head, style="bold"), table)


def _clock() -> str:
    import time

    return time.strftime("%H:%M:%S")
