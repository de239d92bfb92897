"""Keys: encrypted JSON keystores, passwords, and the `--account` resolver every command uses.

    keystore  `KeystoreDir`: named Web3 Secret Storage (v3) files, scrypt-encrypted with eth-account
    password  where a password comes from: --password-file, $FEDMARKET_PASSWORD, a hidden prompt
    accounts  `resolve_account("alice" | "0xAbC..." | "dev:3", ...)` -> a signing LocalAccount

A private key never leaves this package as text: nothing here prints, logs or puts it in an
error message.
"""

from fedmarket.wallet.accounts import AccountSpec, dev_account, parse_account_spec, require_dev_chain, resolve_account, resolve_address
from fedmarket.wallet.keystore import DEFAULT_SCRYPT_N, LIGHT_SCRYPT_N, KeystoreDir, KeystoreEntry, parse_private_key
from fedmarket.wallet.password import PASSWORD_ENV, read_password

__all__ = [
    "DEFAULT_SCRYPT_N",
    "LIGHT_SCRYPT_N",
    "PASSWORD_ENV",
    "AccountSpec",
    "KeystoreDir",
    "KeystoreEntry",
    "dev_account",
    "parse_account_spec",
    "parse_private_key",
    "read_password",
    "require_dev_chain",
    "resolve_account",
    "resolve_address",
]
