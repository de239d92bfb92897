"""A restarted semi client (SemiTrainer.resume): it continues after the rounds it has on chain,
from the model it uploaded last, and records the next round as if it had never stopped."""

from __future__ import annotations

from pathlib import Path

import torch

from fedmarket.chain.embedded import new_embedded_web3
from fedmarket.chain.semi_client import deploy_semi_market
from fedmarket.fl.semi.config import AsyncConfig
from fedmarket.fl.semi.engine import make_setup
from fedmarket.fl.semi.trust import trust_graph
from fedmarket.fl.sim import state_digest
from fedmarket.market.semi_engine import SemiMarketConfig, SemiTerms, post_semi_task
from fedmarket.roles.semi_trainer import InProcessGossip, SemiTrainer, fetch_verified
from fedmarket.storage.cid import digest_to_cid
from fedmarket.storage.embedded import EmbeddedStore


def test_a_restarted_client_resumes_from_its_last_upload(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    # T = 1, not the default 0.1: at 0.1 the other client's model, worse on this client's batch,
    # keeps so little weight (exp(-L / 0.1)) that in this run the aggregate equalled the upload bit
    # for bit, and the test could not tell which of the two the restart resumed from.
    sim = AsyncConfig(mode="semi", dataset="digits", partition="dir:0.5", model="mlp", lr=0.05, clients=2, rounds=3, trust="none", temperature=1.0)
    config = SemiMarketConfig(sim, SemiTerms(epochs=1))
    w3 = new_embedded_web3(4)
    buyer, a, b = w3.eth.accounts[:3]
    setup, store = make_setup(config.sim), EmbeddedStore(tmp_path / "store")
    market = deploy_semi_market(w3, buyer)
    task_id = post_semi_task(market.with_account(buyer), store, config, setup, epoch_length=10**6).task_id
    for account in (a, b):
        market.with_account(account).join_task(task_id)
    market.with_account(buyer).start_task(task_id)
    gossip = InProcessGossip(trust_graph("none", 2, 0))

    first = SemiTrainer(0, market.with_account(a), task_id, setup, store, gossip)
    other = SemiTrainer(1, market.with_account(b), task_id, setup, store, gossip)
    first.step(), other.step(), first.step()
    uploaded = fetch_verified(
        store,
        digest_to_cid(next(r.content["model_digest"] for r in reversed(market.records(task_id)) if r.type == "upload" and r.client == a)),
        2,
        first.weights_check,
    )

    restarted = SemiTrainer(0, market.with_account(a), task_id, setup, store, gossip)
    assert restarted.resume() == 2 and restarted.round == 2
    assert state_digest(restarted.state) == state_digest(uploaded) != state_digest(first.state)  # the upload, not the lost aggregate
    assert restarted.step().round == 3 and market.clients(task_id)[0].rounds == 3
    fresh = SemiTrainer(1, market.with_account(b), task_id, setup, store, gossip)
    assert fresh.resume() == 1
