"""`--account NAME|ADDRESS|dev:N`: which key signs a command.

- NAME or ADDRESS: a keystore in the keystore directory, decrypted with the password from
  --password-file / $FEDMARKET_PASSWORD / a prompt (see password.py);
- dev:N: the N-th dev account (from 0) of a development chain: anvil's (chain id 31337) or the
  embedded eth-tester chain. Its key is public knowledge, so it is refused on any other chain id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fedmarket.chain.anvil import dev_accounts
from fedmarket.chain.protocol import ANVIL_CHAIN_ID, DEV_CHAIN_IDS, ETH_TESTER_CHAIN_ID
from fedmarket.errors import FedmarketError
from fedmarket.wallet.keystore import ADDRESS_PATTERN, NAME_PATTERN, KeystoreDir
from fedmarket.wallet.password import read_password

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

__all__ = [
    "ANVIL_CHAIN_ID",  # the three chain ids live in fedmarket.chain.protocol
    "DEV_CHAIN_IDS",
    "ETH_TESTER_CHAIN_ID",
    "AccountSpec",
    "dev_account",
    "parse_account_spec",
    "require_dev_chain",
    "resolve_account",
    "resolve_address",
]

_DEV_PATTERN = re.compile(r"^dev:(\d{1,4})$")


@dataclass(frozen=True)
class AccountSpec:
    """A parsed --account value: `dev` with an index, or `keystore` with a name or address."""

    kind: str  # "dev" | "keystore"
    value: str
    index: int = -1

    def __str__(self) -> str:
        return f"dev:{self.index}" if self.kind == "dev" else self.value


def parse_account_spec(text: str) -> AccountSpec:
    text = text.strip()
    dev = _DEV_PATTERN.match(text)
    if dev:
        return AccountSpec("dev", text, int(dev.group(1)))
    if text.startswith("dev:"):
        raise FedmarketError(f"invalid account {text!r}: dev accounts are dev:0, dev:1, ...")
    if ADDRESS_PATTERN.match(text) or NAME_PATTERN.match(text):
        return AccountSpec("keystore", text)
    raise FedmarketError(f"invalid account {text!r}: give a keystore name, a 0x address or dev:N")


def require_dev_chain(w3: Web3, what: str) -> int:
    """The chain id, if it is a development chain; else one clear refusal naming `what`."""
    chain_id = int(w3.eth.chain_id)
    if chain_id not in DEV_CHAIN_IDS:
        raise FedmarketError(
            f"{what} is refused on chain id {chain_id}: dev accounts exist only on anvil ({ANVIL_CHAIN_ID}) or the embedded chain ({ETH_TESTER_CHAIN_ID})"
        )
    return chain_id


def dev_account(w3: Web3, index: int) -> LocalAccount:
    """The `index`-th dev account of anvil or the embedded chain, as a signing account."""
    require_dev_chain(w3, f"dev:{index}")
    accounts = dev_accounts(w3)
    if not 0 <= index < len(accounts):
        raise FedmarketError(f"no dev account dev:{index}: this chain has {len(accounts)} (dev:0 .. dev:{len(accounts) - 1})")
    return accounts[index]


def resolve_account(
    spec: str | AccountSpec,
    w3: Web3 | None,
    *,
    keystore_dir: Path | None = None,
    password_file: Path | None = None,
) -> LocalAccount:
    """The signing account named by `spec`; keystores ask for their password (see password.py)."""
    parsed = spec if isinstance(spec, AccountSpec) else parse_account_spec(spec)
    if parsed.kind == "dev":
        if w3 is None:
            raise FedmarketError(f"{parsed} needs a chain to look its key up")
        return dev_account(w3, parsed.index)
    keystores = KeystoreDir(keystore_dir)
    entry = keystores.find(parsed.value)
    password = read_password(password_file, purpose=f"keystore {entry.name}")
    return keystores.load(entry.name, password)


def resolve_address(spec: str | AccountSpec, w3: Web3 | None, *, keystore_dir: Path | None = None) -> str:
    """The address `spec` names, without decrypting anything (a bare address need not be a keystore)."""
    from eth_utils import to_checksum_address

    parsed = spec if isinstance(spec, AccountSpec) else parse_account_spec(spec)
    if parsed.kind == "dev":
        if w3 is None:
            raise FedmarketError(f"{parsed} needs a chain to look its address up")
        return dev_account(w3, parsed.index).address
    if ADDRESS_PATTERN.match(parsed.value):
        return to_checksum_address(parsed.value)
    return KeystoreDir(keystore_dir).find(parsed.value).address
