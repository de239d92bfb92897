"""`fedmarket wallet new | import | list | balance | export-address | send`: encrypted keystores.

Private keys are read from a hidden prompt or a file (never from argv) and are never printed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Optional

import typer

from fedmarket.cli import market_options as opt
from fedmarket.cli.output import console, one_line_errors, print_json

wallet_app = typer.Typer(help="Encrypted keystores: create, import, list, balances.", no_args_is_help=True)

LightKdfOption = typer.Option(False, "--light-kdf", help="scrypt n=2**12 instead of 2**18: fast and weak, for tests and throwaway keys only.")


def register(app: typer.Typer) -> None:
    app.add_typer(wallet_app, name="wallet")


def _save_key(
    verb: str, name: str, read_key: Callable[[], bytes], keystore_dir: Optional[Path], password_file: Optional[Path], light_kdf: bool, as_json: bool
) -> None:
    """Keystore NAME for the key `read_key` gives, encrypted with a new (confirmed) password."""
    from fedmarket.wallet import (
        DEFAULT_SCRYPT_N,
        LIGHT_SCRYPT_N,
        KeystoreDir,
        read_password,
    )
    from fedmarket.wallet.keystore import validate_name

    keystores = KeystoreDir(keystore_dir)
    validate_name(name)
    key = read_key()
    password = read_password(password_file, purpose=f"new keystore {name}", confirm=True)
    entry = keystores.create(name, key, password, scrypt_n=LIGHT_SCRYPT_N if light_kdf else DEFAULT_SCRYPT_N)
    if as_json:
        print_json(entry.as_json())
    else:
        console.print(f"{verb} keystore [bold]{entry.name}[/]: {entry.address}", highlight=False)
        console.print(f"  file {entry.path}", highlight=False)


@wallet_app.command("new")
@one_line_errors
def new(
    name: str = typer.Argument(..., help="Name of the new account (letters, digits, '_', '.', '-')."),
    keystore_dir: Optional[Path] = opt.KeystoreDirOption,
    password_file: Optional[Path] = opt.PasswordFileOption,
    light_kdf: bool = LightKdfOption,
    as_json: bool = opt.JsonOption,
) -> None:
    """Create a random key and store it encrypted (scrypt) as keystore NAME."""
    from eth_account import Account

    _save_key("created", name, lambda: Account.create().key, keystore_dir, password_file, light_kdf, as_json)


@wallet_app.command("import")
@one_line_errors
def import_key(
    name: str = typer.Argument(..., help="Name for the imported account."),
    key_file: Optional[Path] = typer.Option(
        None, "--key-file", help="File holding the hex private key ('-' reads stdin); without it, a hidden prompt asks.", dir_okay=False, allow_dash=True
    ),
    keystore_dir: Optional[Path] = opt.KeystoreDirOption,
    password_file: Optional[Path] = opt.PasswordFileOption,
    light_kdf: bool = LightKdfOption,
    as_json: bool = opt.JsonOption,
) -> None:
    """Import a private key (from a file or a hidden prompt, never from the command line) as keystore NAME."""
    from fedmarket.wallet import parse_private_key
    from fedmarket.wallet.password import read_secret_line

    def read_key() -> bytes:
        if key_file is not None and str(key_file) == "-" and password_file is not None and str(password_file) == "-":
            from fedmarket.errors import FedmarketError

            raise FedmarketError("the key and the password cannot both come from stdin")
        return parse_private_key(read_secret_line(key_file, what="private key"))

    _save_key("imported", name, read_key, keystore_dir, password_file, light_kdf, as_json)


@wallet_app.command("list")
@one_line_errors
def list_keystores(keystore_dir: Optional[Path] = opt.KeystoreDirOption, as_json: bool = opt.JsonOption) -> None:
    """List the keystores (name, address); needs no password."""
    from rich.table import Table

    from fedmarket.wallet import KeystoreDir

    keystores = KeystoreDir(keystore_dir)
    entries = keystores.entries()
    if as_json:
        print_json({"keystore_dir": str(keystores.path), "accounts": [e.as_json() for e in entries]})
        return
    if not entries:
        console.print(f"no keystores in {keystores.path} (create one with `fedmarket wallet new NAME`)", highlight=False)
        return
    table = Table(title=f"keystores in {keystores.path}")
    table.add_column("name")
    table.add_column("address", no_wrap=True)
    table.add_column("kdf")
    for entry in entries:
        table.add_row(entry.name, entry.address, f"{entry.kdf} n={entry.scrypt_n}" if entry.scrypt_n else entry.kdf)
    console.print(table)


@wallet_app.command("export-address")
@one_line_errors
def export_address(
    name: str = typer.Argument(..., help="Keystore name (or address)."),
    keystore_dir: Optional[Path] = opt.KeystoreDirOption,
    as_json: bool = opt.JsonOption,
) -> None:
    """Print a keystore's address (only the address: the key stays encrypted)."""
    from fedmarket.wallet import KeystoreDir

    entry = KeystoreDir(keystore_dir).find(name)
    if as_json:
        print_json({"name": entry.name, "address": entry.address})
    else:
        typer.echo(entry.address)


