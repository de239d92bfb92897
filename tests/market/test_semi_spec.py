"""The semi task's spec document (roles.semi_agent): what every client process derives its
config and trust graph from; and `up --mode semi`'s refusals before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedmarket.cli.app import app
from fedmarket.errors import FedmarketError
from fedmarket.fl.semi.config import AsyncConfig
from fedmarket.fl.semi.trust import trust_graph
from fedmarket.roles.semi_agent import read_semi_spec, semi_spec_bytes
from fedmarket.storage.cid import cid_to_digest
from fedmarket.storage.store import open_store


def test_the_spec_document_round_trips_config_and_the_drawn_trust_graph(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "store")
    config = AsyncConfig(model="mlp", clients=6, rounds=3, stragglers=0.5, trust="random:2", seed=4, data_dir=tmp_path)
    cid = store.add(semi_spec_bytes(config, {"epochs": 1}))
    back, graph = read_semi_spec(store, cid_to_digest(cid))
    assert back == config and graph == trust_graph("random:2", 6, 4)
    sync = store.add(semi_spec_bytes(config, {}).replace(b'"mode": "semi"', b'"mode": "sync"'))
    with pytest.raises(FedmarketError, match="not a semi task"):
        read_semi_spec(store, cid_to_digest(sync))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--attack", "trainer-1=free-ride"], "takes none"),
        (["--fault", "trainer-1@1:before-commit->now"], "give client-K@R"),
        (["--fault", "client-4@1"], "K must be 1..3"),
        (["--mode", "lockstep"], "sync or semi"),
    ],
)
def test_up_refuses_what_semi_mode_cannot_do_before_starting_anything(tmp_path: Path, extra: list[str], message: str) -> None:
    args = ["up", *(["--mode", "semi"] if "--mode" not in extra else []), "--trainers", "3", "--run-dir", str(tmp_path / "run"), *extra]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code != 0 and message in result.output
    assert not (tmp_path / "run").exists()
