"""The FedAvg simulation: determinism to the byte, learning, rules, batched vs sequential."""

from __future__ import annotations

import json

import pytest

from fedmarket.errors import FedmarketError
from fedmarket.fl.params import max_abs_diff
from fedmarket.fl.seeds import client_seed
from fedmarket.fl.sim import SimConfig, run_simulation


def test_defaults_are_the_seed_protocol() -> None:
    c = SimConfig()
    assert (c.clients, c.batch_size, c.lr, c.epochs, c.partition, c.dataset, c.aggregation) == (20, 10, 0.005, 1, "dir:0.1", "digits", "fedavg")


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "sequential"])
def test_same_seed_same_global_model_every_round(batched: bool) -> None:
    config = SimConfig(clients=6, rounds=2, partition="dir:0.5", seed=3, batched=batched)
    a, b = run_simulation(config), run_simulation(config)
    assert [r.digest for r in a.rounds] == [r.digest for r in b.rounds]
    assert [r.global_cid for r in a.rounds] == [r.global_cid for r in b.rounds]
    assert len({r.digest for r in a.rounds}) == 3  # initial + 2 rounds, all different
    other = run_simulation(SimConfig(clients=6, rounds=1, partition="dir:0.5", seed=4, batched=batched))
    assert other.rounds[1].digest != a.rounds[1].digest


def test_batched_and_sequential_runs_agree_within_tolerance() -> None:
    batched = run_simulation(SimConfig(clients=6, rounds=2, partition="dir:0.5", seed=3, batched=True))
    sequential = run_simulation(SimConfig(clients=6, rounds=2, partition="dir:0.5", seed=3, batched=False))
    assert batched.rounds[0].digest == sequential.rounds[0].digest
    assert max_abs_diff(batched.final_state, sequential.final_state) < 1e-4
    assert batched.final.metrics.accuracy == pytest.approx(sequential.final.metrics.accuracy, abs=0.01)


@pytest.mark.slow
def test_accuracy_rises_above_the_initial_model() -> None:
    # A few rounds of FedAvg on digits (iid, a larger step than the seed's 0.005 to keep it short).
    result = run_simulation(SimConfig(clients=10, rounds=3, partition="iid", lr=0.05, seed=0))
    accuracy = [r.metrics.accuracy for r in result.rounds]
    assert accuracy[0] < 0.2  # an untrained 10-class model
    assert accuracy[-1] > accuracy[0] + 0.4
    assert result.final.metrics.auc > result.rounds[0].metrics.auc
    assert result.final.metrics.loss < result.rounds[0].metrics.loss


def test_global_cid_is_the_storage_cid_of_the_round_model() -> None:
    from fedmarket.storage.cid import cid_of
    from fedmarket.storage.weights import WeightsMeta, decode_weights, encode_weights

    result = run_simulation(SimConfig(clients=4, rounds=2, partition="iid", seed=0))
    final, previous = result.rounds[2], result.rounds[1]
    meta = WeightsMeta(arch=result.model_id, round=2, parent_cid=previous.global_cid)
    blob = encode_weights(result.final_state, meta)
    assert cid_of(blob) == final.global_cid and final.global_cid.startswith("Qm")
    state, decoded = decode_weights(blob, expected_arch=result.model_id)
    assert decoded.parent_cid == previous.global_cid and max_abs_diff(state, result.final_state) == 0


def test_a_market_style_round_reproduces_the_sim_cid() -> None:
    """What the market does by hand (each trainer alone, then the rule) gives the sim's exact CID."""
    from fedmarket.fl.aggregation import get_rule
    from fedmarket.fl.datasets import load_dataset
    from fedmarket.fl.models import ModelSpec
    from fedmarket.fl.partition import partition
    from fedmarket.fl.sim import global_model_cid
    from fedmarket.fl.training import TrainConfig, train_local

    config = SimConfig(clients=4, rounds=1, partition="pat:2", seed=5)
    result = run_simulation(config)
    data = load_dataset("digits")
    spec = ModelSpec("cnn", data.input_shape, data.num_outputs)
    start = spec.init_state(config.seed)
    updates = [
        train_local(spec, start, data.x[c.train], data.y[c.train], TrainConfig(seed=client_seed(5, 1, i)))
        for i, c in enumerate(partition(data.y, 4, "pat:2", 5).clients)
    ]
    global_state = get_rule("fedavg")([u[0] for u in updates], [u[1] for u in updates])
    assert global_model_cid(global_state, spec.id, 1, result.rounds[0].global_cid) == result.rounds[1].global_cid


def test_result_is_json_and_records_every_round() -> None:
    seen = []
    result = run_simulation(SimConfig(clients=4, rounds=2, partition="iid", seed=0), on_round=seen.append)
    assert [r.round for r in seen] == [0, 1, 2]
    data = json.loads(json.dumps(result.to_dict()))
    assert data["model_id"] == "cnn-v1:1x8x8:10" and len(data["rounds"]) == 3
    assert data["rounds"][0]["train_loss"] is None and data["rounds"][1]["train_loss"] > 0
    assert data["rounds"][2]["metrics"]["num_samples"] == sum(c["test"] for c in data["partition"]["clients"])


@pytest.mark.parametrize("rule", ["median", "trimmed_mean:0.2", "krum:1"])
def test_aggregation_rule_is_chosen_by_name(rule: str) -> None:
    fedavg = run_simulation(SimConfig(clients=5, rounds=1, partition="iid", seed=0))
    other = run_simulation(SimConfig(clients=5, rounds=1, partition="iid", seed=0, aggregation=rule))
    assert other.rounds[0].digest == fedavg.rounds[0].digest
    assert other.final.digest != fedavg.final.digest


def test_regression_simulation_lowers_mse() -> None:
    result = run_simulation(SimConfig(dataset="diabetes", clients=5, rounds=3, partition="iid", lr=0.05))
    assert result.model_id == "linear-v1:10:1"
    assert result.final.metrics.mse < result.rounds[0].metrics.mse
    assert result.final.metrics.accuracy is None


def test_client_seeds_differ_by_round_and_client() -> None:
    seeds = {client_seed(0, r, c) for r in range(3) for c in range(5)}
    assert len(seeds) == 15 and client_seed(0, 1, 1) == client_seed(0, 1, 1)


def test_bad_configs_are_one_clear_error() -> None:
    with pytest.raises(FedmarketError, match="unknown aggregation"):
        run_simulation(SimConfig(aggregation="mean-ish", rounds=0))
    with pytest.raises(FedmarketError, match="cnn needs"):
        run_simulation(SimConfig(dataset="diabetes", model="cnn", rounds=0))
