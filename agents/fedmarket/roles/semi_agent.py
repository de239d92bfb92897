"""A client of a semi task as its own process (`fedmarket agent semi-trainer`, docs/semi.md).

    join (stake) while the task is Open -> read the spec (the simulation config and the trust
    graph) from the store, load the data, warm torch up -> wait until the task is Running ->
    serve and send gossip on loopback
    (roles.gossip) -> run `rounds` SemiTrainer rounds back to back, never waiting for anyone ->
    store the final model -> keep forwarding gossip until the task is Settled -> withdraw.

A restarted process resumes after the rounds it has on chain (SemiTrainer.resume).

The task spec is a JSON document in the store (`semi_spec_bytes`): the fl.semi config every
client derives its data split, model and seeds from, the buyer's terms, and the trust graph's
edges (clients by join order), so every process draws the same graph. A straggler (fl.semi's
choice of clients for the seed) runs `slowdown` times slower in wall-clock time.

Every action is one JSON line in the agent's log (round, gas, seconds, gossip sent / accepted /
refused with the reason); `final` carries the final model's CID and the busy and existence
seconds the devnet's compute-time ratio is made of.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmarket.chain.semi_client import SemiMarketClient, SemiStatus
from fedmarket.errors import FedmarketError
from fedmarket.fl.params import canonical
from fedmarket.fl.semi.config import AsyncConfig
from fedmarket.fl.semi.trust import TrustGraph, from_edges, trust_graph
from fedmarket.storage.cid import digest_to_cid
from fedmarket.storage.weights import WeightsMeta, encode_weights

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from fedmarket.storage.store import BlobStore

SPEC_MAX_BYTES = 1 << 20


def semi_spec_bytes(config: AsyncConfig, terms: dict[str, Any]) -> bytes:
    """The task spec document the buyer stores: config, terms and the trust graph's edges."""
    graph = trust_graph(config.trust, config.clients, config.seed)
    return json.dumps({"mode": "semi", "config": config.to_dict(), "terms": terms, "trust_graph": graph.to_dict()}, sort_keys=True).encode()


def read_semi_spec(store: BlobStore, spec_digest: bytes) -> tuple[AsyncConfig, TrustGraph]:
    """The config and trust graph of a posted semi task's spec (fetched and checked by CID)."""
    from fedmarket.storage.cid import cid_of

    cid = digest_to_cid(spec_digest)
    blob = store.get(cid, max_size=SPEC_MAX_BYTES)
    if cid_of(blob) != cid:
        raise FedmarketError(f"the store returned a spec that is not {cid}")
    doc = json.loads(blob)
    if doc.get("mode") != "semi":
        raise FedmarketError(f"task spec {cid} is not a semi task")
    values = dict(doc["config"])
    values["data_dir"] = Path(values["data_dir"]) if values.get("data_dir") else None
    config = AsyncConfig(**values)
    g = doc["trust_graph"]
    return config, from_edges(g["name"], int(g["clients"]), [(int(a), int(b)) for a, b in g["edges"]])


@dataclass(frozen=True)
class SemiAgentOptions:
    join: bool = True
    withdraw: bool = True
    poll_s: float = 0.25
    settle_timeout_s: float = 900.0  # how long to keep forwarding after the last round
    crash_after: int | None = None  # fault injection: SIGKILL itself right after recording this round


