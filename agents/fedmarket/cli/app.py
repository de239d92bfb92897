"""The `fedmarket` root command: every command group registers itself from its own module.

Command modules import heavy libraries (torch, web3) inside their command functions, so
`fedmarket --help` stays fast.
"""

from __future__ import annotations

import importlib

import typer

from fedmarket import __version__

# One module per command group; each defines `register(app: typer.Typer) -> None`.
COMMAND_MODULES = (
    "demo_cmd",  # fedmarket demo
    "sim_cmd",  # fedmarket sim
    "chain_cmd",  # fedmarket chain start|stop|status
    "deploy_cmd",  # fedmarket deploy
    "wallet_cmd",  # fedmarket wallet ...
    "task_cmd",  # fedmarket task ... (buyer) and licence / join (participants)
    "round_cmd",  # fedmarket round commit|reveal|score|publish|confirm|close|show (by hand)
    "withdraw_cmd",  # fedmarket withdraw
    "store_cmd",  # fedmarket store add|get|cid
    "agent_cmd",  # fedmarket agent trainer|validator|aggregator
    "model_cmd",  # fedmarket model download
    "up_cmd",  # fedmarket up
    "bench_cmd",  # fedmarket bench ...
    "report_cmd",  # fedmarket report
)

app = typer.Typer(
    name="fedmarket",
    help="A federated-learning marketplace on Ethereum.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fedmarket {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """fedmarket: buyers escrow rewards, trainers train, validators score, the contract pays."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"fedmarket.cli.{_name}").register(app)


def main() -> None:
    app()


if __name__ == "__main__":  # `python -m fedmarket.cli.app`, as `fedmarket up` launches its agents
    main()
