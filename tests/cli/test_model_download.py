"""`fedmarket model download`: the initial, a round's and the latest global model of a real
(tiny) market, each verified against the chain's CID; a lying store and a round not yet closed
are one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedmarket.chain.embedded import new_embedded_web3
from fedmarket.cli.app import app
from fedmarket.fl.taskspec import TaskSpec
from fedmarket.market.engine import MarketConfig, run_local_market
from fedmarket.market.setup import MarketTerms
from fedmarket.storage.cid import cid_of
from fedmarket.storage.embedded import EmbeddedStore


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("model-download")
    w3 = new_embedded_web3()
    store = EmbeddedStore(tmp / "store")
    run = run_local_market(w3, store, MarketConfig(spec=TaskSpec(trainers=2, validators=1, holdout=100), terms=MarketTerms(rounds=2)), tmp / "state")
    return w3, run, tmp


def download(market, monkeypatch: pytest.MonkeyPatch, out: Path, *extra: str):
    import fedmarket.cli.market_options as options

    w3, run, tmp = market
    monkeypatch.setattr(options, "connect", lambda _rpc: w3)
    args = ["model", "download", "--model-id", str(run.model_id), "--contract", run.market.address,
            "--store-dir", str(tmp / "store"), "-o", str(out), "--json", *extra]  # fmt: skip
    return CliRunner().invoke(app, args)


def test_every_model_of_the_task(market, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _w3, run, _tmp = market
    info = run.market.get_model(run.model_id)
    cids = {}
    for flag in ([], ["--round", "0"], ["--round", "1"], ["--round", "2"]):
        out = tmp_path / f"model{'-'.join(flag)}.safetensors"
        result = download(market, monkeypatch, out, *flag)
        assert result.exit_code == 0, result.output
        printed = json.loads(result.stdout)
        assert cid_of(out.read_bytes()) == printed["cid"]
        cids[tuple(flag)] = printed
    assert cids[()]["cid"] == info.state.global_model_cid == cids[("--round", "2")]["cid"]
    assert cids[("--round", "0")]["cid"] == info.params.initial_model_cid and cids[("--round", "0")]["round"] == 0
    assert cids[("--round", "2")]["parent_cid"] == cids[("--round", "1")]["cid"]
    assert cids[("--round", "1")]["parent_cid"] == cids[("--round", "0")]["cid"]


def test_a_round_not_closed_and_a_lying_store_are_one_line(market, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _w3, run, tmp = market
    result = download(market, monkeypatch, tmp_path / "x", "--round", "3")
    assert result.exit_code != 0 and "round 3 has no model yet" in result.output
    assert not (tmp_path / "x").exists()
    # Another store that holds other bytes under the model's CID: refused, nothing written.
    liar = tmp_path / "liar"
    cid = run.market.get_model(run.model_id).state.global_model_cid
    path = EmbeddedStore(liar).path_of(cid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not the model")
    import fedmarket.cli.market_options as options

    monkeypatch.setattr(options, "connect", lambda _rpc: market[0])
    result = CliRunner().invoke(app, ["model", "download", "--model-id", str(run.model_id), "--contract", run.market.address,
                                      "--store-dir", str(liar), "-o", str(tmp_path / "y")])  # fmt: skip
    assert result.exit_code != 0 and cid in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "y").exists()
