"""The market report rebuilt from the chain (fedmarket.market.report): checked against what the
scripted market knows it did, against the contract's own medians, and, for a learning task,
against fl.sim's evaluation; its PNG, its tables and `fedmarket report`."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from report_helpers import LearningTask, post_learning_task, rounded, run_learning_task, score_alone
from rich.console import Console
from scripted_market import MarketRun, ScriptConfig, ScriptedMarket
from typer.testing import CliRunner
from web3 import Web3

from fedmarket.chain.client import MarketClient, open_market
from fedmarket.chain.embedded import new_embedded_web3
from fedmarket.chain.protocol import MAX_SCORE, lower_median, utility_of
from fedmarket.errors import FedmarketError
from fedmarket.fl.taskspec import TaskSpec
from fedmarket.market.report import (
    build_report,
    check_conservation,
    utilities_of,
    write_report,
)
from fedmarket.storage.embedded import EmbeddedStore

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)

# ----------------------------------------------------------------------------- the median


@pytest.mark.parametrize(
    ("values", "committee", "expected"),
    [
        ([], 3, 0),  # nobody scored
        ([7], 3, 0),  # one of three: no quorum
        ([7, 9], 3, 7),  # two of three: the lower of the two
        ([3, 1, 2], 3, 2),
        ([-1, -2], 3, -2),
        ([10, 1, 3, 2], 5, 2),  # the lower median is a submitted score
        ([5, 5, 5, 5, 9, 1], 9, 5),
        ([2 * 10**9, 3 * 10**9], 3, MAX_SCORE),  # clamped to the utilities' range
        ([-(2**63), -(2**63) + 1], 3, -MAX_SCORE),
    ],
)
def test_utility_is_the_contracts(values: list[int], committee: int, expected: int) -> None:
    assert utility_of(values, committee) == expected


@given(st.lists(INT64, min_size=1, max_size=9))
def test_the_utility_is_always_a_submitted_clamped_score(values: list[int]) -> None:
    clamped = [max(-MAX_SCORE, min(MAX_SCORE, v)) for v in values]
    assert utility_of(values, len(values)) in clamped
    assert utility_of(list(reversed(values)), len(values)) == utility_of(values, len(values))
    assert lower_median(values) == sorted(values)[(len(values) - 1) // 2]


def test_utilities_of() -> None:
    order = ["0xA", "0xB"]
    assert utilities_of(order, [], 3) == {"0xA": 0, "0xB": 0}
    assert utilities_of(order, [[10, -3], [20, -4]], 3) == {"0xA": 10, "0xB": -4}
    assert utilities_of(order, [[10, -3], [20, -4]], 4) == {"0xA": 0, "0xB": 0}  # two of four: no quorum
    with pytest.raises(FedmarketError, match="2 revealed updates"):
        utilities_of(order, [[1]], 3)


# ----------------------------------------------------------------------------- the scripted market


@pytest.fixture(scope="module")
def scripted() -> tuple[Web3, MarketRun, MarketClient]:
    # A spread of 10_001 makes round 2's two-member median a half-integer (and negative for the
    # poisoner): the even-count rounding shows on chain and in the report alike.
    w3 = new_embedded_web3()
    run = ScriptedMarket(w3, ScriptConfig(score_spread=10_001)).run()
    return w3, run, open_market(w3, run.contract)


@pytest.fixture(scope="module")
def report(scripted: tuple[Web3, MarketRun, MarketClient]) -> dict[str, Any]:
    _w3, run, market = scripted
    labels = {p.address: p.label for p in [run.buyer, *run.parties]}
    logs = [{"round": 1, "train_s": 1.5, "chain_s": 0.25}, {"round": 1, "train_s": 0.5, "storage_s": 0.125}, {"round": 3, "chain_s": 2.0}, {"note": "no round"}]
    return build_report(market, run.model_id, labels=labels, round_wall_s={1: 3.25, 2: 1.0000004}, agent_logs=iter(logs))


def test_report_is_plain_json(report: dict[str, Any]) -> None:
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    assert set(report) >= {"model_id", "status", "chain", "rounds", "initial", "participants", "buyer", "totals", "final"}


def test_chain_and_status(report: dict[str, Any], scripted: tuple[Web3, MarketRun, MarketClient]) -> None:
    _w3, run, _market = scripted
    assert report["model_id"] == run.model_id
    assert report["chain"] == {"kind": "embedded", "chain_id": run.chain_id, "contract": run.contract}
    assert report["status"] == "settled"
    assert report["final"] == {"accuracy": None, "auc": None, "loss": None, "model_cid": run.final_model_cid}
    assert report["initial"]["accuracy"] is None and report["initial"]["model_cid"].startswith("Qm")
    assert any("null" in note for note in report["notes"])


def test_participants_match_the_run(report: dict[str, Any], scripted: tuple[Web3, MarketRun, MarketClient]) -> None:
    _w3, run, _market = scripted
    assert list(report["participants"]) == [p.address for p in run.parties]  # join order
    for party in run.parties:
        entry = report["participants"][party.address]
        assert entry["label"] == party.label and entry["role"] == party.role
        assert (entry["deposited_wei"], entry["earned_wei"], entry["slashed_wei"], entry["withdrawn_wei"]) == (
            party.deposited,
            party.earned,
            party.slashed,
            party.withdrawn,
        )
        # what it took out is its earnings plus the stake it got back
        assert entry["withdrawn_wei"] == entry["earned_wei"] + entry["stake_returned_wei"]
    b = report["buyer"]
    assert (b["address"], b["label"]) == (run.buyer.address, "buyer")
    assert (b["deposited_wei"], b["refunded_wei"], b["license_income_wei"], b["withdrawn_wei"]) == (
        run.buyer.deposited,
        run.refunded,
        run.license_income,
        run.buyer.withdrawn,
    )


def test_rounds_match_the_run(report: dict[str, Any], scripted: tuple[Web3, MarketRun, MarketClient]) -> None:
    _w3, run, _market = scripted
    assert [r["round"] for r in report["rounds"]] == [r.round for r in run.rounds]
    for entry, record in zip(report["rounds"], run.rounds, strict=True):
        assert entry["global_cid"] == record.global_cid and entry["accepted_proposal"] is True
        assert entry["accepted"] == record.accepted
        assert set(entry["accepted"]) == {t for t, u in entry["utilities"].items() if u > 0}
        assert entry["budget_wei"] == record.budget_wei and entry["returned_to_buyer_wei"] == record.returned_to_buyer_wei
        assert entry["earned_wei"] == {
            "trainer": record.trainer_earned_wei,
            "validator": record.validator_earned_wei,
            "aggregator": record.aggregator_earned_wei,
        }
        assert entry["slashed_wei"] == record.slashed_wei
        assert [{k: s[k] for k in ("participant", "reason", "amount_wei")} for s in entry["slashes"]] == record.slashes
        # the same transactions as the scripted round's: commits .. the closing one
        assert entry["gas_used"] == record.gas_used
        assert len(entry["committee"]) == 3
        assert entry["accuracy"] is None and entry["loss"] is None and entry["auc"] is None
    by_label = {s["label"]: s["reason"] for s in report["rounds"][1]["slashes"]}
    # round 2's silent member is the committee's last (seat order); the committee is drawn from the
    # reveals, whose salts are random, so which validator that is varies from run to run
    silent = report["participants"][report["rounds"][1]["committee"][-1]]["label"]
    assert silent.startswith("validator ")
    assert by_label == {"trainer C (late)": "late", "trainer D (poisoner)": "poison", silent: "late"}
    for entry in report["rounds"]:
        # the committee's commit-reveal, from its events: everyone but round 2's silent member
        # committed and revealed its scores and an approving vote; the validators' pay is theirs
        actions = {a["validator"]: a for a in entry["committee_actions"]}
        assert list(actions) == entry["committee"]
        quiet = entry["committee"][-1] if entry["round"] == 2 else None
        for member, a in actions.items():
            acted = member != quiet
            assert (a["scores_committed"], a["scores_revealed"], a["vote_committed"], a["vote"]) == (acted, acted, acted, True if acted else None)
        assert sum(entry["validator_pay_wei"].values()) == entry["earned_wei"]["validator"]
        assert entry["disagreed"] == [] and entry["refused"] == []


def test_utilities_equal_the_contracts_medians(report: dict[str, Any], scripted: tuple[Web3, MarketRun, MarketClient]) -> None:
    _w3, run, market = scripted
    # the views keep the last two rounds; round 2 has two scorers (a silent member) and half-integer means
    for r in (2, 3):
        entry = report["rounds"][r - 1]
        assert list(entry["utilities"].values()) == market.utilities(run.model_id, r)
        assert list(entry["utilities"]) == [u.trainer for u in market.revealed_updates(run.model_id, r)]
    poisoner = run.parties[3].address
    assert report["rounds"][1]["utilities"][poisoner] == -510_001  # the lower of the two middle scores


def test_totals_and_gas(report: dict[str, Any], scripted: tuple[Web3, MarketRun, MarketClient]) -> None:
    w3, run, market = scripted
    totals = report["totals"]
    assert totals["deposited_wei"] == run.deposited and totals["withdrawn_wei"] == run.withdrawn
    assert totals["contract_balance_wei"] == totals["burned_wei"] and totals["task_balance_wei"] == 0 and totals["conserved"] is True
    check_conservation(report)
    # the run also paid for the deployment and the withdrawals, which emit no event of the task
    deploy_gas = withdraw_gas = 0
    for number in range(1, w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            receipt = w3.eth.get_transaction_receipt(tx["hash"])
            if receipt["contractAddress"] == run.contract:
                deploy_gas += receipt["gasUsed"]
            elif any(e.name == "Withdrawal" for e in market.events.decode_receipt(receipt, run.contract)):
                withdraw_gas += receipt["gasUsed"]
    assert totals["gas_used"] + deploy_gas + withdraw_gas == run.gas_used
    assert totals["gas_used"] > sum(r["gas_used"] for r in report["rounds"])  # set-up and settlement


def test_check_conservation_refuses_a_gap(report: dict[str, Any]) -> None:
    broken = copy.deepcopy(report)
    broken["totals"]["credited_wei"] -= 7
    with pytest.raises(FedmarketError, match="off by 7 wei") as info:
        check_conservation(broken)
    assert "\n" not in str(info.value)


def test_conservation_is_per_task(report: dict[str, Any]) -> None:
    """Another task of the same Marketplace still holds money, and this task's accounts hold
    credit from it: this task's own books still balance, and nothing says VIOLATED."""
    from rich.console import Console

    from fedmarket.cli.report_view import print_report_tables

    other = copy.deepcopy(report)
    other["totals"]["contract_balance_wei"] += 5 * 10**17  # another task's escrow
    other["totals"]["withdrawn_wei"] += 10**16  # an account here withdrew credit of the other task too
    check_conservation(other)
    console = Console(width=200, record=True)
    print_report_tables(other, console)
    text = console.export_text()
    assert "VIOLATED" not in text and "conservation (this task)" in text


