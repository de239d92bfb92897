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


def test_an_elected_spec_and_its_parameters_must_agree_before_anything_is_sent(tmp_path: Path) -> None:
    """`task spec --committee elected` writes a spec with no validators; `task post` refuses it
    with validators' parameters (and a validators' spec with --max-validators 0) in one line,
    before connecting to any chain."""
    import subprocess

    from cli_helpers import FEDMARKET

    env = {"FEDMARKET_HOME": str(tmp_path / "home"), "COLUMNS": "200", "PATH": "/usr/bin:/bin"}

    def run(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run([FEDMARKET, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)

    for committee in ("elected", "validators"):
        made = run("task", "spec", "--committee", committee, "--trainers", 4, "--out", tmp_path / committee, "--json")
        assert made.returncode == 0, made.stderr
        spec = json.loads((tmp_path / committee / "spec.json").read_text())
        assert (spec.get("committee", "validators"), spec["validators"]) == ((committee, 0) if committee == "elected" else ("validators", 3))
        if committee == "elected":
            assert (spec["utility"], spec["aggregation"]) == ("cmfl_distance", "cmfl_s1")
        files = ["--spec", tmp_path / committee / "spec.json", "--initial-model", tmp_path / committee / "initial-model.safetensors"]
        wrong = "3" if committee == "elected" else "0"
        refused = run("task", "post", *files, "--aggregator", "dev:1", "--account", "dev:0", "--max-validators", wrong, "--rpc", "http://127.0.0.1:9")
        assert refused.returncode != 0
        assert refused.stderr.strip().splitlines()[-1] == (
            f"error: the spec's committee is '{committee}' but --max-validators "
            f"{'takes staked validators' if committee == 'elected' else 'is 0 (an elected committee)'}: use --max-validators 0 exactly for a spec with committee elected"
        )
    bad = run("task", "spec", "--committee", "appointed", "--out", tmp_path / "bad")
    assert bad.returncode != 0 and "--committee must be validators or elected, not 'appointed'" in bad.stderr