class SemiAgent:
    """One semi client process: the steps of the module docstring."""

    def __init__(
        self, market: SemiMarketClient, account: LocalAccount, task_id: int, store: BlobStore, endpoints: Path, log: Callable[[dict[str, Any]], None],
        name: str, options: SemiAgentOptions = SemiAgentOptions(),
    ) -> None:  # fmt: skip
        self.market, self.account, self.task_id, self.store, self.endpoints = market, account, task_id, store, Path(endpoints)
        self.options, self.name, self._write = options, name, log

    def log(self, action: str, round: int = 0, **fields: Any) -> None:  # noqa: A002 - the log's field name
        self._write({"t": round_time(), "agent": self.name, "round": round, "action": action, **fields})

    def run(self) -> None:
        from fedmarket.fl.semi.engine import make_setup
        from fedmarket.roles.gossip import GossipNode, GossipPeers, LoopbackGossip
        from fedmarket.roles.semi_trainer import SemiTrainer, weights_check_for

        me = self.account.address
        task = self.market.get_task(self.task_id)
        self._join(task.state.status, me)
        config, graph = read_semi_spec(self.store, task.params.spec_digest)
        setup = make_setup(config)
        warm_up(setup)
        self._wait_for(lambda s: s != SemiStatus.OPEN, "the task to start")
        task = self.market.get_task(self.task_id)
        if task.state.status != SemiStatus.RUNNING:  # settled or cancelled while this process was down
            self._withdraw(me)
            self.log("exit", detail=f"task {self.task_id} is {task.state.status.name}")
            return
        participants = tuple(c.account for c in self.market.clients(self.task_id))
        index = participants.index(me)
        straggler = index in setup.stragglers
        slow = f" (straggler x{config.slowdown:g})" if straggler else ""
        self.log("start", detail=f"client {index} of {len(participants)}{slow}", index=index)

        peers = GossipPeers(self.market.address, self.task_id, me, participants, graph)
        node = GossipNode(peers, self.account, self.endpoints, lambda action, **f: self.log(action, **f)).start()
        try:
            gossip = LoopbackGossip(node, self.store, weights_check_for(setup))
            trainer = SemiTrainer(index, self.market, self.task_id, setup, self.store, gossip, slowdown=config.slowdown if straggler else 1.0)
            if trainer.resume():
                self.log("resume", round=trainer.round, detail=f"continuing after round {trainer.round}, from its last upload")
            self._train(trainer, task.params.rounds - trainer.round)
            self._wait_for(lambda s: s in (SemiStatus.SETTLED, SemiStatus.CANCELLED), "the settlement", self.options.settle_timeout_s)
            self.log("gossip-counts", **node.counts)
        finally:
            node.stop()
        self._withdraw(me)
        self.log("done", detail="task settled")

    def _withdraw(self, me: str) -> None:
        if self.options.withdraw and self.market.credit(me) > 0:
            result = self.market.withdraw()
            self.log("withdraw", tx=result.tx_hash, gas=result.gas_used)

    def _join(self, status: SemiStatus, me: str) -> None:
        if any(c.account == me for c in self.market.clients(self.task_id)):
            return
        if not self.options.join or status != SemiStatus.OPEN:
            raise FedmarketError(f"{me} is not a client of task {self.task_id} (status {status.name}); pass --join while it is open")
        result = self.market.join_task(self.task_id)
        self.log("join", tx=result.tx_hash, gas=result.gas_used)

    def _train(self, trainer: Any, rounds: int) -> None:
        """The rounds back to back; `final` logs the device's busy seconds (training, a straggler's
        slowdown included), working seconds (whole rounds) and existence (first round to last)."""
        began = time.monotonic()
        for _ in range(rounds):
            outcome = trainer.step()
            self.log("round", round=outcome.round, gas=outcome.gas_used, **{k: v for k, v in asdict(outcome).items() if k not in ("round", "gas_used")})
            if outcome.round == self.options.crash_after:
                self.log("fault", round=outcome.round, detail="SIGKILL after recording the round")
                os.kill(os.getpid(), signal.SIGKILL)
        final = encode_weights(canonical(trainer.state), WeightsMeta(arch=trainer.arch, round=trainer.round))
        busy = sum(o.train_s for o in trainer.outcomes)
        working = sum(o.train_s + o.chain_s + o.storage_s for o in trainer.outcomes)
        self.log("final", round=trainer.round, cid=self.store.add(final), busy_s=busy, working_s=working, exists_s=time.monotonic() - began)

    def _wait_for(self, done: Callable[[SemiStatus], bool], what: str, timeout_s: float = 600.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done(self.market.get_task(self.task_id).state.status):
            if time.monotonic() > deadline:
                raise FedmarketError(f"gave up waiting for {what} of task {self.task_id} after {timeout_s:.0f} s")
            time.sleep(self.options.poll_s)


def warm_up(setup: Any) -> None:
    """One throwaway training step before the task starts: torch's first pass costs seconds of
    one-off set-up, which would count as round 1's compute (and be multiplied for a straggler)."""
    from fedmarket.fl.training import train_local

    c = setup.config
    batch = setup.parts.clients[0].train[: c.batch_size]
    train_local(setup.model, setup.initial_state, setup.data.x[batch], setup.data.y[batch], c.train_config(0), setup.device)


def round_time() -> float:
    return round(time.time(), 3)
