"""`fedmarket model download`: a task's global model (the final one, or any round's), fetched
from the store, checked against the CID the chain names, parsed as a safetensors weights file
(never unpickled), and written to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fedmarket.cli import market_options as opt
from fedmarket.cli.output import one_line_errors
from fedmarket.cli.store_cmd import IpfsOption, StoreDirOption
from fedmarket.market import views

model_app = typer.Typer(help="A task's models: download the final or any round's global model.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")


@model_app.command("download")
@one_line_errors
@opt.with_session(opt.READING)
def download(
    model_id: int = typer.Option(..., "--model-id", min=1, help="The task's id."),
    round_number: Optional[int] = typer.Option(None, "--round", min=0, help="0: the initial model; R: the global model after round R (default: the latest)."),
    output: Path = typer.Option(..., "--output", "-o", dir_okay=False, help="Write the weights (safetensors) here."),
    ipfs: Optional[str] = IpfsOption,
    store_dir: Optional[Path] = StoreDirOption,
    start_block: int = typer.Option(0, "--start-block", min=0, help="Read events from this block on (with --round)."),
    *,
    session: opt.MarketSession,
) -> None:
    """Download a global model, verified against its CID on chain."""
    from fedmarket.errors import FedmarketError
    from fedmarket.storage.store import open_store
    from fedmarket.storage.weights import decode_weights

    market = session.open().client
    info = market.get_model(model_id)
    cid, which = views.round_model_cid(market, model_id, info, round_number, start_block)
    store = open_store(ipfs, store_dir)
    try:
        blob = store.get(cid)  # the store checks the bytes against the CID
        state, meta = decode_weights(blob)
    except FedmarketError as exc:
        raise FedmarketError(f"{which} {cid}: {exc}") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.part")
    temporary.write_bytes(blob)
    temporary.replace(output)
    parameters = sum(t.numel() for t in state.values())
    session.print_result(
        {"model_id": model_id, "which": which, "cid": cid, "arch": meta.arch, "round": meta.round, "parent_cid": meta.parent_cid,
         "parameters": parameters, "bytes": len(blob), "output": str(output)},
        f"{which} of task {model_id}: {cid} ({meta.arch}, {parameters:,} parameters, {len(blob):,} bytes) -> {output}",
    )  # fmt: skip
