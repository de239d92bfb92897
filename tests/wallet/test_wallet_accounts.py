"""Password sources in order, and the --account resolver (keystores, addresses, dev:N)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from eth_account import Account

from fedmarket.errors import FedmarketError
from fedmarket.wallet import LIGHT_SCRYPT_N, KeystoreDir, parse_account_spec, read_password, resolve_account, resolve_address

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


def test_password_file_beats_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDMARKET_PASSWORD", "from-env")
    password_file = tmp_path / "pw"
    password_file.write_text("from-file\nsecond line ignored\n")
    assert read_password(password_file, purpose="x") == "from-file"
    assert read_password(None, purpose="x") == "from-env"


def test_password_file_keeps_inner_spaces(tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text(" two words \r\n")
    assert read_password(password_file, purpose="x") == " two words "


def test_no_password_source_and_no_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FEDMARKET_PASSWORD", raising=False)
    with pytest.raises(FedmarketError, match="no password for keystore a"):
        read_password(None, purpose="keystore a")  # pytest's stdin is not a terminal
    with pytest.raises(FedmarketError, match="cannot read password file"):
        read_password(tmp_path / "missing", purpose="x")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(FedmarketError, match="is empty"):
        read_password(tmp_path / "empty", purpose="x")


def test_account_specs() -> None:
    assert parse_account_spec("dev:3").index == 3
    assert parse_account_spec("alice").kind == "keystore"
    assert parse_account_spec("0x" + "ab" * 20).kind == "keystore"
    for bad in ("dev:", "dev:x", "dev:-1", "0x12", "a b"):
        with pytest.raises(FedmarketError, match="invalid account"):
            parse_account_spec(bad)


def test_resolve_keystore_by_name_and_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    KeystoreDir(tmp_path).create("alice", KEY, "pw", scrypt_n=LIGHT_SCRYPT_N)
    monkeypatch.setenv("FEDMARKET_PASSWORD", "pw")
    address = Account.from_key(KEY).address
    assert resolve_account("alice", None, keystore_dir=tmp_path).key == KEY
    assert resolve_account(address, None, keystore_dir=tmp_path).key == KEY
    assert resolve_address("alice", None, keystore_dir=tmp_path) == address
    # a bare address resolves without any keystore (for balances and views)
    other = Account.create().address
    assert resolve_address(other.lower(), None, keystore_dir=tmp_path) == other
    monkeypatch.setenv("FEDMARKET_PASSWORD", "nope")
    with pytest.raises(FedmarketError, match="^wrong password for keystore alice$"):
        resolve_account("alice", None, keystore_dir=tmp_path)


def _fake_chain(chain_id: int) -> SimpleNamespace:
    return SimpleNamespace(eth=SimpleNamespace(chain_id=chain_id))


@pytest.mark.parametrize("chain_id", [1, 11155111, 137, 1337])
def test_dev_accounts_refused_on_other_chains(chain_id: int) -> None:
    with pytest.raises(FedmarketError, match=f"dev:0 is refused on chain id {chain_id}"):
        resolve_account("dev:0", _fake_chain(chain_id))  # type: ignore[arg-type]


def test_dev_accounts_of_the_embedded_chain() -> None:
    from fedmarket.chain.embedded import new_embedded_web3

    w3 = new_embedded_web3(num_accounts=3)
    assert resolve_account("dev:0", w3).address == w3.eth.accounts[0]
    assert resolve_address("dev:2", w3) == w3.eth.accounts[2]
    with pytest.raises(FedmarketError, match="no dev account dev:3: this chain has 3"):
        resolve_account("dev:3", w3)
