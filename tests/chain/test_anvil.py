"""anvil from node_modules: the AnvilProcess context manager, dev accounts, time control, the
MarketClient over JSON-RPC, and `fedmarket chain start|status|stop` as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from chain_helpers import ballot_salt, score_by_commit_reveal
from eth_account import Account
from eth_utils import keccak

from fedmarket.chain.anvil import AnvilError, AnvilProcess, dev_accounts, port_in_use
from fedmarket.chain.client import InsufficientFunds, MarketClient, ModelParams, NotOwner, Phase, TxResult, WrongAmount, commitment, connect, vote_commitment
from fedmarket.chain.deploy import MARKETPLACE_GAS_LIMITS, deploy_marketplace
from fedmarket.chain.protocol import ANVIL_CHAIN_ID
from fedmarket.chain.timecontrol import TimeControlUnsupported, advance_time, advance_to, chain_now
from fedmarket.chain.transactions import GAS_MARGIN, GAS_MARGIN_FLAT

pytestmark = pytest.mark.anvil

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))


def alive(pid: int) -> bool:
    """Running (a zombie left to an init that does not reap counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilProcess]:
    with AnvilProcess(accounts=6) as process:
        yield process


def test_anvil_process_starts_on_localhost_and_stops_by_pid() -> None:
    with AnvilProcess(accounts=2) as process:
        pid, port, home = process.pid, process.port, process.home
        assert process.url == f"http://127.0.0.1:{port}"
        assert alive(pid) and port_in_use(port) and home is not None and home.is_dir()
        assert process.chain_id == ANVIL_CHAIN_ID
        assert connect(process.url).eth.block_number == 0
    assert not alive(pid)
    assert not port_in_use(port)
    assert not home.exists()
    process.stop()  # twice is harmless


def test_anvil_process_is_stopped_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError):
        with AnvilProcess(accounts=1) as process:
            pid = process.pid
            raise RuntimeError("boom")
    assert not alive(pid)


def test_anvil_refuses_a_busy_port(anvil: AnvilProcess) -> None:
    with pytest.raises(AnvilError, match=f"port {anvil.port} on 127.0.0.1 is already in use"):
        AnvilProcess(port=anvil.port).start()


def test_dev_accounts_are_the_nodes_accounts(anvil: AnvilProcess) -> None:
    w3 = anvil.web3()
    accounts = dev_accounts(w3)
    assert [a.address for a in accounts] == list(w3.eth.accounts)
    assert accounts[0].address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil's well-known first account


def test_time_control_on_anvil(anvil: AnvilProcess) -> None:
    w3 = anvil.web3()
    before = chain_now(w3)
    after = advance_time(w3, 1_000)
    assert after >= before + 1_000 and chain_now(w3) == after
    assert advance_to(w3, after + 50) >= after + 50
    assert advance_to(w3, 0) == chain_now(w3)  # never backwards


class _NoTimeTravel(BaseHTTPRequestHandler):
    """A JSON-RPC node that answers chain id and blocks but refuses evm_* (like a public node)."""

    def do_POST(self) -> None:  # noqa: N802
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        method = request["method"]
        if method == "eth_chainId":
            reply = {"result": "0x1"}
        elif method == "eth_getBlockByNumber":
            reply = {"result": {"number": "0x10", "timestamp": "0x6553f100", "hash": "0x" + "11" * 32, "parentHash": "0x" + "00" * 32,
                                "transactions": [], "gasLimit": "0x1c9c380", "gasUsed": "0x0", "miner": "0x" + "00" * 20,
                                "difficulty": "0x0", "extraData": "0x", "logsBloom": "0x" + "00" * 256, "nonce": "0x0000000000000000",
                                "receiptsRoot": "0x" + "00" * 32, "sha3Uncles": "0x" + "00" * 32, "stateRoot": "0x" + "00" * 32,
                                "transactionsRoot": "0x" + "00" * 32, "size": "0x0", "uncles": [], "mixHash": "0x" + "00" * 32}}  # fmt: skip
        else:
            reply = {"error": {"code": -32601, "message": f"the method {method} does not exist/is not available"}}
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], **reply}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_time_control_refused_with_one_line_on_a_chain_without_evm_methods() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoTimeTravel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        w3 = connect(url)
        assert chain_now(w3) == 0x6553F100
        with pytest.raises(TimeControlUnsupported) as info:
            advance_time(w3, 10)
        assert str(info.value).startswith(f"the chain at {url} does not allow time travel (evm_increaseTime: the method evm_increaseTime does not exist")
    finally:
        server.shutdown()