@wallet_app.command("balance")
@one_line_errors
@opt.with_session((*opt.READING, "keystore_dir"))
def balance(
    accounts: Optional[list[str]] = typer.Argument(None, help="Keystore names, addresses or dev:N (default: every keystore)."),
    *,
    session: opt.MarketSession,
) -> None:
    """Ether balance of accounts, and their withdrawable market credit when a marketplace is known."""
    from rich.table import Table

    from fedmarket.wallet import KeystoreDir
    from fedmarket.wallet.accounts import resolve_address

    w3 = session.connect()
    if accounts:
        rows = [(spec, resolve_address(spec, w3, keystore_dir=session.keystore_dir)) for spec in accounts]
    else:
        rows = [(e.name, e.address) for e in KeystoreDir(session.keystore_dir).entries()]
    from fedmarket.chain.client import rpc_errors

    client = _market_or_none(w3, session.contract, session.address_book)
    result = []
    with rpc_errors(w3):
        for label, address in rows:
            wei = int(w3.eth.get_balance(address))
            credit = int(client.credit(address)) if client is not None else None
            result.append({"account": label, "address": address, "balance_wei": wei, "credit_wei": credit})
    if session.as_json:
        print_json({"chain_id": int(w3.eth.chain_id), "contract": client.address if client else None, "accounts": result})
        return
    table = Table(title=f"balances on chain {int(w3.eth.chain_id)}")
    for column in ("account", "address", "balance", "market credit"):
        table.add_column(column, justify="right" if column in ("balance", "market credit") else "left", no_wrap=column == "address")
    for row in result:
        credit_text = opt.format_eth(row["credit_wei"]) if row["credit_wei"] is not None else "-"
        table.add_row(row["account"], row["address"], opt.format_eth(row["balance_wei"]), credit_text)
    console.print(table)


def _market_or_none(w3, contract: Optional[str], address_book: Optional[Path]):
    """The marketplace client if one is named or in the address book; balances work without it."""
    from fedmarket.errors import FedmarketError

    try:
        address = opt.contract_address(w3, contract, address_book)
    except FedmarketError:
        if contract:
            raise
        return None
    from fedmarket.chain.client import open_market

    return open_market(w3, address)


@wallet_app.command("send")
@one_line_errors
@opt.with_session(("account", "rpc", "keystore_dir", "password_file"))
def send(
    to: str = typer.Argument(..., help="Recipient: keystore name, 0x address or dev:N."),
    value: str = typer.Argument(..., help="Amount: '1.5' or '1.5eth' (ETH), '30gwei', '1000wei'."),
    *,
    session: opt.MarketSession,
) -> None:
    """Send ether from --account to TO (e.g. fund a new keystore from an anvil dev account)."""
    from fedmarket.chain.transactions import send_value
    from fedmarket.wallet.accounts import resolve_address

    wei = opt.parse_amount(value, "value")
    w3 = session.connect()
    recipient = resolve_address(to, w3, keystore_dir=session.keystore_dir)
    sender = session.signer(w3)
    receipt = send_value(w3, sender, recipient, wei)
    tx = "0x" + bytes(receipt["transactionHash"]).hex()
    data = {"from": sender.address, "to": recipient, "value_wei": wei, "tx": tx, "gas_used": int(receipt["gasUsed"])}
    session.print_result(data, f"sent {opt.format_eth(wei)} from {sender.address} to {recipient} (tx {tx})")
