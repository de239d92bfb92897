"""The in-process semi market (market/semi_engine, roles/semi_trainer) against the numerical
reference: with the same seed its client models equal `fedmarket sim --mode semi`'s model for
model, its on-chain records match the simulation's and verify, and every wei is accounted for."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fedmarket.chain.embedded import new_embedded_web3
from fedmarket.errors import FedmarketError
from fedmarket.fl.semi.config import AsyncConfig
from fedmarket.fl.semi.run import run_async
from fedmarket.market.semi_engine import SemiMarketConfig, SemiTerms, run_semi_market
from fedmarket.storage.embedded import EmbeddedStore


@pytest.fixture
def config(tmp_path: Path) -> AsyncConfig:
    edges = tmp_path / "trust.json"  # clients 0 and 1 gossip; 2 and 3 reach everyone through the chain
    edges.write_text(json.dumps({"clients": 4, "edges": [[0, 1]]}))
    return AsyncConfig(
        mode="semi", dataset="digits", partition="dir:0.5", model="mlp", lr=0.05, clients=4, rounds=3, stragglers=0.5, slowdown=2, trust=str(edges)
    )


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_market_equals_the_simulation_model_for_model(config: AsyncConfig, tmp_path: Path) -> None:
    reference = run_async(config)
    report = run_semi_market(new_embedded_web3(8), EmbeddedStore(tmp_path / "store"), SemiMarketConfig(config))
    assert report["client_digests"] == reference.digests()
    assert report["final"]["client_models"] == reference.client_models.to_dict()
    assert report["compute_time_ratio"] == reference.clock["compute_time_ratio"] == 1.0
    records = report["records"]
    assert {k: records[k] for k in ("upload", "download", "score")} == reference.records.counts()
    assert records["verified"]
    assert report["totals"]["conserved"]
    epochs = report["epochs"]
    assert len(epochs) == 2 and sum(e["paid"] for e in epochs) + report["buyer"]["refunded_wei"] == SemiTerms().reward_wei
    for p in report["participants"].values():
        assert p["withdrawn_wei"] == p["deposited_wei"] + p["earned_wei"] - p["slashed_wei"] + p["slash_share_wei"]
        assert p["rounds"] == 3


class SwappingStore(EmbeddedStore):
    """A store whose reads come back with their last bit flipped (a corrupted or substituted blob)."""

    def get(self, cid: str, max_size: int | None = None) -> bytes:
        data = super().get(cid, max_size)
        return data[:-1] + bytes([data[-1] ^ 1])


def test_a_download_that_does_not_match_its_cid_is_refused(config: AsyncConfig, tmp_path: Path) -> None:
    with pytest.raises(FedmarketError, match="is not Qm"):
        run_semi_market(new_embedded_web3(8), SwappingStore(tmp_path / "store"), SemiMarketConfig(replace(config, rounds=1)))
