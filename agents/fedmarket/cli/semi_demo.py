"""`fedmarket demo --mode semi` (the semi market in one process, market.semi_engine) and `fedmarket
up --mode semi` (every client its own process on anvil, market.semi_devnet).

demo_cmd parses the flags and hands them here; this runs the market on the embedded chain (or
--rpc) and an embedded store (or --ipfs), and prints accuracy, the device compute-time ratio,
the records on chain and every participant's payout (or the report as JSON).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from fedmarket.cli.output import console, err_console, print_json
from fedmarket.files import atomic_write


def _sim_config(spec: Any, rounds: int, stragglers: float, slowdown: float, trust: str, device: str) -> Any:
    """The fl.semi config of the task: the spec's learning settings, one client per trainer."""
    from fedmarket.fl.learning import learning_fields
    from fedmarket.fl.semi.config import AsyncConfig

    return AsyncConfig(
        **learning_fields(spec), mode="semi", clients=spec.trainers, rounds=rounds, stragglers=stragglers, slowdown=slowdown, trust=trust, device=device
    )


def run_semi_demo(
    *, spec: Any, rounds: int, stragglers: float, slowdown: float, trust: str, payment_epochs: int, device: str,
    rpc: str | None, ipfs: str | None, report: Path | None, as_json: bool,
) -> None:  # fmt: skip
    from fedmarket.chain.client import connect
    from fedmarket.chain.embedded import new_embedded_web3
    from fedmarket.market.semi_engine import SemiMarketConfig, SemiTerms, run_semi_market
    from fedmarket.storage.store import open_store

    sim = _sim_config(spec, rounds, stragglers, slowdown, trust, device)
    config = SemiMarketConfig(sim, SemiTerms(epochs=payment_epochs))
    config.check()
    w3 = connect(rpc) if rpc else new_embedded_web3(num_accounts=spec.trainers + 2)
    live = err_console if as_json else console
    with tempfile.TemporaryDirectory(prefix="fedmarket-semi-demo-") as scratch:
        store = open_store(ipfs, None if ipfs else Path(scratch) / "store")
        data = run_semi_market(w3, store, config, progress=lambda text: live.print(text, highlight=False))
    if _reported(data, report, as_json):
        return
    print_semi_report(data, sim, rounds, stragglers, slowdown, trust)
    if report is not None:
        console.print(f"written: {report}", highlight=False)


def run_semi_up(
    *, spec: Any, rounds: int, stragglers: float, slowdown: float, trust: str, payment_epochs: int, device: str,
    run_dir: Path | None, ipfs: str | None, reward_wei: int, crashes: tuple[str, ...], report: Path | None, as_json: bool,
) -> None:  # fmt: skip
    """`fedmarket up --mode semi`: every client its own process on anvil (market.semi_devnet)."""
    from fedmarket.market.semi_devnet import SemiDevnet, SemiDevnetConfig
    from fedmarket.market.semi_engine import SemiTerms

    sim = _sim_config(spec, rounds, stragglers, slowdown, trust, device)
    live = err_console if as_json else console
    devnet = SemiDevnet(
        SemiDevnetConfig(sim, SemiTerms(epochs=payment_epochs, reward_wei=reward_wei), run_dir=run_dir, ipfs=ipfs, crashes=crashes),
        on_note=lambda t: live.print(t, highlight=False),
    )
    live.print(f"run folder {devnet.run_dir}", highlight=False)
    data = devnet.run()
    if _reported(data, report, as_json):
        return
    print_semi_report(data, sim, rounds, stragglers, slowdown, trust)
    g = data["gossip"]
    console.print(
        f"gossip between the processes: {g['sent']} messages delivered, {g['accepted']} of them new and accepted after verification "
        f"(the rest duplicates of the flood), {g['refused']} refused, {g['undelivered']} undelivered; restarts {data['restarts'] or 'none'}; wall-clock compute-time ratio {data['compute_time_ratio']:.1%} (training), "
        f"{data['working_time_ratio']:.1%} (whole rounds); not bit-reproducible (asynchrony in real processes)",
        highlight=False,
    )
    console.print(f"run folder {data['run_dir']} ({data['wall_s']:.1f} s)", highlight=False)


def _reported(data: dict[str, Any], report: Path | None, as_json: bool) -> bool:
    """Write the JSON report where asked; with --json print it and say the run needs no tables."""
    if report is not None:
        atomic_write(report, json.dumps(data, indent=2) + "\n")
    if as_json:
        print_json(data)
    return as_json


def print_semi_report(data: dict[str, Any], sim: Any, rounds: int, stragglers: float, slowdown: float, trust: str) -> None:
    """The semi market's report for people: accuracy, ratio, records, epochs, payouts."""
    from fedmarket.cli.market_options import format_eth

    final, records, t = data["final"]["client_models"], data["records"], data["totals"]
    console.print(
        f"semi market: {sim.clients} clients x {rounds} rounds on {sim.dataset} ({sim.partition}, trust {trust}, "
        f"{int(round(stragglers * sim.clients))} stragglers x{slowdown:g})",
        highlight=False,
    )
    console.print(
        f"client models' accuracy {final['accuracy']:.4f} (AUC {final['auc']:.4f}); average model "
        f"{data['final']['average_model']['accuracy']:.4f}; device compute-time ratio {data['compute_time_ratio']:.1%}",
        highlight=False,
    )
    console.print(
        f"records on chain: {records['upload']} uploads, {records['download']} downloads, {records['score']} scores "
        f"(hash chain {'verified' if records['verified'] else 'BROKEN'}); gas per client round {data['gas']['per_round_mean']:,.0f} "
        f"mean, {data['gas']['per_round_max']:,} max",
        highlight=False,
    )
    for e in data["epochs"]:
        console.print(
            f"epoch {e['epoch']}: paid {format_eth(e['paid'])} of {format_eth(e['budget'])} to {e['paidAuthors']} authors, slashed {format_eth(e['slashed'])}",
            highlight=False,
        )
    for address, p in data["participants"].items():
        console.print(
            f"client {p['index']}{' (straggler)' if p['straggler'] else ''} {address}: earned {format_eth(p['earned_wei'])}, "
            f"slashed {format_eth(p['slashed_wei'])}, withdrew {format_eth(p['withdrawn_wei'])}",
            highlight=False,
        )
    console.print(
        f"buyer refunded {format_eth(data['buyer']['refunded_wei'])}; {format_eth(t['deposited_wei'])} deposited, "
        f"{'all accounted for to the wei' if t['conserved'] else 'NOT accounted for'}",
        highlight=False,
    )
