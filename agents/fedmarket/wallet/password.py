"""Where a keystore password comes from, in this order: --password-file, $FEDMARKET_PASSWORD,
then a hidden prompt on the terminal. Never from argv (it would show in `ps` and shell history).

A password file holds the password on its first line (geth's convention); the line break is not
part of it, other whitespace is.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fedmarket.errors import FedmarketError

PASSWORD_ENV = "FEDMARKET_PASSWORD"


def read_password(password_file: Path | None, *, purpose: str, confirm: bool = False) -> str:
    """The password for `purpose` (e.g. "keystore alice"), asked for only when nothing else gives it.

    `confirm` asks twice on the prompt (for a new keystore).
    """
    if password_file is not None:
        return _from_file(password_file)
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    return _prompt(purpose, confirm)


def _from_file(path: Path) -> str:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as exc:
        raise FedmarketError(f"cannot read password file {path}: {exc.strerror or exc.__class__.__name__}") from None
    lines = text.splitlines()
    password = lines[0] if lines else ""
    if not password:
        raise FedmarketError(f"password file {path} is empty")
    return password


def _prompt(purpose: str, confirm: bool) -> str:
    if not sys.stdin.isatty():
        raise FedmarketError(f"no password for {purpose}: pass --password-file FILE or set {PASSWORD_ENV} (no terminal to ask on)")
    import typer

    password = typer.prompt(f"Password for {purpose}", hide_input=True, confirmation_prompt=confirm, err=True)
    if not password:
        raise FedmarketError("empty password")
    return str(password)


def read_secret_line(source: Path | None, *, what: str) -> str:
    """A secret (a private key) from a file ("-" = stdin) or, with none, a hidden prompt."""
    if source is not None:
        try:
            return sys.stdin.read() if str(source) == "-" else source.read_text()
        except OSError as exc:
            raise FedmarketError(f"cannot read {what} file {source}: {exc.strerror or exc.__class__.__name__}") from None
    if not sys.stdin.isatty():
        raise FedmarketError(f"no {what}: pass --key-file FILE (or - for stdin); there is no terminal to ask on")
    import typer

    return str(typer.prompt(what.capitalize(), hide_input=True, err=True))
