"""`fedmarket report --model-id N`: a task's report (design.md §6), rebuilt from the chain alone.

Read-only: no account. The events and views of the Marketplace give rounds, acceptances, money
and gas; with the task's spec and global models in the store (the embedded one, or Kubo with
--ipfs) every global model is also evaluated on the clients' test splits as `fedmarket sim` does.
When the store lacks the spec or the spec is no learning task, the metrics are null and one line
says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from fedmarket.cli import market_options as opt
from fedmarket.cli.output import console, err_console, one_line_errors, print_json
from fedmarket.cli.store_cmd import IpfsOption, StoreDirOption
from fedmarket.market import views

if TYPE_CHECKING:
    pass


def register(app: typer.Typer) -> None:
    app.command("report")(report)


@one_line_errors
@opt.with_session((*opt.READING, "keystore_dir"))
def report(
    model_id: int = typer.Option(..., "--model-id", min=0, help="The task's id."),
    ipfs: Optional[str] = IpfsOption,
    store_dir: Optional[Path] = StoreDirOption,
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", file_okay=False, help="Folder holding the task's dataset files (fmnist / cifar10) [default: the data dir]."
    ),
    out: Optional[Path] = typer.Option(None, "--out", dir_okay=False, help="Write the JSON report to this file."),
    png: Optional[Path] = typer.Option(None, "--png", dir_okay=False, help="Draw the report (accuracy per round, payouts) into this PNG."),
    start_block: int = typer.Option(0, "--start-block", min=0, help="Read events from this block on (the contract's deployment block or earlier)."),
    *,
    session: opt.MarketSession,
) -> None:
    """A task's report from the chain: rounds, accepted updates, utilities, money, gas, and (when
    the store holds the spec and the models) every global model's accuracy."""
    from fedmarket.cli.report_view import print_report_tables
    from fedmarket.market.report import build_report, write_report
    from fedmarket.storage import open_store

    market = session.open().client
    store = open_store(ipfs, store_dir)
    task_data, why = views.load_task_data(market, model_id, store, data_dir)
    from fedmarket.wallet import KeystoreDir

    names = {entry.address: entry.name for entry in KeystoreDir(session.keystore_dir).entries()}  # no password needed
    data: dict[str, Any] = build_report(market, model_id, store=store if task_data is not None else None, task_data=task_data,
                                        start_block=start_block, labels=names)  # fmt: skip
    if why is not None:
        data["notes"] = [why] + [n for n in data["notes"] if not n.startswith("accuracy, loss and auc are null")]
    if out is not None:
        write_report(data, out)
    if png is not None:
        from fedmarket.market.report_plot import plot_report

        plot_report(data, png)
    if session.as_json:
        print_json(data)
        if why is not None:
            err_console.print(why, highlight=False, markup=False)
        return
    print_report_tables(data, console)
    for path, what in ((out, "report"), (png, "plot")):
        if path is not None:
            console.print(f"{what} written to {path}", highlight=False)