def test_market_client_on_anvil(anvil: AnvilProcess) -> None:
    w3 = anvil.web3()
    owner, aggregator, trainer, outsider = dev_accounts(w3)[:4]
    contract = deploy_marketplace(w3, owner)
    market = MarketClient(w3, contract.address, owner)
    assert market.estimate_gas  # a node: estimate + margin
    params = ModelParams(spec_digest=keccak(text="spec"), initial_model_digest=keccak(text="init"), aggregator=aggregator.address, trainer_stake=10**15)
    result = market.new_model(params, 10**18)
    model_id = result.model_id
    assert [e.name for e in result.events] == ["ModelCreated", "ModelCreationPayment"] or {e.name for e in result.events} == {
        "ModelCreated",
        "ModelCreationPayment",
    }
    assert market.get_model(model_id).params == params
    market.with_account(trainer).buy_license(model_id)
    joined = market.with_account(trainer).join_as_trainer(model_id)
    assert joined.gas_used > 0 and joined.event("ParticipantJoined").args["participant"] == trainer.address
    # reverts come back decoded, before anything is sent (estimation replays them)
    nonce = w3.eth.get_transaction_count(outsider.address)
    with pytest.raises(NotOwner) as info:
        market.with_account(outsider).pay_for_model(model_id, 5)
    assert str(info.value) == f"{outsider.address} is not the owner of task {model_id}; only the owner may call payForModel"
    assert w3.eth.get_transaction_count(outsider.address) == nonce
    with pytest.raises(WrongAmount):
        market.with_account(aggregator).join_as_aggregator(model_id, 1)
    # an empty account is told before sending
    poor = Account.create()
    with pytest.raises(InsufficientFunds, match=rf"^not enough funds: {poor.address} holds 0 ETH; joinAsValidator needs 0.01 ETH \+ up to "):
        market.with_account(poor).join_as_validator(model_id)


def test_one_account_from_several_threads_gets_distinct_nonces(anvil: AnvilProcess) -> None:
    w3 = anvil.web3()
    owner, aggregator = dev_accounts(w3)[4:6]
    market = MarketClient(w3, deploy_marketplace(w3, owner).address, owner)
    params = ModelParams(spec_digest=keccak(text="s"), initial_model_digest=keccak(text="i"), aggregator=aggregator.address)
    errors: list[BaseException] = []

    def post() -> None:
        try:
            market.new_model(params, 10**15)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert market.model_count() == 6


