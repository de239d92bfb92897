"""`fedmarket demo`: a whole market in one process (the scripted market until the learning demo lands).

On the embedded chain by default (nothing to set up), or on a dev node with --rpc (anvil:
`fedmarket chain start`); it deploys its own Marketplace and signs with the chain's dev accounts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from fedmarket.cli.output import console, err_console, one_line_errors, print_json


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@one_line_errors
def demo(
    rpc: Optional[str] = typer.Option(None, "--rpc", help="JSON-RPC URL of a dev chain (anvil) (default: the embedded chain)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the JSON report (design §6) to this file.", dir_okay=False),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout instead of tables."),
) -> None:
    """Run a complete market: deploy, post + fund a task, licences, stakes, three rounds with fixed
    scores (a late trainer, a poisoner and a silent validator get slashed), finalize, settle, withdraw."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from fedmarket.chain.client import connect
    from fedmarket.roles.scripted_market import ScriptedMarket

    w3 = connect(rpc)
    notes: list[str] = []
    # --json keeps stdout for the report alone: the live view goes to stderr then.
    live_console = err_console if as_json else console
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=live_console, transient=as_json,
    ) as bar:  # fmt: skip
        market = ScriptedMarket(w3)
        task = bar.add_task("starting", total=market.total_steps())
        state = {"started": False}

        def progress(text: str) -> None:
            if state["started"]:
                bar.advance(task)
            state["started"] = True
            bar.update(task, description=text)

        def note(text: str) -> None:
            notes.append(text)
            bar.console.log(text)

        market.progress, market.note = progress, note
        run = market.run()
        bar.update(task, completed=market.total_steps(), description="done")

    data = run.report()
    if run.deposited != run.withdrawn or run.contract_balance != 0:
        from fedmarket.errors import FedmarketError

        raise FedmarketError(f"conservation violated: deposited {run.deposited} wei, withdrawn {run.withdrawn} wei, contract holds {run.contract_balance} wei")
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(data, indent=2) + "\n")
    if as_json:
        print_json(data)
        return
    _print_tables(data)
    if report is not None:
        console.print(f"report written to {report}", highlight=False)


def _eth(wei: int) -> str:
    """ETH to 6 decimals for the tables (the report keeps exact wei); tiny amounts in wei."""
    wei = int(wei)
    if wei == 0:
        return "0"
    if abs(wei) < 10**12:
        return f"{wei} wei"
    text = f"{wei / 10**18:.6f}".rstrip("0").rstrip(".")
    return text if wei % 10**12 == 0 else f"~{text}"


def _print_tables(data: dict[str, Any]) -> None:
    from rich.table import Table

    chain = data["chain"]
    rounds = Table(title=f"task {data['model_id']} on the {chain['kind']} chain {chain['chain_id']}, Marketplace {chain['contract']} (ETH)")
    for column in ("round", "budget", "trainers", "validators", "aggregator", "slashed", "to buyer", "accepted", "gas"):
        rounds.add_column(column, justify="right")
    for r in data["rounds"]:
        earned = r["earned_wei"]
        rounds.add_row(
            str(r["round"]), _eth(r["budget_wei"]), _eth(earned["trainer"]), _eth(earned["validator"]), _eth(earned["aggregator"]),
            _eth(r["slashed_wei"]), _eth(r["returned_to_buyer_wei"]), str(len(r["accepted"])), f"{r['gas_used']:,}",
        )  # fmt: skip
    console.print(rounds)

    people = Table(title="who paid in, earned, was slashed and took out (ETH)")
    for column in ("participant", "role", "deposited", "earned", "slashed", "withdrawn"):
        people.add_column(column, justify="left" if column in ("participant", "role") else "right")
    for address, p in data["participants"].items():
        people.add_row(f"{p['label']} {address[:8]}…", p["role"], _eth(p["deposited_wei"]), _eth(p["earned_wei"]), _eth(p["slashed_wei"]), _eth(p["withdrawn_wei"]))
    b = data["buyer"]
    people.add_row(f"buyer {b['address'][:8]}…", "buyer", _eth(b["deposited_wei"]), _eth(b["refunded_wei"] + b["license_income_wei"]), "", _eth(b["withdrawn_wei"]))
    t = data["totals"]
    people.add_row("total", "", _eth(t["deposited_wei"]), "", "", _eth(t["withdrawn_wei"]), style="bold")
    console.print(people)
    same = t["deposited_wei"] == t["withdrawn_wei"]
    console.print(
        f"conservation: deposited {t['deposited_wei']} wei {'==' if same else '!='} withdrawn {t['withdrawn_wei']} wei; "
        f"the contract holds {t['contract_balance_wei']} wei. {t['gas_used']:,} gas in {t['wall_s']:.1f} s.",
        highlight=False,
    )
    console.print(
        f"the buyer's earnings are its refund ({_eth(b['refunded_wei'])}: unearned shares and rounding dust) and the licence fees ({_eth(b['license_income_wei'])}).",
        highlight=False,
    )
    console.print(data["note"], style="dim", highlight=False)
