"""The seed paper's semi-centralised asynchronous federated learning, simulated on the virtual clock.

The seed paper: blockchain-assisted semi-centralised federated learning for IoT (no global model;
clients trust some peers, reach the others through the chain). Client C_i's round t, run when
the clock says C_i finished training (fl.semi.clock; nobody waits for anybody):

1. train its current model one local round on its own data (fl.training.train_local, batch order
   fl.seeds.client_seed(seed, t, i)), giving its new local model;
2. gossip it over the trust graph (fl.semi.gossip.flood): every client of C_i's connected trusted
   component has it at once;
3. upload it (an upload record: round, model digest); the chain makes it downloadable at the next
   multiple of `block_time` (at once when 0);
4. take the latest model of every other client: from gossip for the trusted component, else the
   latest upload visible on the chain, recording a download the first time an upload is fetched;
   a client with no model yet is left out;
5. score each held model, its own new one included, by its loss on one random batch of its own
   training data (fl.semi.loss_weights.score_batch, seed fl.seeds.score_batch_seed(seed, t, i));
   one score record per received model;
6. aggregate: w_j = softmax(-L_j / T)_j x (t - tau_j + 1)^-a, normalised (fl.semi.loss_weights),
   tau_j the round model j was trained in; the weighted average (float64, in client order:
   own model first, then the others by client id) is C_i's next model.

All clients start from the same initial model. The ablations switch step 6's loss factor or its
staleness factor to 1.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from fedmarket.fl.aggregation.states import check_states, weighted_average
from fedmarket.fl.params import State
from fedmarket.fl.seeds import client_seed, score_batch_seed
from fedmarket.fl.semi.engine import Setup
from fedmarket.fl.semi.gossip import components, flood
from fedmarket.fl.semi.loss_weights import batch_losses, mixing_weights, score_batch
from fedmarket.fl.semi.records import RecordLog
from fedmarket.fl.semi.staleness import lag
from fedmarket.fl.semi.trust import trust_graph
from fedmarket.fl.sim import state_digest
from fedmarket.fl.training import train_local


@dataclass(frozen=True, eq=False)
class Upload:
    record_id: int
    client: int
    round: int
    state: State
    visible_at: float  # virtual time from which the chain serves it


class SemiCentralised:
    def __init__(self, setup: Setup) -> None:
        c = setup.config
        self.setup = setup
        self.graph = trust_graph(c.trust, c.clients, c.seed)
        self.component = [frozenset(flood(self.graph, i)) for i in range(c.clients)]
        self.models: list[State] = [setup.initial_state] * c.clients
        self.gossiped: list[Upload | None] = [None] * c.clients  # latest model each client gossiped
        self.on_chain: list[Upload | None] = [None] * c.clients  # latest upload the chain serves
        self.pending: list[deque[Upload]] = [deque() for _ in range(c.clients)]  # not yet served
        self.fetched: list[set[int]] = [set() for _ in range(c.clients)]  # upload ids downloaded
        self.records = RecordLog()
        self.own_weights: list[float] = []
        self.models_held: list[int] = []

    def _visible_at(self, time: float) -> float:
        block = self.setup.config.block_time
        return time if block == 0 else math.ceil(time / block) * block

    def _served(self, client: int, time: float) -> Upload | None:
        """The latest upload of `client` the chain serves at `time`."""
        queue = self.pending[client]
        while queue and queue[0].visible_at <= time:
            self.on_chain[client] = queue.popleft()
        return self.on_chain[client]

    def _held_models(self, time: float, me: int) -> list[Upload]:
        """Step 4: the latest model of every other client, by gossip or from the chain."""
        held = []
        for other in range(self.setup.config.clients):
            if other == me:
                continue
            if other in self.component[me]:
                upload = self.gossiped[other]
            else:
                upload = self._served(other, time)
                if upload is not None and upload.record_id not in self.fetched[me]:
                    self.fetched[me].add(upload.record_id)
                    self.records.append("download", me, time, {"upload": upload.record_id})
            if upload is not None:
                held.append(upload)
        return held

    def step(self, time: float, client: int, round_number: int) -> None:
        s, c = self.setup, self.setup.config
        train = s.parts.clients[client].train
        config = c.train_config(client_seed(c.seed, round_number, client))
        trained = train_local(s.model, self.models[client], s.data.x[train], s.data.y[train], config, s.device)[0]
        record = self.records.append("upload", client, time, {"round": round_number, "model": state_digest(trained)})
        own = Upload(record.id, client, round_number, trained, self._visible_at(time))
        self.gossiped[client] = own
        # Serve what is visible by now before queueing: when every client is in everyone's trusted
        # component nobody downloads, and the queue would keep every upload of the run.
        self._served(client, time)
        self.pending[client].append(own)
        held = [own, *self._held_models(time, client)]
        batch = score_batch(train, c.batch_size, score_batch_seed(c.seed, round_number, client))
        losses = batch_losses(s.model, [u.state for u in held], s.data.x[batch], s.data.y[batch], s.device)
        for upload, loss in zip(held[1:], losses[1:]):
            self.records.append("score", client, time, {"upload": upload.record_id, "loss": loss})
        lags = [lag(round_number, u.round) for u in held]
        weights = mixing_weights(losses, lags, c.temperature, c.staleness_exponent, c.loss_weights, c.staleness)
        states = [u.state for u in held]
        self.models[client] = weighted_average(states, weights, check_states(states, weights))
        self.own_weights.append(weights[0])
        self.models_held.append(len(held))

    def client_states(self) -> list[State]:
        return list(self.models)

    def facts(self) -> dict:
        count = len(self.own_weights)
        return {
            "trust": {**self.graph.to_dict(), "components": [sorted(comp) for comp in components(self.graph)]},
            "semi": {
                "mean_own_weight": sum(self.own_weights) / count if count else None,
                "mean_models_held": sum(self.models_held) / count if count else None,
            },
        }
