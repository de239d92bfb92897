"""A client of a semi task (docs/semi.md): fl.semi's client round, against the chain and the store.

Client C_i's round t, the steps of fl.semi.semi_centralised with real parts in place of the
simulation's shared lists:

1. train its current model one local round (the same batch-order seed as the simulation);
2. store the new model (canonical safetensors, CIDv0);
3. take the latest model of every other client: from gossip within the trusted component, else
   the author's latest upload on the chain (read from the contract's UploadRecord events), fetched
   from the store and verified against its CID, with a download record the first time;
4. score every held model by its loss on one random batch of its own training data;
5. record the round on chain in one transaction: the upload, the downloads and the scores; then
   gossip the new model to its trusted component (after the upload is mined, so that whoever
   scores it names an upload the contract knows);
6. aggregate with fl.semi's weights (softmax of negative losses x staleness), own model first,
   then the others by client id: the same float64 sum as the simulation, so the same bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from fedmarket.chain.semi_client import RECORD_EVENTS, UPLOAD, ScoreEntry, SemiMarketClient, UploadRef, loss_micro
from fedmarket.errors import FedmarketError
from fedmarket.fl.aggregation.states import check_states, weighted_average
from fedmarket.fl.params import State, canonical
from fedmarket.fl.seeds import client_seed, score_batch_seed
from fedmarket.fl.semi.engine import Setup
from fedmarket.fl.semi.gossip import flood
from fedmarket.fl.semi.loss_weights import batch_losses, mixing_weights, score_batch
from fedmarket.fl.semi.staleness import lag
from fedmarket.fl.semi.trust import TrustGraph
from fedmarket.fl.training import train_local
from fedmarket.storage.cid import cid_of, cid_to_digest, digest_to_cid
from fedmarket.storage.store import BlobStore
from fedmarket.storage.weights import WeightsMeta, decode_weights, encode_weights, expected_layout, max_weights_size


@dataclass(frozen=True, eq=False)
class HeldModel:
    """A client's model as another client holds it: author, the author's round, weights, CID."""

    author: int
    round: int
    state: State
    cid: str


@dataclass(frozen=True)
class WeightsCheck:
    """What a fetched model blob must be: this layout and architecture, at most `max_size` bytes."""

    layout: dict
    arch: str
    max_size: int


def fetch_verified(store: BlobStore, cid: str, round_number: int, check: WeightsCheck) -> State:
    """The weights stored under `cid`, size-bounded, checked against the CID, the expected layout
    and the round they claim to be; a mismatch is refused with the reason."""
    blob = store.get(cid, max_size=check.max_size)
    if cid_of(blob) != cid:
        raise FedmarketError(f"the store returned a blob that is not {cid} (announced as round {round_number})")
    state, meta = decode_weights(blob, check.layout, check.arch)
    if meta.round != round_number:
        raise FedmarketError(f"{cid} says round {meta.round}; it was announced as round {round_number}")
    return state


def weights_check_for(setup: Setup) -> WeightsCheck:
    """The check every model of this task's clients must pass (θ0's layout and architecture)."""
    arch = setup.spec.id
    return WeightsCheck(expected_layout(setup.initial_state), arch, max_weights_size(setup.initial_state, arch))


class Gossip(Protocol):
    """How a trainer reaches its trusted component: InProcessGossip here, roles.gossip over loopback."""

    def component(self, client: int) -> frozenset[int]: ...

    def publish(self, model: HeldModel) -> None: ...

    def latest(self, receiver: int, sender: int) -> HeldModel | None: ...


@dataclass
class InProcessGossip:
    """Gossip over the trust graph inside one process: a published model is flooded to every
    client of the sender's connected trusted component (fl.semi.gossip.flood), each keeping the
    latest model it received from each sender."""

    graph: TrustGraph
    inbox: list[dict[int, HeldModel]] = field(init=False)

    def __post_init__(self) -> None:
        self.inbox = [{} for _ in range(self.graph.num_clients)]

    def component(self, client: int) -> frozenset[int]:
        return frozenset(flood(self.graph, client))

    def publish(self, model: HeldModel) -> None:
        for receiver in flood(self.graph, model.author):
            if receiver != model.author:
                self.inbox[receiver][model.author] = model

    def latest(self, receiver: int, sender: int) -> HeldModel | None:
        return self.inbox[receiver].get(sender)


@dataclass(frozen=True)
class RoundOutcome:
    round: int
    gas_used: int
    downloads: int
    scores: int
    models_held: int
    train_s: float
    chain_s: float
    storage_s: float


class SemiTrainer:
    """Client `index` of semi task `task_id`, signing with `market`'s account."""

    def __init__(self, index: int, market: SemiMarketClient, task_id: int, setup: Setup, store: BlobStore, gossip: Gossip, *, slowdown: float = 1.0) -> None:
        """`slowdown` > 1 makes a process a straggler in wall-clock time: after training for t
        seconds it stays busy (sleeps) for t x (slowdown - 1) more, counted as training time."""
        self.index = index
        self.market = market
        self.task_id = task_id
        self.setup = setup
        self.store = store
        self.gossip = gossip
        self.component = gossip.component(index)
        self.state: State = setup.initial_state
        self.round = 0
        self.arch = setup.spec.id
        self.weights_check = weights_check_for(setup)
        self.slowdown = slowdown
        self.chain_uploads: dict[int, tuple[int, bytes]] = {}  # client (this one too) -> (round, digest) of its latest upload
        self.downloaded: dict[str, State] = {}  # CID -> verified weights fetched from the store
        self.next_block = market.deployment_block
        self.outcomes: list[RoundOutcome] = []

    def step(self) -> RoundOutcome:
        """Run the next round (module docstring) and return what it cost."""
        s, c, me = self.setup, self.setup.config, self.index
        round_number = self.round + 1
        started = time.perf_counter()
        train = s.parts.clients[me].train
        trained = train_local(s.model, self.state, s.data.x[train], s.data.y[train], c.train_config(client_seed(c.seed, round_number, me)), s.device)[0]
        if self.slowdown > 1:
            time.sleep((time.perf_counter() - started) * (self.slowdown - 1))
        train_s = time.perf_counter() - started

        started = time.perf_counter()
        blob = encode_weights(canonical(trained), WeightsMeta(arch=self.arch, round=round_number))
        cid = self.store.add(blob)
        own = HeldModel(me, round_number, trained, cid)
        held, fetched = self._held_models()
        storage_s = time.perf_counter() - started

        batch = score_batch(train, c.batch_size, score_batch_seed(c.seed, round_number, me))
        models = [own, *held]
        losses = batch_losses(s.model, [m.state for m in models], s.data.x[batch], s.data.y[batch], s.device)
        scores = [ScoreEntry(m.author, m.round, loss_micro(loss)) for m, loss in zip(held, losses[1:], strict=True)]

        started = time.perf_counter()
        result = self.market.record_round(self.task_id, round_number, cid_to_digest(cid), downloads=fetched, scores=scores)
        chain_s = time.perf_counter() - started
        # Gossip after the upload is on chain: a neighbour that scores this model names an upload
        # the contract already knows (gossip is faster than a transaction between processes).
        self.gossip.publish(own)

        lags = [lag(round_number, m.round) for m in models]
        weights = mixing_weights(losses, lags, c.temperature, c.staleness_exponent, c.loss_weights, c.staleness)
        states = [m.state for m in models]
        self.state = weighted_average(states, weights, check_states(states, weights))
        self.round = round_number
        outcome = RoundOutcome(round_number, result.gas_used, len(fetched), len(scores), len(models), train_s, chain_s, storage_s)
        self.outcomes.append(outcome)
        return outcome

    def resume(self) -> int:
        """A restarted client continues after the rounds it already recorded: its round counter
        from the chain, its model the one it uploaded last (the aggregate it made after that
        upload was never stored, so a resumed client mixes one round less). The rounds done."""
        done = self.market.clients(self.task_id)[self.index].rounds
        if done > self.round:
            self._read_uploads()
            round_number, digest = self.chain_uploads[self.index]
            if round_number != done:
                raise FedmarketError(f"client {self.index} has {done} rounds on chain but its latest upload event is round {round_number}")
            self.state = fetch_verified(self.store, digest_to_cid(digest), round_number, self.weights_check)
            self.round = done
        return self.round

    def _held_models(self) -> tuple[list[HeldModel], list[UploadRef]]:
        """Step 3: every other client's latest model by gossip or from the chain, in client order,
        and the uploads this round downloads for the first time."""
        self._read_uploads()
        held: list[HeldModel] = []
        fetched: list[UploadRef] = []
        for other in range(self.setup.config.clients):
            if other == self.index:
                continue
            if other in self.component:
                model = self.gossip.latest(self.index, other)
            else:
                model = self._from_chain(other, fetched)
            if model is not None:
                held.append(model)
        return held, fetched

    def _from_chain(self, author: int, fetched: list[UploadRef]) -> HeldModel | None:
        latest = self.chain_uploads.get(author)
        if latest is None:
            return None
        round_number, digest = latest
        cid = digest_to_cid(digest)
        state = self.downloaded.get(cid)
        if state is None:
            state = fetch_verified(self.store, cid, round_number, self.weights_check)
            self.downloaded[cid] = state
            fetched.append(UploadRef(author, round_number))
        return HeldModel(author, round_number, state, cid)

    def _read_uploads(self) -> None:
        """Fold the UploadRecord events of blocks not read yet into each author's latest upload."""
        head = int(self.market.w3.eth.block_number)
        if head < self.next_block:
            return
        events = self.market.logs(self.next_block)
        self.next_block = head + 1
        clients = {a.account: i for i, a in enumerate(self.market.clients(self.task_id))} if events else {}
        for event in events:
            if RECORD_EVENTS.get(event.name) != UPLOAD or int(event.args["taskId"]) != self.task_id:
                continue
            self.chain_uploads[clients[event.args["client"]]] = (int(event.args["round"]), bytes(event.args["modelDigest"]))
