"""The worked economics scenario, entirely through `fedmarket` subprocesses against a real anvil.

Eight keystores (buyer, aggregator, trainers T1-T3, validators V1-V3) are made with `wallet new`
and funded from anvil's dev accounts (`wallet send` has its own test in tests/cli). The buyer posts 0.8 ETH and funds 0.2
ETH more (reward W = 1 ETH, 2 rounds); licences and stakes follow; two rounds run by hand; the
task is finalized and settled; everybody withdraws. Every credited wei is checked against the
hand computation below (docs/protocol.md, "Settlement of round r"), then conservation.

Parameters: W = 1e18 wei, R = 2 -> B = W / R = 5e17 per round (the last round takes
W - (R-1) * (W/R) = 5e17 too). Shares 7000/2000/1000 bps -> T = 3.5e17, V = 1e17, A = 5e16.
Licence fee 1e16; stakes: trainer 1e17, validator 5e16, aggregator 1e17; late slash 10 %,
bad slash 50 %; the committee is all 3 validators (committee size 3 of 3); agreement tolerance
10000 bps (the default). Every member commits to its scores, then reveals them, and likewise its vote.

Round 1: all three trainers reveal (T1, T2, T3 in this order). Scores (micro-units):
    V1 [210000,  90000, 100000]   V2 [200000, 100000, 120000]   V3 [190000, 110000, 100000]
  medians u = [200000, 100000, 100000], P = 400000; no slash (S = 0).
  T1 = 3.5e17 * 200000 / 400000 = 1.75e17;  T2 = T3 = 8.75e16; trainer dust 0.
  validators (docs/protocol.md, "Validator pay"): M = sum |u| = 400000, tolerance M * 10000 / 10000
  = 400000; distances D = sum |s - u|: V1 10000 + 10000 + 0, V2 0 + 0 + 20000, V3 10000 + 10000 + 0,
  all 20000 < tolerance: all three agree, an equal share each, 1e17 / 3 = 33333333333333333,
  dust 1 wei -> buyer.
  aggregator: published, accepted: 5e16.
Round 2: T3 never commits (the commit phase runs to its deadline); T1, T2 reveal in this order;
  V3 never scores (the score phase runs to its deadline) but votes. Scores:
    V1 [290000, 90000]   V2 [310001, 110000]
  two scores of a committee of 3 are a quorum (more than half); the utility is the lower median,
  a submitted score: u1 = min(290000, 310001) = 290000, u2 = min(90000, 110000) = 90000, P = 380000.
  slashes: T3 late 10 % of 1e17 = 1e16; V3 late 10 % of 5e16 = 5e15; S = 1.5e16.
  T1 = 3.5e17 * 290000 / 380000 = 267105263157894736 (.8) + 1.5e16 * 29/38 = 11447368421052631 (.6)
     = 278552631578947367
  T2 = 3.5e17 *  90000 / 380000 =  82894736842105263 (.2) + 1.5e16 *  9/38 =  3552631578947368 (.4)
     =  86447368421052631;  dust of T: 3.5e17 - 267105263157894736 - 82894736842105263 = 1 wei
     -> buyer; dust of S: 1.5e16 - 11447368421052631 - 3552631578947368 = 1 wei -> the trainer
     carry, which no later round pays: burned at settlement (CarryBurned, credited to the zero address).
  validators: M = 380000 = the tolerance; D(V1) = 0, D(V2) = 20001 + 20000 = 40001: both agree;
  V3 revealed no scores: not eligible. V1 and V2 get 1e17 / 2 = 5e16 each, no dust.
  aggregator: 5e16 (all three approved: a positive majority).
Settlement (earned + stake returned):
  T1 1.75e17 + 278552631578947367 + 1e17 = 553552631578947367
  T2 8.75e16 +  86447368421052631 + 1e17 = 273947368421052631
  T3 8.75e16 + (1e17 - 1e16)   = 1.775e17
  V1 33333333333333333 + 5e16 + 5e16 = 133333333333333333
  V2 33333333333333333 + 5e16 + 5e16 = 133333333333333333
  V3 33333333333333333 + (5e16 - 5e15) = 78333333333333333
  aggregator 5e16 + 5e16 + 1e17 = 2e17
  buyer: 1 + 1 wei of dust returned + 3 licence fees (3e16, held by the task until startTraining
  credits them) = 30000000000000002
Deposited 1e18 + 3e16 + 3e17 + 1.5e17 + 1e17 = 1.58e18 = the sum of the withdrawals above + the
1 wei burned, which stays in the contract.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from fedmarket.chain.anvil import AnvilProcess, dev_accounts
from fedmarket.chain.client import Phase, open_market
from fedmarket.chain.timecontrol import advance_to
from fedmarket.storage.cid import cid_of

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))
CID_SPEC = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
CID_INIT = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
CID_UPDATE = "Qmf5S8JCEUSRGf9EvC7y4ARoZSwcJfwwUxE72We8t8ARzf"
CID_UPDATES = {n: cid_of(f"update of {n}".encode()) for n in ("T1", "T2", "T3")}
"""Each trainer's own update: one digest revealed from two seats is refused as a duplicate."""
E = 10**18
# Each account's ether: the gas checks reserve the worst-case limit of the calls whose cost depends
# on who comes last (up to 4M gas at the fee cap) before anything is sent.
FUNDING = 10 * E

