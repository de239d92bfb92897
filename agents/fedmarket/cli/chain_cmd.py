"""`fedmarket chain start|stop|status`: a local anvil dev chain on 127.0.0.1, run in the background."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from fedmarket.cli.output import console, one_line_errors, print_json


def register(app: typer.Typer) -> None:
    chain_app = typer.Typer(help="A local dev chain (anvil from node_modules) on 127.0.0.1.", no_args_is_help=True)

    @chain_app.command("start")
    @one_line_errors
    def start(
        port: int = typer.Option(8545, "--port", min=1, max=65535, help="TCP port on 127.0.0.1."),
        accounts: int = typer.Option(10, "--accounts", min=1, max=1000, help="Funded dev accounts."),
        balance: int = typer.Option(10_000, "--balance", min=0, help="Ether per dev account."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Start anvil in the background with throwaway state; its pid is kept in the data dir."""
        from fedmarket.chain.anvil import start_daemon

        info = start_daemon(port=port, accounts=accounts, balance_eth=balance)
        if json_out:
            print_json({"running": True, "pid": info.pid, "url": info.url, "chain_id": info.chain_id, "accounts": info.accounts, "log": info.log})
            return
        console.print(f"anvil started: {info.url} (chain id {info.chain_id}, pid {info.pid}, {info.accounts} dev accounts of {balance} ETH)")
        console.print("stop it with `fedmarket chain stop`", style="dim")

    @chain_app.command("stop")
    @one_line_errors
    def stop(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Stop the anvil that `fedmarket chain start` started (by its pid) and delete its state."""
        from fedmarket.chain.anvil import stop_daemon

        info = stop_daemon()
        if json_out:
            print_json({"stopped": info is not None, "pid": info.pid if info else None})
            return
        if info is None:
            console.print("no anvil was running")
        else:
            console.print(f"anvil stopped (pid {info.pid}, {info.url})")

    @chain_app.command("status")
    @one_line_errors
    def status(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Is the background anvil running: pid, URL, chain id, latest block."""
        from fedmarket.chain.anvil import daemon_status

        state = daemon_status()
        if json_out:
            keys = ("running", "pid", "url", "chain_id", "block", "accounts", "answering", "started_at", "log", "stale_pid")
            print_json({k: state[k] for k in keys if k in state})
            return
        if not state["running"]:
            console.print("no anvil running" + (f" (removed the stale pid file of {state['stale_pid']})" if "stale_pid" in state else ""))
            return
        started = datetime.fromtimestamp(state["started_at"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if not state.get("answering"):
            console.print(f"anvil pid {state['pid']} runs but does not answer at {state['url']}")
            return
        console.print(f"anvil running: pid {state['pid']}, {state['url']}, chain id {state['chain_id']}, block {state['block']}, since {started}")

    app.add_typer(chain_app, name="chain")
