"""`fedmarket bench`: every benchmark, each in its own module under fedmarket.bench.

Results go to bench/results/<name>.json and a markdown table beside it; claims of speed live
there, never in timed tests.
"""

from __future__ import annotations

import importlib

import typer

# Each module defines `register(bench_app: typer.Typer) -> None`, adding one command.
BENCH_MODULES = (
    "gas",  # gas per function and per trainer per round
    "train",  # batched vs one-at-a-time client training
    "accuracy",  # FedAvg vs centralised training, seed protocol
    "fairness",  # payment shares of honest vs malicious trainers
    "cid",  # CID computation and store throughput
    "overhead",  # (chain + storage) / round wall time of a whole market, embedded chain and anvil
)


def register(app: typer.Typer) -> None:
    bench_app = typer.Typer(help="Benchmarks; results in bench/results/.", no_args_is_help=True)
    for name in BENCH_MODULES:
        importlib.import_module(f"fedmarket.bench.{name}").register(bench_app)
    app.add_typer(bench_app, name="bench")