EXPECTED_TOTAL = {
    "T1": 553_552_631_578_947_367,
    "T2": 273_947_368_421_052_631,
    "T3": 177_500_000_000_000_000,
    "V1": 133_333_333_333_333_333,
    "V2": 133_333_333_333_333_333,
    "V3": 78_333_333_333_333_333,
    "aggregator": 200_000_000_000_000_000,
}
EXPECTED_BUYER_RETURN = 2  # ModelBuyerReturnPayment: the round-1 validator dust + the round-2 trainer-pool dust
BURNED = 1  # CarryBurned: the round-2 slash dust (docs/protocol.md, "Slashes and the trainer carry")
LICENCE_INCOME = 3 * 10**16
DEPOSITED = 158 * 10**16


def fedmarket(env: dict[str, str], *args: Any) -> Any:
    """Run one command with --json; it must succeed; its JSON."""
    result = subprocess.run([FEDMARKET, *map(str, args), "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, f"fedmarket {' '.join(map(str, args))}: {result.stderr}"
    return json.loads(result.stdout)


def parallel(*jobs: Callable[[], Any]) -> list[Any]:
    """Independent commands of different accounts at once (no shared nonce, no ordering)."""
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return [f.result() for f in [pool.submit(job) for job in jobs]]


def test_worked_scenario_through_the_cli(tmp_path: Path) -> None:
    with AnvilProcess(accounts=8) as anvil:
        w3 = anvil.web3()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEDMARKET_")}
        env.update(
            FEDMARKET_HOME=str(tmp_path / "home"), FEDMARKET_RPC=anvil.url, FEDMARKET_ADDRESS_BOOK=str(tmp_path / "book"),
            FEDMARKET_PASSWORD="e2e password", COLUMNS="200",
        )  # fmt: skip
        run = lambda *args: fedmarket(env, *args)  # noqa: E731

        deployed = run("deploy")
        contract = deployed["address"]
        names = ["buyer", "aggregator", "T1", "T2", "T3", "V1", "V2", "V3"]
        created = parallel(*[lambda n=n: run("wallet", "new", n, "--light-kdf") for n in names])
        address = {n: c["address"] for n, c in zip(names, created, strict=True)}
        # funded from anvil's dev accounts, in this process (each CLI call costs a second of imports)
        client = open_market(w3, contract)
        for sender, recipient in zip(dev_accounts(w3), address.values()):
            signed = sender.sign_transaction(
                {
                    "to": recipient,
                    "value": FUNDING,
                    "gas": 21_000,
                    "gasPrice": 2 * w3.eth.gas_price,
                    "nonce": w3.eth.get_transaction_count(sender.address),
                    "chainId": 31337,
                }
            )
            w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction), poll_latency=0.02)
        assert all(w3.eth.get_balance(a) == FUNDING for a in address.values())

        posted = run(
            "task", "post", "-a", "buyer", "--aggregator", "aggregator", "--reward", "0.8", "--spec-cid", CID_SPEC, "--initial-model-cid", CID_INIT,
            "--rounds", 2, "--min-trainers", 3, "--max-trainers", 3, "--committee", 3, "--max-validators", 3, "--window", 600,
            "--license-fee", "0.01", "--trainer-stake", "0.1", "--validator-stake", "0.05", "--aggregator-stake", "0.1",
            "--late-slash-bps", 1000, "--bad-slash-bps", 5000,
        )  # fmt: skip
        task = posted["model_id"]
        assert run("task", "fund", task, "--amount", "200000000000000000wei", "-a", "buyer")["escrow_wei"] == E

        def trainer_joins(name: str) -> None:
            run("task", "license", task, "-a", name)
            run("task", "join", "trainer", task, "-a", name)

        parallel(
            *[lambda n=n: trainer_joins(n) for n in ("T1", "T2", "T3")],
            *[lambda n=n: run("task", "join", "validator", task, "-a", n) for n in ("V1", "V2", "V3")],
            lambda: run("task", "join", "aggregator", task, "-a", "aggregator"),
        )

        def vote_all() -> None:
            """Every member commits to approve, then reveals: the last reveal settles the round."""
            parallel(*[lambda n=n: run("round", "vote-commit", task, "-a", n) for n in ("V1", "V2", "V3")])
            parallel(*[lambda n=n: run("round", "vote-reveal", task, "-a", n) for n in ("V1", "V2")])
            assert run("round", "vote-reveal", task, "-a", "V3")["round_closed"] is True

        started = run("task", "start", task, "-a", "buyer")
        assert sorted(started["committee"]) == sorted(address[v] for v in ("V1", "V2", "V3"))

        # ---------------------------------------------------------------- round 1
        parallel(*[lambda n=n: run("round", "commit", task, "-a", n, "--update-cid", CID_UPDATES[n], "--samples", 100) for n in ("T1", "T2", "T3")])
        for name in ("T1", "T2", "T3"):  # one at a time: the reveal order is the score order
            run("round", "reveal", task, "-a", name)
        scores_1 = {"V1": "210000,90000,100000", "V2": "200000,100000,120000", "V3": "190000,110000,100000"}
        parallel(*[lambda n=n, s=s: run("round", "score-commit", task, "--scores", s, "-a", n) for n, s in scores_1.items()])
        parallel(*[lambda n=n: run("round", "score-reveal", task, "-a", n) for n in scores_1])
        shown = run("round", "show", task)
        assert [u["utility"] for u in shown["updates"]] == [200000, 100000, 100000]
        assert [u["trainer"] for u in shown["updates"]] == [address["T1"], address["T2"], address["T3"]]
        run("round", "publish", task, "--model-cid", CID_UPDATE, "--metric", 910000, "-a", "aggregator")
        vote_all()

        # ---------------------------------------------------------------- round 2
        parallel(*[lambda n=n: run("round", "commit", task, "-a", n, "--update-cid", CID_UPDATES[n], "--samples", 100) for n in ("T1", "T2")])
        advance_to(w3, client.get_round(task, 2).phase_deadline + 1)  # T3 never commits
        for name in ("T1", "T2"):
            run("round", "reveal", task, "-a", name)
        parallel(
            lambda: run("round", "score-commit", task, "--scores", "290000,90000", "-a", "V1"),
            lambda: run("round", "score-commit", task, "--scores", "310001,110000", "-a", "V2"),
        )
        advance_to(w3, client.get_round(task, 2).phase_deadline + 1)  # V3 never scores
        parallel(*[lambda n=n: run("round", "score-reveal", task, "-a", n) for n in ("V1", "V2")])
        assert client.get_round(task, 2).phase == Phase.PUBLISH and client.utilities(task, 2) == [290000, 90000]
        run("round", "publish", task, "--model-cid", CID_SPEC, "--metric", 930000, "-a", "aggregator")
        vote_all()

        # ---------------------------------------------------------------- the end
        state = run("task", "show", task)
        slashed = {p["address"]: p["slashed_wei"] for p in state["participants"]}
        assert slashed[address["T3"]] == 10**16 and slashed[address["V3"]] == 5 * 10**15
        assert sum(slashed.values()) == 15 * 10**15
        assert state["state"]["global_model_cid"] == CID_SPEC and state["state"]["rounds_closed"] == 2

        settled = run("task", "finalize", task, "-a", "buyer")
        assert settled["task_balance_wei"] == 0
        credited = {p["address"]: p["total_wei"] for p in settled["payouts"] if p["role"] != "buyer"}
        assert credited == {address[n]: wei for n, wei in EXPECTED_TOTAL.items()}
        (buyer_payout,) = [p for p in settled["payouts"] if p["role"] == "buyer"]
        assert buyer_payout["total_wei"] == EXPECTED_BUYER_RETURN

        withdrawn = dict(zip(names, parallel(*[lambda n=n: run("withdraw", "-a", n)["amount_wei"] for n in names]), strict=True))
        assert withdrawn == {"buyer": EXPECTED_BUYER_RETURN + LICENCE_INCOME, **EXPECTED_TOTAL}
        assert sum(withdrawn.values()) + BURNED == DEPOSITED
        assert w3.eth.get_balance(contract) == BURNED  # credited to the zero address, which never withdraws
        # nothing but encrypted keystores on disk: no key in any file of the data dir
        keystores = {p.name for p in (tmp_path / "home" / "keystores").iterdir()}
        assert keystores == {f"{n}.json" for n in names}
