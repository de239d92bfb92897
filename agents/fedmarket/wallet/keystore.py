"""Named, encrypted key files: one Web3 Secret Storage (v3) JSON per account.

A keystore directory holds `<name>.json` files written by eth-account's `Account.encrypt` with the
scrypt KDF; the file name is the account's name, and the file's own `address` field (which the v3
format keeps in clear) lets the directory be listed and searched without a password. Files are
created once (never overwritten), mode 0600 in a 0700 directory, and written through a temporary
file so a crash leaves either the whole keystore or none.

scrypt work factor: n = 2**18, r = 8, p = 1 by default (eth-account's and geth's standard, ~0.7 s
here); `LIGHT_SCRYPT_N` (2**12, geth's --lightkdf) is for tests and throwaway dev keys only.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmarket.errors import FedmarketError
from fedmarket.paths import data_dir

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

DEFAULT_SCRYPT_N = 2**18
LIGHT_SCRYPT_N = 2**12
MIN_SCRYPT_N = 2**10

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
ADDRESS_PATTERN = re.compile(r"^0x[0-9a-fA-F]{40}$")
_PRIVATE_KEY_PATTERN = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
# secp256k1 group order: a private key is an integer in 1 .. n - 1.
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def default_keystore_dir() -> Path:
    return data_dir() / "keystores"


def validate_name(name: str) -> str:
    """An account name: a letter, then up to 63 letters, digits, '_', '.', '-'."""
    if not NAME_PATTERN.match(name) or name.lower().startswith("0x"):
        raise FedmarketError(f"invalid account name {name!r}: use a letter then letters, digits, '_', '.', '-' (at most 64)")
    return name


def parse_private_key(text: str) -> bytes:
    """32 key bytes from hex text (with or without 0x, surrounding whitespace ignored).

    The error never repeats the text: it may be a key with one typo.
    """
    stripped = text.strip()
    if not _PRIVATE_KEY_PATTERN.match(stripped):
        raise FedmarketError("not a private key: expected 64 hex digits (optionally 0x-prefixed)")
    key = bytes.fromhex(stripped[2:] if stripped[:2].lower() == "0x" else stripped)
    if not 0 < int.from_bytes(key, "big") < _SECP256K1_N:
        raise FedmarketError("not a private key: out of the secp256k1 range")
    return key


@dataclass(frozen=True)
class KeystoreEntry:
    """A keystore file as seen without its password."""

    name: str
    address: str  # checksummed
    path: Path
    kdf: str
    scrypt_n: int | None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "path": str(self.path), "kdf": self.kdf, "scrypt_n": self.scrypt_n}


def _read_entry(path: Path) -> KeystoreEntry | None:
    from eth_utils import to_checksum_address

    try:
        data = json.loads(path.read_text())
        address = to_checksum_address("0x" + str(data["address"]).removeprefix("0x"))
        crypto = data.get("crypto") or data.get("Crypto") or {}
        kdf = str(crypto.get("kdf", "?"))
        n = crypto.get("kdfparams", {}).get("n") if kdf == "scrypt" else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return KeystoreEntry(path.stem, address, path, kdf, n)


class KeystoreDir:
    """The keystore files of one directory (default: <data dir>/keystores)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_keystore_dir()

    # ------------------------------------------------------------------ reading

    def entries(self) -> list[KeystoreEntry]:
        """Every readable keystore, by name; files that are not keystores are skipped."""
        if not self.path.is_dir():
            return []
        found = (_read_entry(p) for p in sorted(self.path.glob("*.json")))
        return [entry for entry in found if entry is not None and NAME_PATTERN.match(entry.name)]

    def find(self, name_or_address: str) -> KeystoreEntry:
        """The keystore called `name_or_address`, or holding that address (any letter case)."""
        entries = self.entries()
        if ADDRESS_PATTERN.match(name_or_address):
            for entry in entries:
                if entry.address.lower() == name_or_address.lower():
                    return entry
            raise FedmarketError(f"no keystore for address {name_or_address} in {self.path}")
        for entry in entries:
            if entry.name == name_or_address:
                return entry
        raise FedmarketError(f"no keystore named {name_or_address!r} in {self.path} (see `fedmarket wallet list`)")

    def load(self, name_or_address: str, password: str) -> LocalAccount:
        """Decrypt a keystore into a signing account; a wrong password is one clear error."""
        from eth_account import Account

        entry = self.find(name_or_address)
        try:
            data = json.loads(entry.path.read_text())
        except (OSError, ValueError) as exc:
            raise FedmarketError(f"cannot read keystore {entry.name}: {exc.__class__.__name__}") from None
        try:
            key = Account.decrypt(data, password)
        except ValueError as exc:
            if "MAC mismatch" in str(exc):
                raise FedmarketError(f"wrong password for keystore {entry.name}") from None
            raise FedmarketError(f"keystore {entry.name} is not a valid v3 keystore") from None
        account = Account.from_key(key)
        if account.address != entry.address:
            raise FedmarketError(f"keystore {entry.name} is corrupt: its key does not match its address")
        return account

    # ------------------------------------------------------------------ writing

    def create(self, name: str, private_key: bytes, password: str, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> KeystoreEntry:
        """Encrypt `private_key` under `password` into `<name>.json`; never overwrites anything."""
        from eth_account import Account

        validate_name(name)
        if scrypt_n < MIN_SCRYPT_N or scrypt_n & (scrypt_n - 1):
            raise FedmarketError(f"scrypt n must be a power of two >= {MIN_SCRYPT_N}")
        if not password:
            raise FedmarketError("refusing an empty password")
        address = Account.from_key(private_key).address
        target = self.path / f"{name}.json"
        if target.exists():
            raise FedmarketError(f"a keystore named {name!r} already exists in {self.path}")
        for entry in self.entries():
            if entry.address == address:
                raise FedmarketError(f"address {address} is already in keystore {entry.name!r}")
        keystore = Account.encrypt(private_key, password, kdf="scrypt", iterations=scrypt_n)
        self._write_new(target, json.dumps(keystore))
        entry = _read_entry(target)
        assert entry is not None
        return entry

    def _write_new(self, target: Path, text: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".tmp-", suffix=".json")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            # os.link fails if the target appeared meanwhile: a keystore is never overwritten.
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise FedmarketError(f"a keystore named {target.stem!r} already exists in {self.path}") from None
        finally:
            Path(tmp).unlink(missing_ok=True)
