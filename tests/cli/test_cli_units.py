"""The CLI's local pieces, in process: amounts, scores, the salt book, the buyer's settlement reading."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cli_helpers import CID_A, CID_B

from fedmarket.chain.client import commitment
from fedmarket.cli.market_options import parse_amount
from fedmarket.cli.round_cmd import parse_scores
from fedmarket.errors import FedmarketError
from fedmarket.roles.salts import SaltBook
from fedmarket.storage.cid import cid_to_digest

TRAINER = "0x" + "ab" * 20
CONTRACT = "0x" + "cd" * 20


@pytest.mark.parametrize(
    ("text", "wei"),
    [
        ("1", 10**18),
        ("1.5", 15 * 10**17),
        ("1.5eth", 15 * 10**17),
        ("2 ether", 2 * 10**18),
        ("30gwei", 30 * 10**9),
        ("1000wei", 1000),
        (".5", 5 * 10**17),
        ("0", 0),
        ("0.000000000000000001", 1),
    ],
)
def test_amounts(text: str, wei: int) -> None:
    assert parse_amount(text) == wei


@pytest.mark.parametrize("text", ["", "-1", "1.5wei", "1e18", "abc", "1 btc", "0.0000000000000000001"])
def test_bad_amounts(text: str) -> None:
    with pytest.raises(FedmarketError, match="invalid reward"):
        parse_amount(text, "reward")


def test_scores() -> None:
    assert parse_scores("1, 2,-3") == [1, 2, -3]
    assert parse_scores("") == []
    with pytest.raises(FedmarketError, match="invalid --scores"):
        parse_scores("1,,2")
    with pytest.raises(FedmarketError, match="int64"):
        parse_scores(str(2**63))


def test_salt_book_keeps_the_salt_for_the_reveal(tmp_path: Path) -> None:
    book = SaltBook(tmp_path)
    stored = book.prepare(31337, CONTRACT, 7, 2, TRAINER, CID_A, 128)
    expected = commitment(7, 2, cid_to_digest(CID_A), 128, stored.salt_bytes, TRAINER)
    assert stored.commitment_bytes == expected
    path = book.path(31337, CONTRACT, 7, 2, TRAINER)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # a new process (a new SaltBook) reads back exactly what the commit used
    assert SaltBook(tmp_path).load(31337, CONTRACT, 7, 2, TRAINER) == stored
    # the same update again reuses the salt: a retried commit is the same commitment
    assert book.prepare(31337, CONTRACT, 7, 2, TRAINER, CID_A, 128) == stored


def test_salt_book_never_deletes_a_salt(tmp_path: Path) -> None:
    book = SaltBook(tmp_path)
    first = book.prepare(1, CONTRACT, 1, 1, TRAINER, CID_A, 10)
    second = book.prepare(1, CONTRACT, 1, 1, TRAINER, CID_B, 10)
    assert second.salt != first.salt and book.load(1, CONTRACT, 1, 1, TRAINER) == second
    kept = [json.loads(p.read_text()) for p in book.path(1, CONTRACT, 1, 1, TRAINER).parent.glob("*.replaced-*.json")]
    assert [k["salt"] for k in kept] == [first.salt]
    # other rounds, tasks, trainers and chains are separate
    other = book.prepare(1, CONTRACT, 1, 2, TRAINER, CID_A, 10)
    assert other.salt != second.salt
    with pytest.raises(FedmarketError, match="no stored commit"):
        book.load(2, CONTRACT, 1, 1, TRAINER)


def test_salt_book_refuses_a_malformed_cid(tmp_path: Path) -> None:
    with pytest.raises(FedmarketError, match="malformed CID"):
        SaltBook(tmp_path).prepare(1, CONTRACT, 1, 1, TRAINER, "QmNope", 10)
    assert not any(tmp_path.rglob("*.json"))