def test_a_burned_carry_is_burned_not_anyones_credit(tmp_path: Path) -> None:
    """One round whose only update the committee scores 0: the trainer pool goes to the carry, no
    later round takes it, and settlement burns it (CarryBurned, credited to the zero address). The
    report shows it as burned: not in `credited_wei`, no participant row for the zero address,
    conservation with it as its own term, and the contract ends holding exactly it."""
    from report_helpers import REWARD, STAKE, deploy

    from fedmarket.chain.anvil import dev_accounts
    from fedmarket.chain.client import ModelParams, commitment, new_salt
    from fedmarket.cli.report_view import print_report_tables
    from fedmarket.roles import buyer as buyer_role

    w3 = new_embedded_web3()
    accounts = dev_accounts(w3)
    market = deploy(w3)
    store = EmbeddedStore(tmp_path / "blobs")
    params = ModelParams(
        spec_digest=store.add(b"spec"), initial_model_digest=store.add(b"initial"), aggregator=accounts[1].address, rounds=1,
        min_trainers=1, max_trainers=1, committee_size=1, max_validators=1,
        trainer_stake=STAKE, validator_stake=STAKE, aggregator_stake=STAKE,
    )  # fmt: skip
    model_id = buyer_role.post_task(market, params, REWARD).model_id
    aggregator, trainer, validator = (market.with_account(accounts[i]) for i in (1, 2, 3))
    trainer.buy_license(model_id)
    trainer.join_as_trainer(model_id)
    validator.join_as_validator(model_id)
    aggregator.join_as_aggregator(model_id)
    buyer_role.start_task(market, model_id)
    update, salt = store.add(b"an update"), new_salt()
    trainer.commit_update(model_id, 1, commitment(model_id, 1, update, 100, salt, trainer.sender))
    trainer.reveal_update(model_id, 1, update, 100, salt)
    score_alone(validator, model_id, 1, [0])  # nothing positive: Due, the trainer pool is carried
    market.close_round(model_id)
    buyer_role.finalize_and_settle(market, model_id)
    for i in (0, 1, 2, 3):
        client = market.with_account(accounts[i])
        if client.credit(accounts[i].address) > 0:
            buyer_role.withdraw(client)

    report = build_report(market, model_id)
    totals = report["totals"]
    trainer_pool = REWARD * 7_000 // 10_000
    assert totals["burned_wei"] == trainer_pool == market.credit("0x" + "00" * 20)
    assert totals["deposited_wei"] == totals["credited_wei"] + totals["burned_wei"] and totals["conserved"] is True
    assert totals["contract_balance_wei"] == trainer_pool and totals["withdrawn_wei"] == totals["credited_wei"]
    assert not any(int(address, 16) == 0 for address in report["participants"])
    assert report["participants"][trainer.sender]["earned_wei"] == 0  # the burned pool is nobody's earning
    check_conservation(report)
    console = Console(record=True, width=200)
    print_report_tables(report, console)
    assert f"+ {trainer_pool} wei burned" in console.export_text()


