"""What every command that talks to the market shares: its options, amounts in ETH or wei, and
the way from (--rpc, --contract / address book, --account) to a signing MarketClient.

Options read environment variables too (FEDMARKET_RPC, FEDMARKET_ACCOUNT, FEDMARKET_CONTRACT,
FEDMARKET_KEYSTORE_DIR, FEDMARKET_ADDRESS_BOOK), so a shell session can set them once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from fedmarket.errors import FedmarketError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

DEFAULT_RPC = "http://127.0.0.1:8545"

RpcOption = typer.Option(DEFAULT_RPC, "--rpc", envvar="FEDMARKET_RPC", help="JSON-RPC URL of the chain.")
AccountOption = typer.Option(
    ..., "--account", "-a", envvar="FEDMARKET_ACCOUNT", help="Signing account: keystore NAME, its 0x ADDRESS, or dev:N (anvil / embedded chain only)."
)
PasswordFileOption = typer.Option(
    None, "--password-file", help="File whose first line is the keystore password (else $FEDMARKET_PASSWORD, else a prompt).", dir_okay=False
)
KeystoreDirOption = typer.Option(None, "--keystore-dir", envvar="FEDMARKET_KEYSTORE_DIR", help="Keystore directory (default: <data dir>/keystores).", file_okay=False)
ContractOption = typer.Option(
    None, "--contract", envvar="FEDMARKET_CONTRACT", help="Marketplace address (default: from the address book of the chain id)."
)
AddressBookOption = typer.Option(None, "--address-book", envvar="FEDMARKET_ADDRESS_BOOK", help="Directory of <chainId>.json address books (default: deploy/deployments in the repo).", file_okay=False)
JsonOption = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")

ETH = 10**18
_UNITS = {"wei": 1, "gwei": 10**9, "eth": ETH, "ether": ETH}
_AMOUNT = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")


def parse_amount(text: str, what: str = "amount") -> int:
    """Wei from "1.5", "1.5eth", "2 ether", "30gwei", "1000wei" (a bare number is ETH)."""
    match = _AMOUNT.match(str(text))
    if not match:
        raise FedmarketError(f"invalid {what} {text!r}: give a number with an optional unit (eth, gwei, wei)")
    number, unit = match.group(1), (match.group(2).lower() or "eth")
    if unit not in _UNITS:
        raise FedmarketError(f"invalid {what} {text!r}: unknown unit {unit!r} (eth, gwei, wei)")
    try:
        wei = Decimal(number) * _UNITS[unit]
    except InvalidOperation:
        raise FedmarketError(f"invalid {what} {text!r}") from None
    if wei != wei.to_integral_value():
        raise FedmarketError(f"invalid {what} {text!r}: not a whole number of wei")
    return int(wei)


def format_eth(wei: int) -> str:
    """Wei for people: "1.5 ETH", "250 wei" (the chain client's format)."""
    from fedmarket.chain.client import format_eth as chain_format_eth

    return chain_format_eth(int(wei))


def connect(rpc: str) -> Web3:
    """A Web3 on `rpc` that answered; a dead node is one clear line."""
    from fedmarket.chain.client import connect as chain_connect

    return chain_connect(rpc)


def signer(
    w3: Web3 | None, account: str, *, keystore_dir: Path | None, password_file: Path | None
) -> LocalAccount:
    from fedmarket.wallet import resolve_account

    return resolve_account(account, w3, keystore_dir=keystore_dir, password_file=password_file)


def contract_address(w3: Web3, contract: str | None, address_book: Path | None) -> str:
    """--contract, or the Marketplace recorded in the address book of this chain id."""
    from eth_utils import is_address, to_checksum_address

    if contract:
        if not is_address(contract):
            raise FedmarketError(f"invalid contract address {contract!r}")
        return to_checksum_address(contract)
    from fedmarket.chain.client import MarketNotDeployed, rpc_errors
    from fedmarket.chain.deploy import deployed_address

    with rpc_errors(w3):
        chain_id = int(w3.eth.chain_id)
    try:
        return deployed_address(chain_id, directory=address_book)
    except FedmarketError as exc:
        raise MarketNotDeployed(str(exc)) from None


@dataclass
class Market:
    """A connected, optionally signing, view of the marketplace."""

    w3: Web3
    client: Any  # fedmarket.chain.client.MarketClient
    address: str
    account: LocalAccount | None

    @property
    def sender(self) -> str:
        if self.account is None:
            raise FedmarketError("this command needs --account")
        return self.account.address


def open_market(
    rpc: str,
    contract: str | None,
    address_book: Path | None,
    *,
    account: str | None = None,
    keystore_dir: Path | None = None,
    password_file: Path | None = None,
) -> Market:
    """Connect, find the contract, unlock the account (if any): everything before a transaction."""
    from fedmarket.chain.client import MarketClient
    from fedmarket.chain.client import open_market as open_client

    w3 = connect(rpc)
    address = contract_address(w3, contract, address_book)
    client: MarketClient = open_client(w3, address)
    local = signer(w3, account, keystore_dir=keystore_dir, password_file=password_file) if account else None
    if local is not None:
        client = client.with_account(local)
    return Market(w3, client, address, local)


def require_funds(w3: Web3, address: str, value: int, max_gas_cost: int, what: str) -> None:
    """Refuse before signing when `address` cannot pay `value` plus the most gas it may cost."""
    balance = int(w3.eth.get_balance(address))
    if balance < value + max_gas_cost:
        raise FedmarketError(
            f"insufficient funds for {what}: {address} holds {format_eth(balance)}, needs {format_eth(value)} + up to {format_eth(max_gas_cost)} gas"
        )
