"""roles.gossip: signed announcements, the receiver's refusals, and real HTTP nodes on loopback
forwarding within the trusted component."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account import Account

from fedmarket.fl.semi.trust import from_edges
from fedmarket.roles.gossip import Announcement, GossipNode, GossipPeers, GossipRefused, envelope

CONTRACT = "0x" + "ab" * 20
TASK = 7
KEYS = [Account.from_key(bytes([i + 1]) * 32) for i in range(5)]
ADDRESSES = tuple(a.address for a in KEYS)
# a path 0 - 1 - 2 and a pair 3 - 4: two trusted components
GRAPH = from_edges("test", 5, [(0, 1), (1, 2), (3, 4)])
OUTSIDER = Account.from_key(b"\x09" * 32)


def peers(me: int) -> GossipPeers:
    return GossipPeers(CONTRACT, TASK, ADDRESSES[me], ADDRESSES, GRAPH)


def announcement(author: int, round_number: int = 1, signer=None) -> Announcement:
    a = Announcement(CONTRACT, TASK, ADDRESSES[author], round_number, "Qm" + "x" * 44, 1_700_000_000)
    return a.signed_by(KEYS[author]) if signer is None else replace(a, signature=signer(a))


def test_a_signed_announcement_recovers_its_sender_and_any_change_breaks_it() -> None:
    a = announcement(0)
    assert a.recovered() == ADDRESSES[0]
    assert replace(a, round=2).recovered() != ADDRESSES[0]
    assert replace(a, cid="Qm" + "y" * 44).recovered() != ADDRESSES[0]
    assert replace(a, signature="0x1234").recovered() is None
    with pytest.raises(Exception, match="cannot sign"):
        Announcement(CONTRACT, TASK, ADDRESSES[0], 1, "Qm", 0).signed_by(KEYS[1])


def test_a_neighbour_accepts_a_direct_and_a_forwarded_announcement() -> None:
    direct = envelope(announcement(0), KEYS[0], ADDRESSES[1])
    assert peers(1).check(direct) == (announcement(0), ADDRESSES[0])
    forwarded = envelope(announcement(0), KEYS[1], ADDRESSES[2])  # 0's model, handed over by 1
    assert peers(2).check(forwarded)[1] == ADDRESSES[1]


@pytest.mark.parametrize(
    ("make", "receiver", "reason"),
    [
        # the announcement signed by someone else than its sender
        (
            lambda: envelope(announcement(0, signer=lambda a: replace(a, sender=ADDRESSES[1]).signed_by(KEYS[1]).signature), KEYS[0], ADDRESSES[1]),
            1,
            "bad signature",
        ),
        # a sender that is not a client of the task
        (lambda: envelope(Announcement(CONTRACT, TASK, OUTSIDER.address, 1, "Qm", 0).signed_by(OUTSIDER), OUTSIDER, ADDRESSES[1]), 1, "unknown sender"),
        # client 3 is a client, but in the other component
        (lambda: envelope(announcement(3), KEYS[3], ADDRESSES[1]), 1, "outside the trusted component"),
        # 0's announcement handed straight to 2: 0 is not 2's neighbour
        (lambda: envelope(announcement(0), KEYS[0], ADDRESSES[2]), 2, "not a trusted neighbour"),
        # a relay signature made for another receiver
        (lambda: envelope(announcement(0), KEYS[0], ADDRESSES[2]), 1, "bad relay signature"),
        # another task's announcement
        (lambda: envelope(replace(announcement(0), task_id=8), KEYS[0], ADDRESSES[1]), 1, "another task"),
        (lambda: {"announcement": {"round": 1}, "relay": ADDRESSES[0], "relay_signature": "0x"}, 1, "malformed"),
        (lambda: "not an envelope", 1, "malformed"),
    ],
)
def test_the_receiver_refuses_with_a_reason(make, receiver: int, reason: str) -> None:
    with pytest.raises(GossipRefused, match=reason):
        peers(receiver).check(make())


def wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_nodes_on_loopback_flood_the_component_and_log_refusals(tmp_path: Path) -> None:
    logs: dict[int, list[tuple[str, dict]]] = {i: [] for i in range(3)}
    nodes = [GossipNode(peers(i), KEYS[i], tmp_path / "endpoints", lambda action, i=i, **f: logs[i].append((action, f))).start() for i in range(3)]
    try:
        nodes[0].announce(1, "Qm" + "a" * 44)
        # 1 hears it from 0, 2 from 1 (forwarded): the whole path 0 - 1 - 2
        assert wait_for(lambda: nodes[2].latest_of(0) is not None and nodes[1].latest_of(0) is not None)
        assert nodes[2].latest_of(0).cid == "Qm" + "a" * 44
        assert ("gossip-accepted", ADDRESSES[1]) in [(a, f.get("relay")) for a, f in logs[2]]
        nodes[2].announce(1, "Qm" + "b" * 44)
        assert wait_for(lambda: nodes[0].latest_of(2) is not None)
        # an older round never replaces a newer one
        assert nodes[1].receive(envelope(announcement(0, 0), KEYS[0], ADDRESSES[1]))[0] == 200
        assert nodes[1].latest_of(0).round == 1
        # an outsider posting to node 1 is refused over HTTP and the refusal is logged
        status, reply = nodes[1].receive(envelope(Announcement(CONTRACT, TASK, OUTSIDER.address, 1, "Qm", 0).signed_by(OUTSIDER), OUTSIDER, ADDRESSES[1]))
        assert status == 403 and "unknown sender" in reply["reason"]
        assert any(a == "gossip-refused" and "unknown sender" in f["detail"] for a, f in logs[1])
        assert wait_for(lambda: nodes[0].counts["sent"] >= 1 and nodes[1].counts["sent"] >= 2)
    finally:
        for node in nodes:
            node.stop()


def test_loopback_gossip_fetches_the_announced_model_by_cid_and_refuses_a_bad_blob(tmp_path: Path) -> None:
    import torch

    from fedmarket.roles.gossip import LoopbackGossip
    from fedmarket.roles.semi_trainer import HeldModel, WeightsCheck
    from fedmarket.storage.store import open_store
    from fedmarket.storage.weights import WeightsMeta, encode_weights, expected_layout, max_weights_size

    store = open_store(None, tmp_path / "store")
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    check = WeightsCheck(expected_layout(state), "test-arch", max_weights_size(state, "test-arch"))
    logs: list[tuple[str, dict]] = []
    nodes = [GossipNode(peers(i), KEYS[i], tmp_path / "endpoints", lambda action, **f: logs.append((action, f))).start() for i in (0, 1)]
    try:
        sender, receiver = LoopbackGossip(nodes[0], store, check), LoopbackGossip(nodes[1], store, check)
        assert receiver.component(1) == frozenset({0, 1, 2}) and receiver.latest(1, 0) is None
        cid = store.add(encode_weights(state, WeightsMeta(arch="test-arch", round=1)))
        sender.publish(HeldModel(0, 1, state, cid))
        assert wait_for(lambda: nodes[1].latest_of(0) is not None)
        held = receiver.latest(1, 0)
        assert (held.author, held.round, held.cid) == (0, 1, cid) and torch.equal(held.state["w"], state["w"])
        # round 2 announced with a blob that says round 1: refused, logged, round 1's model kept
        other = {"w": state["w"] + 1}
        wrong = store.add(encode_weights(other, WeightsMeta(arch="test-arch", round=1)))
        nodes[0].announce(2, wrong)
        assert wait_for(lambda: nodes[1].latest_of(0).round == 2)
        assert receiver.latest(1, 0).cid == cid
        assert any(a == "gossip-model-refused" and "says round 1" in f["detail"] for a, f in logs)
    finally:
        for node in nodes:
            node.stop()
