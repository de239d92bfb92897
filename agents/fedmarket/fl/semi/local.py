"""Local-only baseline: every client trains alone on its own data, from the shared initial model.

No paper to cite: it is the floor a personalised federated method must clear to mean anything
(as the personalised-FL literature reports it, e.g. Collins et al. 2021, FedRep, Table 1's
"Local Only"). Client i's round t is fl.training.train_local from its own previous model with
batch order fl.seeds.client_seed(seed, t, i), exactly the batches it would train on in the other
methods; nothing is exchanged, so its compute-time ratio is 100 %.
"""

from __future__ import annotations

from fedmarket.fl.params import State
from fedmarket.fl.seeds import client_seed
from fedmarket.fl.semi.engine import Setup
from fedmarket.fl.training import train_local


class LocalOnly:
    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.states: list[State] = [setup.initial_state] * setup.config.clients

    def step(self, time: float, client: int, round_number: int) -> None:
        s, c = self.setup, self.setup.config
        train = s.parts.clients[client].train
        config = c.train_config(client_seed(c.seed, round_number, client))
        self.states[client] = train_local(s.model, self.states[client], s.data.x[train], s.data.y[train], config, s.device)[0]

    def client_states(self) -> list[State]:
        return list(self.states)
