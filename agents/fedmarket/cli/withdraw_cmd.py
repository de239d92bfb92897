"""`fedmarket withdraw`: pull the account's whole credited balance out of the marketplace."""

from __future__ import annotations

import typer

from fedmarket.cli import market_options as opt
from fedmarket.cli.output import one_line_errors


def register(app: typer.Typer) -> None:
    app.command("withdraw")(withdraw)


@one_line_errors
@opt.with_session()
def withdraw(*, session: opt.MarketSession) -> None:
    """Withdraw everything the marketplace credited to --account (earnings, stakes, refunds, licence fees)."""
    from fedmarket.roles import buyer

    market = session.open()
    amount, result = buyer.withdraw(market.client)
    data = {"account": market.sender, "amount_wei": amount, "tx": result.tx_hash, "gas_used": result.gas_used, "block": result.block_number}
    session.print_result(data, f"withdrew {opt.format_eth(amount)} to {market.sender} (tx {result.tx_hash})")
