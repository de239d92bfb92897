"""`fedmarket withdraw`: pull the account's whole credited balance out of the marketplace."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fedmarket.cli import market_options as opt
from fedmarket.cli.output import console, one_line_errors, print_json


def register(app: typer.Typer) -> None:
    app.command("withdraw")(withdraw)


@one_line_errors
def withdraw(
    account: str = opt.AccountOption,
    rpc: str = opt.RpcOption,
    contract: Optional[str] = opt.ContractOption,
    address_book: Optional[Path] = opt.AddressBookOption,
    keystore_dir: Optional[Path] = opt.KeystoreDirOption,
    password_file: Optional[Path] = opt.PasswordFileOption,
    as_json: bool = opt.JsonOption,
) -> None:
    """Withdraw everything the marketplace credited to --account (earnings, stakes, refunds, licence fees)."""
    from fedmarket.roles import buyer

    market = opt.open_market(rpc, contract, address_book, account=account, keystore_dir=keystore_dir, password_file=password_file)
    amount, result = buyer.withdraw(market.client)
    if as_json:
        print_json({"account": market.sender, "amount_wei": amount, "tx": result.tx_hash, "gas_used": result.gas_used, "block": result.block_number})
    else:
        console.print(f"withdrew {opt.format_eth(amount)} to {market.sender} (tx {result.tx_hash})", highlight=False)