def test_timings(report: dict[str, Any]) -> None:
    r1, r2, r3 = report["rounds"]
    assert (r1["wall_s"], r2["wall_s"], r3["wall_s"]) == (3.25, 1.0, None)
    assert (r1["train_s"], r1["chain_s"], r1["storage_s"]) == (2.0, 0.25, 0.125)
    assert (r2["train_s"], r2["chain_s"], r2["storage_s"]) == (0.0, 0.0, 0.0)
    assert r3["chain_s"] == 2.0


def test_default_labels(scripted: tuple[Web3, MarketRun, MarketClient]) -> None:
    _w3, run, market = scripted
    plain = build_report(market, run.model_id)
    labels = {who: p["label"] for who, p in plain["participants"].items()}
    assert labels == {who: f"{who[:6]}…{who[-4:]}" for who in labels}  # no names given: short addresses
    assert plain["buyer"]["label"] == "buyer"
    assert plain["rounds"][0]["wall_s"] is None
    # start_block past the whole run: no events, so no rounds and nothing withdrawn
    late = build_report(market, run.model_id, start_block=w3_height(market) + 1)
    assert late["rounds"] == [] and late["participants"] == {} and late["totals"]["deposited_wei"] == late["totals"]["withdrawn_wei"] == 0


def w3_height(market: MarketClient) -> int:
    return int(market.w3.eth.block_number)


