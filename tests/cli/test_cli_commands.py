"""Every market command through `fedmarket` subprocesses against anvil: what it does, and how it
refuses (one line on stderr, non-zero exit, and nothing changed on chain or on disk)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import AGGREGATOR, BUYER, CID_A, CID_B, CID_C, REWARD, TRAINER_STAKE, TRAINERS, WINDOW, Cli, read_json
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from fedmarket.chain.anvil import AnvilProcess, free_port
from fedmarket.chain.client import MarketClient, Phase, Status
from fedmarket.storage.cid import cid_of_file

pytestmark = pytest.mark.anvil

ETH = 10**18


def snapshot(w3: Web3, address: str) -> tuple[int, int]:
    """(balance, nonce): both unchanged means no transaction was sent, not even a reverted one."""
    return int(w3.eth.get_balance(address)), int(w3.eth.get_transaction_count(address))


# ------------------------------------------------------------------------------ deploy


def test_deploy_writes_the_address_book(deployed: dict, address_book: Path, w3: Web3) -> None:
    assert deployed["chain_id"] == 31337
    book = read_json(address_book / "31337.json")
    assert book["contracts"]["Marketplace"]["address"] == deployed["address"]
    assert Path(deployed["address_book"]) == address_book / "31337.json"
    assert len(w3.eth.get_code(deployed["address"])) > 0


def test_dev_accounts_are_refused_on_other_chains(tmp_path: Path) -> None:
    with AnvilProcess(accounts=1, chain_id=1337) as other:
        cli = Cli(tmp_path, other.url, tmp_path / "book")
        cli.fails("deploy", fragment="dev:0 is refused on chain id 1337")
        cli.fails("wallet", "balance", "dev:0", fragment="dev:0 is refused on chain id 1337")
        assert not (tmp_path / "book").exists()


# ------------------------------------------------------------------------------ buyer


def test_post_show_list_fund(cli: Cli, market: MarketClient, accounts: list[LocalAccount], tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"model": "cnn", "dataset": "digits"}))
    posted = cli.ok(
        "task", "post", "--account", "dev:0", "--aggregator", "dev:1", "--reward", "0.5", "--spec", spec, "--initial-model-cid", CID_B,
        "--rounds", 2, "--min-trainers", 3, "--committee", 3, "--window", 120, "--score-window", 90,
        "--license-fee", "1000wei", "--trainer-stake", "2gwei", "--poison-threshold", -5000,
    )  # fmt: skip
    model_id = posted["model_id"]
    assert posted["spec_cid"] == cid_of_file(spec)
    assert (cli.home / "blobs").exists()  # --spec was stored in the embedded store of the data dir
    params, state = market.get_model(model_id)
    assert (state.owner, state.status, state.escrow) == (accounts[BUYER].address, Status.OPEN, ETH // 2)
    assert (params.aggregator, params.rounds, params.score_window, params.commit_window) == (accounts[AGGREGATOR].address, 2, 90, 120)
    assert (params.license_fee, params.trainer_stake, params.poison_threshold) == (1000, 2 * 10**9, -5000)
    assert params.initial_model_cid == CID_B and params.spec_cid == posted["spec_cid"]

    funded = cli.ok("task", "fund", model_id, "--amount", "0.25eth", "--account", "dev:0")
    assert funded["escrow_wei"] == 3 * ETH // 4 == market.get_model(model_id).state.escrow

    shown = cli.ok("task", "show", model_id)
    assert shown["status"] == "open" and shown["state"]["escrow_wei"] == 3 * ETH // 4
    assert shown["params"]["windows_s"] == {"commit": 120, "reveal": 120, "score": 90, "publish": 120, "confirm": 120}
    listed = cli.ok("task", "list", "--owner", "dev:0", "--status", "open")
    assert model_id in [t["model_id"] for t in listed["tasks"]]
    assert all(t["owner"] == accounts[BUYER].address and t["status"] == "open" for t in listed["tasks"])


def test_malformed_cid_sends_nothing(cli: Cli, market: MarketClient, w3: Web3, accounts: list[LocalAccount], post_task: Callable[..., int]) -> None:
    count, before = market.model_count(), snapshot(w3, accounts[BUYER].address)
    cli.fails("task", "post", "-a", "dev:0", "--aggregator", "dev:1", "--spec-cid", "QmNotAValidCid", "--initial-model-cid", CID_B, fragment="malformed CID")
    cli.fails("task", "post", "-a", "dev:0", "--aggregator", "dev:1", "--spec-cid", CID_A, "--initial-model-cid", CID_A[:-1] + "0", fragment="malformed CID")
    assert market.model_count() == count and snapshot(w3, accounts[BUYER].address) == before
    model_id = post_task(started=True)
    trainer = accounts[TRAINERS[0]].address
    cli.fails("round", "commit", model_id, "-a", f"dev:{TRAINERS[0]}", "--update-cid", "bafybeigdyrzt", "--samples", 5, fragment="malformed CID")
    assert not market.has_committed(model_id, 1, trainer)
    assert not (cli.home / "salts").exists()


def test_unknown_task(cli: Cli, market: MarketClient) -> None:
    missing = market.model_count() + 50
    cli.fails("task", "show", missing, fragment=f"unknown task {missing}")
    cli.fails("task", "fund", missing, "--amount", "1wei", "-a", "dev:0", fragment=f"unknown task {missing}")


def test_not_owner_sends_nothing(cli: Cli, market: MarketClient, w3: Web3, accounts: list[LocalAccount], post_task: Callable[..., int]) -> None:
    model_id = post_task()
    outsider = accounts[9].address
    before = snapshot(w3, outsider)
    line = cli.fails("task", "fund", model_id, "--amount", "0.1", "-a", "dev:9", fragment=f"is not the owner of task {model_id}")
    assert outsider in line
    cli.fails("task", "cancel", model_id, "-a", "dev:9", fragment="only the owner may call cancelModel")
    assert snapshot(w3, outsider) == before
    state = market.get_model(model_id).state
    assert (state.escrow, state.status) == (REWARD, Status.OPEN)


def test_wrong_phase_and_wrong_status(cli: Cli, market: MarketClient, w3: Web3, accounts: list[LocalAccount], post_task: Callable[..., int]) -> None:
    model_id = post_task(started=True)
    member = market.get_round(model_id, 1).committee[0]
    index = [a.address for a in accounts].index(member)
    before = snapshot(w3, member)
    cli.fails(
        "round",
        "score-commit",
        model_id,
        "--scores",
        "",
        "-a",
        f"dev:{index}",
        fragment=f"task {model_id} round 1 is in its Commit phase; commitScores needs ScoreCommit",
    )
    cli.fails("round", "close", model_id, "-a", f"dev:{index}", fragment=f"task {model_id} round 1 is not due")
    cli.fails("task", "fund", model_id, "--amount", "1gwei", "-a", "dev:0", fragment=f"task {model_id} is Training; payForModel needs it Open")
    assert snapshot(w3, member) == before
    view = market.get_round(model_id, 1)
    assert (view.phase, view.scores_submitted, view.closed) == (Phase.COMMIT, 0, False)
    open_task = post_task()
    cli.fails("task", "finalize", open_task, "-a", "dev:0", fragment=f"task {open_task} is Open; finalizeContract needs it Training")
    cli.fails("round", "show", open_task, fragment=f"task {open_task} is open: no round is running")
    assert market.get_model(open_task).state.status == Status.OPEN


def test_connection_refused_and_no_deployment(cli: Cli, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    cli.fails("task", "list", "--rpc", dead, fragment=f"cannot reach the Ethereum node at {dead}: connection refused")
    cli.fails("withdraw", "-a", "dev:0", "--rpc", dead, fragment="connection refused")
    empty = tmp_path / "empty-book"
    empty.mkdir()
    cli.fails("task", "list", "--address-book", empty, fragment="nothing deployed on chain 31337")
    cli.fails("task", "list", "--contract", "0x" + "22" * 20, fragment="no contract at")


# ------------------------------------------------------------------------------ keystores on chain


@pytest.fixture
def keystore(cli: Cli, w3: Web3, accounts: list[LocalAccount], tmp_path: Path) -> tuple[LocalAccount, Path]:
    """A keystore `rich` imported through the CLI, funded with 1 ETH by `wallet send` from dev:11."""
    account = Account.create()
    key_file, password_file = tmp_path / "key", tmp_path / "password"
    key_file.write_text(account.key.hex())
    password_file.write_text("correct horse\n")
    cli.ok("wallet", "import", "rich", "--key-file", key_file, "--password-file", password_file, "--light-kdf")
    sent = cli.ok("wallet", "send", "rich", "1eth", "--account", "dev:11")
    assert sent["to"] == account.address and w3.eth.get_balance(account.address) == ETH
    return account, password_file


def _key_forms(account: LocalAccount) -> list[str]:
    hexkey = account.key.hex().removeprefix("0x")
    return [hexkey, hexkey.upper(), hexkey[:32], hexkey[32:]]


def test_keystore_account_bad_password_and_no_funds(
    cli: Cli, keystore: tuple[LocalAccount, Path], market: MarketClient, w3: Web3, tmp_path: Path, post_task: Callable[..., int]
) -> None:
    account, password_file = keystore
    wrong = tmp_path / "wrong"
    wrong.write_text("battery staple\n")
    count, before = market.model_count(), snapshot(w3, account.address)
    post = ["task", "post", "-a", "rich", "--aggregator", "dev:1", "--spec-cid", CID_A, "--initial-model-cid", CID_B, "--reward", "0.1"]
    cli.fails(*post, "--password-file", wrong, fragment="wrong password for keystore rich")
    cli.fails(*post, env={"FEDMARKET_PASSWORD": "nope"}, fragment="wrong password for keystore rich")
    assert market.model_count() == count and snapshot(w3, account.address) == before

    # enough for the reward but not for reward + gas; then more than it holds
    cli.fails(*post[:-1], "2", "--password-file", password_file, fragment="not enough funds")
    assert market.model_count() == count and snapshot(w3, account.address) == before

    # with the right password it posts; balances show the escrow gone
    posted = cli.ok(*post, "--password-file", password_file)
    assert market.get_model(posted["model_id"]).state.owner == account.address
    balances = cli.ok("wallet", "balance", "rich")
    assert balances["accounts"][0]["balance_wei"] < ETH - ETH // 10
    assert balances["accounts"][0]["credit_wei"] == 0

    # a keystore with nothing at all
    poor = Account.create()
    (tmp_path / "poor").write_text(poor.key.hex())
    cli.ok("wallet", "import", "poor", "--key-file", tmp_path / "poor", "--password-file", password_file, "--light-kdf")
    model_id = post_task()
    cli.fails("task", "license", model_id, "-a", "poor", "--password-file", password_file, fragment="not enough funds")
    assert snapshot(w3, poor.address) == (0, 0)

    for output in cli.outputs:
        for form in _key_forms(account) + _key_forms(poor):
            assert form not in output


# ------------------------------------------------------------------------------ participants and rounds


def test_one_round_by_hand(cli: Cli, market: MarketClient, w3: Web3, accounts: list[LocalAccount], post_task: Callable[..., int], tmp_path: Path) -> None:
    """licence refusals, start by the aggregator, commit/reveal with the salt kept in the data dir,
    score refusals, score commit/reveal, publish, vote commit/reveal (accept and reject), close by
    anyone, finalize by anyone, withdraw.
    (The worked scenario of tests/e2e runs every command in the ordinary order.)"""
    model_id = post_task(joined=True, rounds=1)
    cli.fails("task", "join", "trainer", model_id, "-a", "dev:8", fragment="has no licence")
    cli.fails("task", "join", "aggregator", model_id, "-a", "dev:9", fragment="is not the aggregator")
    committee = cli.ok("task", "start", model_id, "-a", f"dev:{AGGREGATOR}")["committee"]
    index = {a.address: n for n, a in enumerate(accounts)}

    trainer = TRAINERS[0]
    committed = cli.ok("round", "commit", model_id, "-a", f"dev:{trainer}", "--update-cid", CID_C, "--samples", 42)
    salts = list((cli.home / "salts").rglob("*.json"))
    assert len(salts) == 1 and json.loads(salts[0].read_text())["commitment"] == committed["commitment"]
    cli.fails("round", "commit", model_id, "-a", f"dev:{trainer}", "--update-cid", CID_C, "--samples", 42, fragment="already committed")
    # the other trainers, in parallel processes sharing the data dir
    # (distinct updates: a digest revealed twice in a round is refused at settlement)
    cli.ok_all(
        [("round", "commit", model_id, "-a", f"dev:{i}", "--update-cid", cid, "--samples", 10) for i, cid in zip(TRAINERS[1:], (CID_A, CID_B), strict=True)]
    )
    # another data dir has no salt: the reveal is refused before anything is sent
    elsewhere = Cli(tmp_path / "elsewhere", cli.rpc, cli.address_book)
    elsewhere.fails("round", "reveal", model_id, "-a", f"dev:{trainer}", fragment="no stored commit")
    revealed = cli.ok("round", "reveal", model_id, "-a", f"dev:{trainer}")
    assert (revealed["update_cid"], revealed["num_samples"], revealed["index"]) == (CID_C, 42, 0)
    cli.ok_all([("round", "reveal", model_id, "-a", f"dev:{i}") for i in TRAINERS[1:]])

    first_member = f"dev:{index[committee[0]]}"
    # a wrong count is refused before anything is sent (the contract would only find out at the reveal)
    cli.fails("round", "score-commit", model_id, "--scores", "1,2", "-a", first_member, fragment="give 3 scores")
    cli.ok_all([("round", "score-commit", model_id, "--scores", "300000,100000,-200000", "-a", f"dev:{index[m]}") for m in committee])
    ballots = [json.loads(p.read_text()) for p in (cli.home / "salts").rglob("*-scores.json")]
    assert sorted(b["member"] for b in ballots) == sorted(committee) and all(b["scores"] == [300000, 100000, -200000] for b in ballots)
    shown = cli.ok("round", "show", model_id)
    assert shown["phase"] == "scorereveal" and all(m["score_committed"] and not m["scored"] for m in shown["committee"])
    elsewhere.fails("round", "score-reveal", model_id, "-a", first_member, fragment="no stored scores commit")
    cli.ok_all([("round", "score-reveal", model_id, "-a", f"dev:{index[m]}") for m in committee])
    shown = cli.ok("round", "show", model_id)
    assert shown["phase"] == "publish" and [u["utility"] for u in shown["updates"]] == [300000, 100000, -200000]
    cli.ok("round", "publish", model_id, "--model-cid", CID_A, "--metric", 900000, "-a", f"dev:{AGGREGATOR}")
    cli.ok_all([
        ("round", "vote-commit", model_id, "-a", first_member),
        ("round", "vote-commit", model_id, "--reject", "-a", f"dev:{index[committee[1]]}"),
        ("round", "vote-commit", model_id, "-a", f"dev:{index[committee[2]]}"),
    ])  # fmt: skip
    assert market.has_confirmed(model_id, 1, committee[1]) == (False, False)  # committed votes are hidden
    cli.ok_all([("round", "vote-reveal", model_id, "-a", f"dev:{index[m]}") for m in committee[:2]])
    assert market.has_confirmed(model_id, 1, committee[1]) == (True, False)
    # one approval of three is no positive majority: silence approves nothing
    # the third member never reveals: the round closes at the VoteReveal deadline, by anyone
    w3.provider.make_request("evm_increaseTime", [WINDOW + 100])
    w3.provider.make_request("evm_mine", [])
    closed = cli.ok("round", "close", model_id, "-a", "dev:9")
    assert closed["accepted"] is False and {s["reason"] for s in closed["slashes"]} == {"poison", "late"}

    settled = cli.ok("task", "finalize", model_id, "-a", "dev:9")  # anyone, after the last round
    assert settled["task_balance_wei"] == 0 and settled["finalize"] is not None
    credited = {p["address"]: p["total_wei"] for p in settled["payouts"]}
    first = accounts[trainer].address
    assert cli.ok("withdraw", "-a", f"dev:{trainer}")["amount_wei"] == credited[first]
    cli.fails("withdraw", "-a", f"dev:{trainer}", fragment="has nothing to withdraw")
    cli.fails("task", "finalize", model_id, "-a", "dev:0", fragment="already settled")
    assert market.credit(first) == 0


def test_cancel_credits_everyone_back(cli: Cli, market: MarketClient, accounts: list[LocalAccount], post_task: Callable[..., int]) -> None:
    model_id = post_task(joined=True)
    cancelled = cli.ok("task", "cancel", model_id, "-a", "dev:0")
    totals = {}
    for p in cancelled["payouts"]:
        totals[p["address"]] = totals.get(p["address"], 0) + p["total_wei"]
    assert totals[accounts[BUYER].address] == REWARD
    assert totals[accounts[TRAINERS[0]].address] == TRAINER_STAKE
    fees = market.get_model(model_id).params.license_fee * len(TRAINERS)
    assert market.get_model(model_id).state.status == Status.CANCELLED and market.task_balance(model_id) == fees
    # each licensee takes its fee back (a pull: the task does not loop over its licensees)
    for trainer in TRAINERS:
        assert cli.ok("task", "leave", model_id, "-a", f"dev:{trainer}")["fee_returned_wei"] == fees // len(TRAINERS)
    assert market.task_balance(model_id) == 0
    cli.fails("task", "leave", model_id, "-a", f"dev:{TRAINERS[0]}", fragment="holds neither a stake nor an unrefunded licence")
    credit = market.credit(accounts[TRAINERS[0]].address)
    assert cli.ok("withdraw", "-a", f"dev:{TRAINERS[0]}")["amount_wei"] == credit >= TRAINER_STAKE
    cli.fails("task", "cancel", model_id, "-a", "dev:0", fragment="is Cancelled")
