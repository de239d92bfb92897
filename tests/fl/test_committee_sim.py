"""The elected-committee simulation: determinism, the election rule in every round, one round redone by hand, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedmarket.errors import FedmarketError
from fedmarket.fl.committee import elect, first_committee, trainers_of, utility_of
from fedmarket.fl.elected_sim import ElectedConfig, check_elected, run_elected

TINY = ElectedConfig(clients=5, rounds=2, partition="dir:0.5", model="mlp", lr=0.05, committee_size=2, seed=4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_run():
    return run_elected(TINY)


def follows_the_rule(rounds: list[dict], participants: int, size: int, seed: int) -> None:
    """Every round's committee is the election of the round before (round 1: the seed's draw)."""
    assert tuple(rounds[0]["committee"]) == first_committee(participants, size, seed)
    for before, after in zip(rounds, rounds[1:]):
        assert after["committee"] == before["next_committee"]
    for r in rounds:
        assert tuple(r["trainers"]) == trainers_of(participants, r["committee"])  # members do not train
        utilities = {int(t): u for t, u in r["utilities"].items()}
        assert tuple(r["next_committee"]) == elect(utilities, r["committee"], size, participants)
        assert r["next_committee"] != r["committee"]
        for i, t in enumerate(r["trainers"]):
            assert utilities[t] == utility_of([s[i] for s in r["scores"].values()], size)
        assert r["accepted"] == [t for t in r["trainers"] if utilities[t] > 0]


def test_same_seed_same_committees_and_cids(tiny_run) -> None:
    again = run_elected(TINY)
    assert [r.global_cid for r in again.rounds] == [r.global_cid for r in tiny_run.rounds]
    assert again.to_dict()["committee_rounds"] == tiny_run.to_dict()["committee_rounds"]
    assert len({r.global_cid for r in tiny_run.rounds}) == 3
    follows_the_rule(tiny_run.to_dict()["committee_rounds"], TINY.clients, TINY.committee_size, TINY.seed)


def test_round_one_redone_by_hand(tiny_run) -> None:
    """The trainers' updates retrained alone, the members' scores recomputed with the utility on
    their own data, the rule over the accepted updates: round 1's CID again."""
    from fedmarket.fl.aggregation import get_scored_rule
    from fedmarket.fl.datasets import load_dataset
    from fedmarket.fl.models import model_spec_for
    from fedmarket.fl.params import canonical
    from fedmarket.fl.partition import market_partition
    from fedmarket.fl.seeds import client_seed
    from fedmarket.fl.sim import global_model_cid
    from fedmarket.fl.training import train_local
    from fedmarket.fl.utility import ScoringRequest, Update, ValidationData, get_utility

    data = load_dataset("digits")
    spec = model_spec_for(data, "mlp")
    parts, _ = market_partition(data.y, TINY.clients, TINY.partition, TINY.seed, 0)
    start = spec.init_state(TINY.seed)
    first = tiny_run.committees[0]
    updates = []
    for t in first.trainers:
        idx = parts.clients[t].train
        state, n, _ = train_local(spec, start, data.x[idx], data.y[idx], TINY.train_config(client_seed(TINY.seed, 1, t)))
        updates.append(Update(state, n))
    for m, recorded in zip(first.committee, first.scores):
        own = parts.clients[m].train
        request = ScoringRequest(start, updates, ValidationData(data.x[own], data.y[own]), spec, seed=client_seed(TINY.seed, 1, m), train=TINY.train_config(0))
        assert tuple(get_utility("cmfl_distance")(request)) == recorded
    accepted = [i for i, u in enumerate(first.utilities) if u > 0]
    assert accepted, "the tiny run should accept updates in round 1"
    state = canonical(
        get_scored_rule("cmfl_s1")([updates[i].state for i in accepted], [updates[i].num_samples for i in accepted], [first.utilities[i] for i in accepted])
    )
    assert global_model_cid(state, spec.id, 1, tiny_run.rounds[0].global_cid) == tiny_run.rounds[1].global_cid == first.global_cid


def test_a_given_first_committee_and_refusals() -> None:
    assert check_elected(ElectedConfig(clients=5, committee_size=2, first_committee=(4, 1))) == (1, 4)
    for bad in (dict(first_committee=(1, 1)), dict(first_committee=(0, 9)), dict(committee_size=5), dict(batched=True), dict(aggregation="cmfl_s3")):
        with pytest.raises(FedmarketError):
            check_elected(ElectedConfig(**{"clients": 5, "committee_size": 2, **bad}))


def test_task_spec_committee_field_keeps_the_default_bytes() -> None:
    from fedmarket.fl.taskspec import TaskSpec

    # the demo task's spec file, byte for byte as before `committee` existed (its CID is on chains)
    assert TaskSpec().to_bytes() == (
        b'{"aggregation":"fedavg","batch_size":10,"dataset":"digits","epochs":1,"format":"fedmarket-task/1","holdout":400,"lr":0.05,'
        b'"model":"mlp","momentum":0.0,"partition":"dir:0.5","prox_mu":0.0,"seed":0,"trainers":5,"utility":"novel_separation","validators":3}\n'
    )
    elected = TaskSpec(committee="elected", aggregation="cmfl_s2:3", utility="cmfl_distance", validators=0)
    assert b'"committee":"elected"' in elected.to_bytes() and TaskSpec.from_bytes(elected.to_bytes()) == elected
    with pytest.raises(FedmarketError, match="validators must be 0, not 3"):
        TaskSpec(committee="elected", aggregation="cmfl_s1")  # the trainers serve: an elected task has no validators
    with pytest.raises(FedmarketError, match="at least 2 trainers"):
        TaskSpec(committee="elected", aggregation="cmfl_s1", validators=0, trainers=1)
    with pytest.raises(FedmarketError, match="committee's scores"):
        TaskSpec(aggregation="cmfl_s1")  # validators' mode has no selection by scores
    with pytest.raises(FedmarketError, match="unknown committee"):
        TaskSpec(committee="appointed")


@pytest.mark.slow
def test_sim_cli_elected_mode(tmp_path: Path) -> None:
    fedmarket = str(Path(sys.executable).with_name("fedmarket"))
    args = ["sim", "--committee", "elected", "--committee-size", "2", "--clients", "5", "--rounds", "3"]
    args += ["--partition", "dir:0.5", "--model", "mlp", "--lr", "0.05", "--seed", "2", "--threads", "1", "--json"]
    env = {**os.environ, "FEDMARKET_HOME": str(tmp_path), "COLUMNS": "200"}
    result = subprocess.run([fedmarket, *args], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["committee"] == "elected" and data["config"]["aggregation"] == "cmfl_s1" and data["config"]["utility"] == "cmfl_distance"
    rounds = data["committee_rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    assert [r["global_cid"] for r in rounds] == [r["global_cid"] for r in data["rounds"][1:]]
    follows_the_rule(rounds, 5, 2, 2)
    config = ElectedConfig(clients=5, rounds=3, partition="dir:0.5", model="mlp", lr=0.05, committee_size=2, seed=2)
    assert [r.global_cid for r in run_elected(config).rounds] == [r["global_cid"] for r in data["rounds"]]
