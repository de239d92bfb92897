"""Keystores: round trip, scrypt parameters, wrong passwords, names, addresses, file modes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from eth_account import Account

from fedmarket.errors import FedmarketError
from fedmarket.wallet import DEFAULT_SCRYPT_N, LIGHT_SCRYPT_N, KeystoreDir, parse_private_key

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDRESS = Account.from_key(KEY).address


def test_round_trip(tmp_path: Path) -> None:
    keystores = KeystoreDir(tmp_path / "ks")
    entry = keystores.create("alice", KEY, "correct horse", scrypt_n=LIGHT_SCRYPT_N)
    assert entry.name == "alice" and entry.address == ADDRESS
    assert entry.path == tmp_path / "ks" / "alice.json"
    account = keystores.load("alice", "correct horse")
    assert account.key == KEY and account.address == ADDRESS
    # by address too, in any letter case
    assert keystores.load(ADDRESS.lower(), "correct horse").address == ADDRESS


def test_default_scrypt_parameters(tmp_path: Path) -> None:
    keystores = KeystoreDir(tmp_path)
    entry = keystores.create("alice", KEY, "pw")
    data = json.loads(entry.path.read_text())
    assert data["version"] == 3
    assert data["crypto"]["kdf"] == "scrypt"
    params = data["crypto"]["kdfparams"]
    assert (params["n"], params["r"], params["p"], params["dklen"]) == (DEFAULT_SCRYPT_N, 8, 1, 32) == (2**18, 8, 1, 32)
    assert len(bytes.fromhex(params["salt"])) >= 16
    assert data["crypto"]["cipher"] == "aes-128-ctr"
    assert KEY.hex() not in entry.path.read_text()
    assert entry.scrypt_n == 2**18


def test_files_are_private(tmp_path: Path) -> None:
    keystores = KeystoreDir(tmp_path / "ks")
    entry = keystores.create("alice", KEY, "pw", scrypt_n=LIGHT_SCRYPT_N)
    assert stat.S_IMODE(entry.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ks").stat().st_mode) == 0o700
    assert [p.name for p in (tmp_path / "ks").iterdir()] == ["alice.json"]  # no temporary left


def test_wrong_password_is_one_clear_error_and_changes_nothing(tmp_path: Path) -> None:
    keystores = KeystoreDir(tmp_path)
    entry = keystores.create("alice", KEY, "right", scrypt_n=LIGHT_SCRYPT_N)
    before = entry.path.read_bytes()
    with pytest.raises(FedmarketError) as info:
        keystores.load("alice", "wrong")
    assert str(info.value) == "wrong password for keystore alice"
    assert entry.path.read_bytes() == before


def test_never_overwrites_and_refuses_duplicate_addresses(tmp_path: Path) -> None:
    keystores = KeystoreDir(tmp_path)
    keystores.create("alice", KEY, "pw", scrypt_n=LIGHT_SCRYPT_N)
    before = (tmp_path / "alice.json").read_bytes()
    with pytest.raises(FedmarketError, match="already exists"):
        keystores.create("alice", Account.create().key, "pw", scrypt_n=LIGHT_SCRYPT_N)
    with pytest.raises(FedmarketError, match="already in keystore 'alice'"):
        keystores.create("bob", KEY, "pw", scrypt_n=LIGHT_SCRYPT_N)
    assert (tmp_path / "alice.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice.json"]


@pytest.mark.parametrize("name", ["", "0xabc", "-x", "a b", "a/b", "../evil", "x" * 65, "dev:1"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(FedmarketError, match="invalid account name"):
        KeystoreDir(tmp_path).create(name, KEY, "pw", scrypt_n=LIGHT_SCRYPT_N)


def test_weak_scrypt_and_empty_password_are_refused(tmp_path: Path) -> None:
    keystores = KeystoreDir(tmp_path)
    with pytest.raises(FedmarketError, match="power of two"):
        keystores.create("alice", KEY, "pw", scrypt_n=2**8)
    with pytest.raises(FedmarketError, match="power of two"):
        keystores.create("alice", KEY, "pw", scrypt_n=5000)
    with pytest.raises(FedmarketError, match="empty password"):
        keystores.create("alice", KEY, "", scrypt_n=LIGHT_SCRYPT_N)


def test_list_skips_foreign_files(tmp_path: Path) -> None:
    keystores = KeystoreDir(tmp_path)
    keystores.create("bob", KEY, "pw", scrypt_n=LIGHT_SCRYPT_N)
    keystores.create("alice", Account.create().key, "pw", scrypt_n=LIGHT_SCRYPT_N)
    (tmp_path / "notes.json").write_text("not json")
    (tmp_path / "readme.txt").write_text("hi")
    assert [e.name for e in keystores.entries()] == ["alice", "bob"]
    assert KeystoreDir(tmp_path / "missing").entries() == []


def test_unknown_account(tmp_path: Path) -> None:
    keystores = KeystoreDir(tmp_path)
    with pytest.raises(FedmarketError, match="no keystore named 'carol'"):
        keystores.find("carol")
    with pytest.raises(FedmarketError, match="no keystore for address"):
        keystores.find("0x" + "11" * 20)


@pytest.mark.parametrize("text", [KEY.hex(), "0x" + KEY.hex(), "  0x" + KEY.hex().upper() + "\n"])
def test_parse_private_key(text: str) -> None:
    assert parse_private_key(text) == KEY


@pytest.mark.parametrize("text", ["", "0x1234", KEY.hex() + "00", "zz" * 32, "00" * 32, "ff" * 32])
def test_bad_private_keys_are_refused_without_echo(text: str) -> None:
    with pytest.raises(FedmarketError) as info:
        parse_private_key(text)
    assert "not a private key" in str(info.value)
    if text:
        assert text.strip() not in str(info.value)