def test_two_votes_estimated_before_either_is_mined_both_succeed_and_the_second_closes_the_round() -> None:
    """Issue 9: with automine off, two committee members estimate and send their votes; one block
    mines both, so the second is the closing vote although it was estimated as a plain one."""
    with AnvilProcess(accounts=7) as node:
        w3 = node.web3()
        owner, aggregator, trainer, first, second, deployer = dev_accounts(w3)[:6]
        market = MarketClient(w3, deploy_marketplace(w3, deployer).address, owner)
        window = 3_600
        params = ModelParams(
            spec_digest=keccak(text="spec"), initial_model_digest=keccak(text="init"), aggregator=aggregator.address, rounds=1,
            min_trainers=1, max_trainers=1, committee_size=2, max_validators=2, commit_window=window, reveal_window=window,
            score_window=window, publish_window=window, confirm_window=window, trainer_stake=10**15, validator_stake=10**15,
            aggregator_stake=10**15,
        )  # fmt: skip
        model_id = market.new_model(params, 10**18).model_id
        market.with_account(trainer).buy_license(model_id)
        market.with_account(trainer).join_as_trainer(model_id)
        voters = [market.with_account(v) for v in (first, second)]
        for voter in voters:
            voter.join_as_validator(model_id)
        market.with_account(aggregator).join_as_aggregator(model_id)
        market.start_training(model_id)
        update, salt = keccak(text="update"), keccak(text="salt")
        market.with_account(trainer).commit_update(model_id, 1, commitment(model_id, 1, update, 7, salt, trainer.address))
        market.with_account(trainer).reveal_update(model_id, 1, update, 7, salt)
        score_by_commit_reveal(voters, model_id, 1, [[500_000]] * 2)
        market.with_account(aggregator).publish_global_model(model_id, 1, keccak(text="global"), 1)
        for voter in voters:
            voter.commit_vote(model_id, 1, vote_commitment(model_id, 1, voter.sender, True, ballot_salt(voter.sender, 1, "vote")))
        assert market.get_round(model_id, 1).phase == Phase.VOTE_REVEAL
        plain = market.contract.functions.revealVote(model_id, 1, True, ballot_salt(second.address, 1, "vote")).estimate_gas({"from": second.address})

        results: dict[str, TxResult | BaseException] = {}

        def vote(voter: MarketClient) -> None:
            try:
                results[voter.sender] = voter.reveal_vote(model_id, 1, True, ballot_salt(voter.sender, 1, "vote"))
            except BaseException as exc:  # noqa: BLE001 - reported below
                results[voter.sender] = exc

        w3.provider.make_request("evm_setAutomine", [False])
        try:
            threads = [threading.Thread(target=vote, args=(voter,)) for voter in voters]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 30
            while any(w3.eth.get_transaction_count(v.sender, "pending") == w3.eth.get_transaction_count(v.sender) for v in voters):
                assert time.monotonic() < deadline, "the votes were never sent"
                time.sleep(0.05)
            w3.provider.make_request("evm_mine", [])
            for thread in threads:
                thread.join(timeout=60)
        finally:
            w3.provider.make_request("evm_setAutomine", [True])
        assert all(isinstance(r, TxResult) for r in results.values()), results
        votes = sorted(results.values(), key=lambda r: r.block_number)
        assert len({r.block_number for r in votes}) == 1  # one block: both estimated before either was mined
        closing = [r for r in votes if r.events_named("RoundClosed")]
        assert len(closing) == 1
        assert closing[0].gas_used > int(plain * GAS_MARGIN) + GAS_MARGIN_FLAT  # what the estimate alone gave: out of gas
        assert all(int(w3.eth.get_transaction(r.tx_hash)["gas"]) >= MARKETPLACE_GAS_LIMITS["revealVote"] for r in votes)
        assert market.get_model(model_id).state.rounds_closed == 1


# ------------------------------------------------------------------------------ the CLI


def fedmarket(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FEDMARKET_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([FEDMARKET, *args], capture_output=True, text=True, env=env, timeout=60)


def test_chain_start_status_stop_as_subprocesses(tmp_path: Path) -> None:
    from fedmarket.chain.anvil import free_port

    port = free_port()
    started = fedmarket("chain", "start", "--port", str(port), "--accounts", "3", "--json", home=tmp_path)
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    pid = info["pid"]
    try:
        assert info["url"] == f"http://127.0.0.1:{port}" and info["chain_id"] == ANVIL_CHAIN_ID and alive(pid)
        assert (tmp_path / "chain" / "anvil.pid").read_text().strip() == str(pid)
        w3 = connect(info["url"])
        assert len(w3.eth.accounts) == 3

        status = fedmarket("chain", "status", "--json", home=tmp_path)
        assert status.returncode == 0, status.stderr
        state = json.loads(status.stdout)
        assert state["running"] and state["pid"] == pid and state["block"] == 0 and state["chain_id"] == ANVIL_CHAIN_ID
        human = fedmarket("chain", "status", home=tmp_path)
        assert f"pid {pid}" in human.stdout and f"http://127.0.0.1:{port}" in human.stdout

        again = fedmarket("chain", "start", "--port", str(port), home=tmp_path)
        assert again.returncode != 0
        assert again.stderr.strip() == f"error: anvil already runs (pid {pid}, http://127.0.0.1:{port}): `fedmarket chain stop` first"
    finally:
        stopped = fedmarket("chain", "stop", "--json", home=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout) == {"stopped": True, "pid": pid}
    assert not alive(pid)
    assert not (tmp_path / "chain" / "anvil.pid").exists()
    assert json.loads(fedmarket("chain", "status", "--json", home=tmp_path).stdout) == {"running": False}
    assert "no anvil was running" in fedmarket("chain", "stop", home=tmp_path).stdout


def test_chain_start_on_a_busy_port_is_one_line(tmp_path: Path, anvil: AnvilProcess) -> None:
    result = fedmarket("chain", "start", "--port", str(anvil.port), home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: port {anvil.port} on 127.0.0.1 is already in use (another node?): pick another with --port"
