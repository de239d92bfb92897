"""What every command that talks to the market shares: its options, amounts in ETH or wei, and
the way from (--rpc, --contract / address book, --account) to a signing MarketClient.

Options read environment variables too (FEDMARKET_RPC, FEDMARKET_ACCOUNT, FEDMARKET_CONTRACT,
FEDMARKET_KEYSTORE_DIR, FEDMARKET_ADDRESS_BOOK), so a shell session can set them once.

A command declares only its own options and takes the shared ones as one `session` argument:

    @task_app.command("fund")
    @one_line_errors
    @opt.with_session()  # --account --rpc --contract --address-book --keystore-dir --password-file --json
    def fund(model_id: int = ModelIdArgument, amount: str = ..., *, session: opt.MarketSession) -> None:
        wei = opt.parse_amount(amount)  # local checks first: nothing is opened yet
        market = session.open()  # connect, find the contract, unlock --account
        ...
        session.print_result(data, "one line for people")
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import typer

from fedmarket.chain.protocol import WEI_PER_ETH
from fedmarket.cli.output import console, print_json
from fedmarket.errors import FedmarketError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

DEFAULT_RPC = "http://127.0.0.1:8545"

RpcOption = typer.Option(
    None, "--rpc", envvar="FEDMARKET_RPC", show_default=False,
    help=f"JSON-RPC URL of the chain [default: the anvil `fedmarket chain start` runs, on whatever port; else {DEFAULT_RPC}].",
)  # fmt: skip
AccountOption = typer.Option(
    ..., "--account", "-a", envvar="FEDMARKET_ACCOUNT", help="Signing account: keystore NAME, its 0x ADDRESS, or dev:N (anvil / embedded chain only)."
)
PasswordFileOption = typer.Option(
    None, "--password-file", help="File whose first line is the keystore password (else $FEDMARKET_PASSWORD, else a prompt).", dir_okay=False
)
KeystoreDirOption = typer.Option(
    None, "--keystore-dir", envvar="FEDMARKET_KEYSTORE_DIR", help="Keystore directory (default: <data dir>/keystores).", file_okay=False
)
ContractOption = typer.Option(None, "--contract", envvar="FEDMARKET_CONTRACT", help="Marketplace address (default: from the address book of the chain id).")
AddressBookOption = typer.Option(
    None,
    "--address-book",
    envvar="FEDMARKET_ADDRESS_BOOK",
    help="Directory of <chainId>.json address books (default: deploy/deployments in the repo).",
    file_okay=False,
)
JsonOption = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")


_UNITS = {"wei": 1, "gwei": 10**9, "eth": WEI_PER_ETH, "ether": WEI_PER_ETH}
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


def connect(rpc: str | None) -> Web3:
    """A Web3 on `rpc` that answered (None: the chain `fedmarket chain start` runs, else
    DEFAULT_RPC); a dead node is one clear line."""
    from fedmarket.chain.anvil import recorded_url
    from fedmarket.chain.client import connect as chain_connect

    return chain_connect(rpc or recorded_url() or DEFAULT_RPC)


def signer(w3: Web3 | None, account: str, *, keystore_dir: Path | None, password_file: Path | None) -> LocalAccount:
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
    rpc: str | None,
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


# ------------------------------------------------------------------------------ the shared options as one argument

# Every shared option: its parameter name, type and typer option, in the order --help lists them.
_SESSION_OPTIONS: dict[str, tuple[Any, Any]] = {
    "account": (str, AccountOption),
    "rpc": (Optional[str], RpcOption),
    "contract": (Optional[str], ContractOption),
    "address_book": (Optional[Path], AddressBookOption),
    "keystore_dir": (Optional[Path], KeystoreDirOption),
    "password_file": (Optional[Path], PasswordFileOption),
    "as_json": (bool, JsonOption),
}
# A command that signs market transactions, and one that only reads the market.
SIGNING = ("account", "rpc", "contract", "address_book", "keystore_dir", "password_file")
READING = ("rpc", "contract", "address_book")


@dataclass(frozen=True)
class MarketSession:
    """The shared options one command took (those it did not take keep these defaults), and the
    ways from them to a node, a signer and the market. Nothing is opened until asked."""

    account: str | None = None
    rpc: str | None = None  # None: the recorded `chain start` anvil, else DEFAULT_RPC
    contract: str | None = None
    address_book: Path | None = None
    keystore_dir: Path | None = None
    password_file: Path | None = None
    as_json: bool = False

    def connect(self) -> Web3:
        return connect(self.rpc)

    def signer(self, w3: Web3 | None, account: str | None = None) -> LocalAccount:
        """`account` (default: --account), unlocked with --keystore-dir / --password-file."""
        return signer(w3, account or self.account, keystore_dir=self.keystore_dir, password_file=self.password_file)

    def open(self) -> Market:
        """The market, signing as --account when the command took it."""
        return open_market(self.rpc, self.contract, self.address_book, account=self.account, keystore_dir=self.keystore_dir, password_file=self.password_file)

    def print_result(self, data: dict[str, Any], line: str) -> None:
        """`data` as one JSON document with --json, else `line` for people."""
        if self.as_json:
            print_json(data)
        else:
            console.print(line, highlight=False)


F = TypeVar("F", bound=Callable[..., Any])


def with_session(options: Sequence[str] = SIGNING) -> Callable[[F], F]:
    """Give a command the shared `options` (and --json) as one `session: MarketSession` argument.

    The command declares its own options and a keyword-only `session`; typer sees the command's
    own parameters followed by the shared options (the signature the wrapper shows it), so
    --help lists them all with their names, environment variables, defaults and help. A command
    that declares one of `options` itself (same parameter name) keeps it where it stands in its
    --help and receives it as an argument; the session carries its value too.
    """
    unknown = set(options) - set(_SESSION_OPTIONS)
    if unknown:
        raise ValueError(f"no shared option {', '.join(sorted(unknown))}")
    names = [name for name in _SESSION_OPTIONS if name in options or name == "as_json"]

    def decorate(command: F) -> F:
        own = [p for p in inspect.signature(command).parameters.values() if p.name != "session"]
        declared = {p.name for p in own}
        added = [name for name in names if name not in declared]

        @functools.wraps(command)
        def with_options(*args: Any, **kwargs: Any) -> Any:
            session = MarketSession(**{name: kwargs[name] if name in declared else kwargs.pop(name) for name in names})
            return command(*args, session=session, **kwargs)

        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=_SESSION_OPTIONS[name][1], annotation=_SESSION_OPTIONS[name][0]) for name in added
        ]
        with_options.__signature__ = inspect.Signature(own + shared)  # type: ignore[attr-defined]
        with_options.__annotations__ = {
            **{k: v for k, v in command.__annotations__.items() if k != "session"},
            **{name: _SESSION_OPTIONS[name][0] for name in added},
        }
        return with_options  # type: ignore[return-value]

    return decorate
