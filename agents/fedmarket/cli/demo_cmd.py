"""`fedmarket demo`: the whole market, learning included, in one process.

On the embedded chain and an embedded store by default (nothing to set up), or on a dev node
(--rpc, e.g. anvil from `fedmarket chain start`) and a Kubo node (--ipfs). It deploys its own
Marketplace, signs with the chain's dev accounts, and runs the same trainer, validator and
aggregator agents that `fedmarket agent` runs as processes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Optional

import typer

from fedmarket.cli import run_options as ro
from fedmarket.cli import spec_options as so
from fedmarket.cli.output import console, err_console, one_line_errors, print_json


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@one_line_errors
@so.with_spec_flags
def demo(
    rounds: int = typer.Option(5, "--rounds", min=1, max=1000, help="Training rounds."),
    trainers: int = typer.Option(5, "--trainers", min=1, max=64, help="Trainers (each holds one client's split of the data set)."),
    validators: int = typer.Option(3, "--validators", min=1, max=32, help="Validators (the committee is up to 3 of them; none with --committee elected)."),
    committee: str = so.CommitteeOption,
    attack: list[str] = ro.AttackOption,
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    threads: int = typer.Option(
        1,
        "--threads",
        min=1,
        help="torch CPU threads. Training is bit-reproducible only at the same thread "
        "count (a BLAS reduction splits by thread): agents and `fedmarket sim --threads 1` use 1.",
    ),
    rpc: Optional[str] = typer.Option(None, "--rpc", help="JSON-RPC URL of a dev chain such as anvil (default: the embedded chain)."),
    ipfs: Optional[str] = typer.Option(None, "--ipfs", help="Kubo RPC URL (default: an embedded store in a temporary folder)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the JSON report (design §6) here.", dir_okay=False),
    png: Optional[Path] = typer.Option(None, "--png", help="Write the accuracy / payout chart here (default: beside --report).", dir_okay=False),
    logs: Optional[Path] = typer.Option(None, "--logs", help="Write every agent's JSON-lines log into this folder.", file_okay=False),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout instead of tables."),
    mode: str = typer.Option(
        "sync", "--mode", help="sync: the Marketplace's rounds; semi: the seed paper's semi-centralised market (SemiMarket, docs/semi.md)."
    ),
    stragglers: float = typer.Option(0.0, "--stragglers", min=0.0, max=1.0, help="semi: share of clients that compute slowly."),
    slowdown: float = ro.SlowdownOption,
    trust: str = ro.TrustOption,
    payment_epochs: int = typer.Option(2, "--payment-epochs", min=1, max=1000, help="semi: payment epochs of the task."),
    *,
    spec_flags: dict[str, Any],
) -> None:
    """Run a complete market: deploy, post and fund a task, licences and stakes, ROUNDS rounds of
    real federated learning (train, commit, reveal, committed scores, aggregate, committed votes), finalize, settle,
    withdraw; then print accuracy per round and every participant's payout."""
    import torch
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from fedmarket.chain.client import connect
    from fedmarket.chain.embedded import new_embedded_web3
    from fedmarket.cli.report_view import print_report_tables
    from fedmarket.market.engine import MarketConfig, run_local_market
    from fedmarket.market.plan import parse_attack
    from fedmarket.market.report import build_report, check_conservation, write_report
    from fedmarket.market.report_plot import plot_report
    from fedmarket.market.setup import MarketTerms
    from fedmarket.storage.store import open_store

    torch.set_num_threads(threads)
    attacks = dict(parse_attack(item) for item in attack)
    validators, spec_flags = so.committee_flags(committee, validators, spec_flags)
    spec = so.spec_of(trainers=trainers, validators=validators, committee=committee, **spec_flags)
    if mode == "semi":
        from fedmarket.cli.semi_demo import run_semi_demo

        if attacks:
            raise typer.BadParameter("--attack plays the Marketplace's roles: use it with --mode sync")
        semi = dict(stragglers=stragglers, slowdown=slowdown, trust=trust, payment_epochs=payment_epochs)
        return run_semi_demo(spec=spec, rounds=rounds, device=device, rpc=rpc, ipfs=ipfs, report=report, as_json=as_json, **semi)
    if mode != "sync":
        raise typer.BadParameter(f"--mode must be sync or semi, not {mode!r}")
    config = MarketConfig(spec=spec, terms=MarketTerms(rounds=rounds), attacks=attacks, device=device)
    config.check()

    w3 = connect(rpc) if rpc else new_embedded_web3(num_accounts=max(10, 2 + trainers + validators))
    live_console = err_console if as_json else console  # --json keeps stdout for the report alone
    with tempfile.TemporaryDirectory(prefix="fedmarket-demo-") as scratch:
        store = open_store(ipfs, None if ipfs else Path(scratch) / "store")
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=live_console, transient=as_json) as bar:  # fmt: skip
            task = bar.add_task("starting", total=None)
            run = run_local_market(w3, store, config, Path(scratch) / "state", progress=lambda text: bar.update(task, description=text), log_dir=logs)
            bar.update(task, description="building the report: evaluating every round's global model")
            data = build_report(
                run.market,
                run.model_id,
                store=store,
                task_data=run.task_data,
                labels=run.labels,
                round_wall_s=run.round_wall_s,
                agent_logs=run.logs,
                start_block=run.start_block,
            )
            data["wall_s"] = round(run.wall_s, 3)
            bar.update(task, description="done", total=1, completed=1)
    check_conservation(data)
    if report is not None:
        write_report(data, report)
    if png is None and report is not None:
        png = report.with_suffix(".png")
    if png is not None:
        plot_report(data, png)
    if as_json:
        print_json(data)
        return
    print_report_tables(data, console)
    for path in (report, png):
        if path is not None:
            console.print(f"written: {path}", highlight=False)
    console.print(_what_happened(data, spec, attacks), highlight=False, soft_wrap=True)
    console.print(
        "next: try `fedmarket demo --attack trainer-4=free-ride --attack trainer-5=sign-flip`, or `fedmarket up` for every "
        "agent as its own process (the README's by-hand market runs the same steps one command at a time)",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


def _what_happened(report: dict, spec, attacks: dict[str, str]) -> str:
    """One line: who trained what, how far it learned, and that every wei is accounted for."""
    from fedmarket.cli.market_options import format_eth

    rounds = report["rounds"]
    start, end = report["initial"].get("accuracy"), report["final"].get("accuracy")
    learned = f"accuracy {start:.3f} -> {end:.3f}" if start is not None and end is not None else "no accuracy (regression task)"
    cheats = f", {len(attacks)} of them misbehaving" if attacks else ""
    t = report["totals"]
    return (
        f"what happened: {spec.trainers} trainers{cheats} trained {len(rounds)} rounds on {spec.dataset} ({learned}); "
        f"{len(report['participants'])} participants were paid by measured contribution and "
        f"the {format_eth(t['deposited_wei'])} deposited {'are accounted for to the wei' if t['conserved'] else 'are NOT accounted for'}"
    )