def test_write_report(report: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "report.json"
    write_report(report, path)
    assert json.loads(path.read_text()) == report
    assert path.read_text().startswith('{\n  "model_id"')


def test_unknown_task(scripted: tuple[Web3, MarketRun, MarketClient]) -> None:
    _w3, _run, market = scripted
    with pytest.raises(FedmarketError):
        build_report(market, 99)


# ----------------------------------------------------------------------------- the PNG and the tables


def test_plot_is_a_deterministic_png(report: dict[str, Any], tmp_path: Path) -> None:
    from fedmarket.market.report_plot import plot_report

    first = plot_report(report, tmp_path / "x" / "one.png")
    second = plot_report(report, tmp_path / "two.png")
    assert first.read_bytes()[:8] == PNG_SIGNATURE
    assert first.read_bytes() == second.read_bytes()
    assert b"Software" not in first.read_bytes() and b"tIME" not in first.read_bytes()
    learned = copy.deepcopy(report)
    learned["initial"]["accuracy"] = 0.1
    for i, r in enumerate(learned["rounds"]):
        r["accuracy"] = 0.5 + 0.1 * i
    learned["rounds"][1]["accepted_proposal"] = False
    third = plot_report(learned, tmp_path / "three.png")
    assert third.read_bytes()[:8] == PNG_SIGNATURE and third.read_bytes() != first.read_bytes()


def test_tables(report: dict[str, Any]) -> None:
    from fedmarket.cli.report_view import _eth, print_report_tables

    for width in (80, 220):  # narrow terminals get the rounds in two tables, and no addresses
        console = Console(record=True, width=width)
        print_report_tables(report, console)
        text = console.export_text()
        for fragment in (
            "poisoner",
            "validator 4",
            "conservation",
            "== credited",
            "no learning metrics",
            "4/4",
            "2/3",
            f"{report['rounds'][0]['gas_used']:,}",
            "0.065",
        ):
            assert fragment in text, (width, fragment)
        assert ("0x6813Eb93" in text) == (width > 150)
        assert "…" not in text.replace("0x", "").split("who paid in")[0]  # no cell of the round tables is cut short
    assert _eth(0) == "0" and _eth(5) == "5 wei" and _eth(15 * 10**17) == "1.5" and _eth(10**18 + 1) == "~1"


# ----------------------------------------------------------------------------- `fedmarket report` in process


@pytest.fixture
def on_chain(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make the CLI's --rpc connect to a given in-process chain (an embedded chain lives in one process)."""
    import fedmarket.cli.market_options as options

    def use(w3: Web3) -> None:
        monkeypatch.setattr(options, "connect", lambda _rpc: w3)

    return use


def test_report_command(scripted: tuple[Web3, MarketRun, MarketClient], report: dict[str, Any], on_chain: Any, tmp_path: Path) -> None:
    from fedmarket.cli.app import app

    w3, run, _market = scripted
    on_chain(w3)
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    args = ["report", "--model-id", str(run.model_id), "--contract", run.contract, "--store-dir", str(tmp_path / "store"), "--out", str(out), "--png", str(png)]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == json.loads(out.read_text())
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert "does not hold the task spec" in printed["notes"][0]
    # the same report as in process, default labels aside
    strip = lambda data: {k: v for k, v in data.items() if k not in ("participants", "rounds", "buyer", "notes")}  # noqa: E731
    assert strip(printed) == strip(report)
    assert [r["utilities"] for r in printed["rounds"]] == [r["utilities"] for r in report["rounds"]]

    tables = CliRunner().invoke(app, args[:7], env={"COLUMNS": "220"})
    assert tables.exit_code == 0, tables.output
    assert "conservation" in tables.stdout and run.parties[-2].address[:6] in tables.stdout


def test_report_command_names_participants_by_keystore(scripted: tuple[Web3, MarketRun, MarketClient], on_chain: Any, tmp_path: Path) -> None:
    from fedmarket.cli.app import app
    from fedmarket.wallet import LIGHT_SCRYPT_N, KeystoreDir

    _w3, run, _market = scripted
    on_chain(_w3)
    keystores = KeystoreDir(tmp_path / "keys")
    keystores.create("alice", run.parties[0].account.key, "pw", scrypt_n=LIGHT_SCRYPT_N)
    args = ["report", "--model-id", str(run.model_id), "--contract", run.contract, "--keystore-dir", str(tmp_path / "keys"), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    labels = {who: p["label"] for who, p in json.loads(result.stdout)["participants"].items()}
    assert labels[run.parties[0].address] == "alice"
    assert labels[run.parties[1].address] == f"{run.parties[1].address[:6]}…{run.parties[1].address[-4:]}"


def test_report_command_unknown_task_is_one_line(scripted: tuple[Web3, MarketRun, MarketClient], on_chain: Any, tmp_path: Path) -> None:
    from fedmarket.cli.app import app

    w3, run, _market = scripted
    on_chain(w3)
    result = CliRunner().invoke(app, ["report", "--model-id", "42", "--contract", run.contract, "--store-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- a learning task


@pytest.fixture(scope="module")
def spec() -> TaskSpec:
    return TaskSpec()  # digits, mlp, 5 trainers, holdout 400: the demo's task


@pytest.fixture(scope="module")
def sim_round0(spec: TaskSpec) -> Any:
    from fedmarket.fl.sim import SimConfig, run_simulation

    config = SimConfig(dataset=spec.dataset, partition=spec.partition, clients=spec.trainers, rounds=0, holdout=spec.holdout, seed=spec.seed, model=spec.model)
    return run_simulation(config).rounds[0]


def test_initial_accuracy_equals_the_simulations(spec: TaskSpec, sim_round0: Any, tmp_path: Path) -> None:
    w3 = new_embedded_web3()
    store = EmbeddedStore(tmp_path / "store")
    market, model_id, task_data, initial_cid = post_learning_task(w3, store, spec)
    data = build_report(market, model_id, store=store, task_data=task_data)
    assert data["initial"]["model_cid"] == initial_cid == sim_round0.global_cid  # the same file as the sim's round 0
    metrics = sim_round0.metrics
    assert data["initial"]["accuracy"] is not None
    assert (data["initial"]["accuracy"], data["initial"]["loss"], data["initial"]["auc"]) == (
        rounded(metrics.accuracy),
        rounded(metrics.loss),
        rounded(metrics.auc),
    )
    assert data["status"] == "open" and data["rounds"] == []
    assert data["final"]["model_cid"] == initial_cid and data["final"]["accuracy"] == data["initial"]["accuracy"]
    assert data["notes"] == []


@pytest.fixture(scope="module")
def learning(spec: TaskSpec, tmp_path_factory: pytest.TempPathFactory) -> tuple[Web3, LearningTask]:
    w3 = new_embedded_web3()
    return w3, run_learning_task(w3, EmbeddedStore(tmp_path_factory.mktemp("store")), spec)


def test_rounds_are_evaluated_and_a_rejected_round_carries_over(learning: tuple[Web3, LearningTask]) -> None:
    from fedmarket.fl.evaluation import evaluate_clients, weighted_overall

    _w3, task = learning
    data = build_report(task.market, task.model_id, store=task.store, task_data=task.task_data)
    r1, r2 = data["rounds"]
    assert (r1["accepted_proposal"], r2["accepted_proposal"]) == (True, False)
    assert r1["global_cid"] == task.round_cids[0] and r2["global_cid"] == task.round_cids[0]  # round 2's proposal was rejected
    d = task.task_data
    expected = weighted_overall(evaluate_clients(d.model_spec.build(), task.round_states[0], d.dataset.x, d.dataset.y, d.test_sets(), d.dataset.task))
    assert (r1["accuracy"], r1["loss"], r1["auc"]) == (rounded(expected.accuracy), rounded(expected.loss), rounded(expected.auc))
    assert (r2["accuracy"], r2["loss"], r2["auc"]) == (r1["accuracy"], r1["loss"], r1["auc"])
    assert data["final"] == {"accuracy": r1["accuracy"], "auc": r1["auc"], "loss": r1["loss"], "model_cid": task.round_cids[0]}
    assert data["initial"]["loss"] != r1["loss"]  # round 1 really changed the model
    assert r2["earned_wei"]["aggregator"] == 0 and [s["reason"] for s in r2["slashes"]] == ["rejected"]
    assert r1["accepted"] == r2["accepted"] == [task.trainer]
    check_conservation(data)
    assert data["totals"]["conserved"] and data["status"] == "settled"


def test_report_command_evaluates_from_the_store(learning: tuple[Web3, LearningTask], on_chain: Any) -> None:
    from fedmarket.cli.app import app

    w3, task = learning
    on_chain(w3)
    args = ["report", "--model-id", str(task.model_id), "--contract", task.market.address, "--store-dir", str(task.store.root), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    direct = build_report(task.market, task.model_id, store=task.store, task_data=task.task_data)
    assert printed == direct


# ----------------------------------------------------------------------------- across processes, on anvil


@pytest.mark.anvil
@pytest.mark.slow
def test_report_command_on_anvil(tmp_path: Path) -> None:
    from fedmarket.chain.anvil import AnvilProcess

    with AnvilProcess(accounts=12) as anvil:
        w3 = anvil.web3()
        run = ScriptedMarket(w3).run()
        in_process = build_report(open_market(w3, run.contract), run.model_id)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("FEDMARKET_")}, "FEDMARKET_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
        fedmarket = str(Path(sys.executable).with_name("fedmarket"))
        command = [fedmarket, "report", "--model-id", str(run.model_id), "--rpc", anvil.url, "--contract", run.contract, "--json"]
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["chain"]["kind"] == "anvil" and printed["chain"]["chain_id"] == 31337
    assert {k: v for k, v in printed.items() if k != "notes"} == {k: v for k, v in in_process.items() if k != "notes"}
    assert [r.gas_used for r in run.rounds] == [r["gas_used"] for r in printed["rounds"]]
    assert printed["totals"]["conserved"] and printed["totals"]["withdrawn_wei"] == run.withdrawn
