"""FedAsync: the server mixes every arriving client model into the global one, weighted by staleness.

Xie, Koyejo and Gupta 2019, "Asynchronous Federated Optimization" (arXiv:1903.03934), Algorithm 1
without its proximal term: the server keeps the global model x and its version t. A client pulls
(x_tau, tau), trains one local round, and sends its model x_new back; on arrival the server sets

    alpha_t = alpha * s(t - tau),    x_t = (1 - alpha_t) x_{t-1} + alpha_t x_new,    t <- t + 1

with FedAsync's polynomial staleness s(t - tau) = (t - tau + 1)^-a (fl.semi.staleness; a = 0.5 and
alpha = 0.6 by default, values the paper's experiments use). The client then pulls the new global
model at once and trains again: nobody waits, so the compute-time ratio is 100 %. Every client's
model, for the per-client metrics, is the one global model (a centralised method). Staleness off
(the ablation knob) gives alpha_t = alpha.
"""

from __future__ import annotations

from fedmarket.fl.aggregation.states import check_states, weighted_average
from fedmarket.fl.params import State
from fedmarket.fl.seeds import client_seed
from fedmarket.fl.semi.engine import Setup
from fedmarket.fl.semi.staleness import lag, polynomial_staleness
from fedmarket.fl.training import train_local


def mix(global_state: State, client_state: State, alpha_t: float) -> State:
    """(1 - alpha_t) x_global + alpha_t x_client, float64 accumulation."""
    states, weights = [global_state, client_state], [1.0 - alpha_t, alpha_t]
    return weighted_average(states, weights, check_states(states, weights))


class FedAsync:
    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.global_state: State = setup.initial_state
        self.version = 0
        n = setup.config.clients
        self.pulled: list[tuple[State, int]] = [(setup.initial_state, 0)] * n  # (x_tau, tau) per client
        self.alphas: list[float] = []

    def step(self, time: float, client: int, round_number: int) -> None:
        s, c = self.setup, self.setup.config
        start, tau = self.pulled[client]
        train = s.parts.clients[client].train
        config = c.train_config(client_seed(c.seed, round_number, client))
        trained = train_local(s.model, start, s.data.x[train], s.data.y[train], config, s.device)[0]
        staleness = polynomial_staleness([lag(self.version, tau)], c.staleness_exponent)[0] if c.staleness else 1.0
        alpha_t = c.fedasync_alpha * staleness
        self.global_state = mix(self.global_state, trained, alpha_t)
        self.version += 1
        self.alphas.append(alpha_t)
        self.pulled[client] = (self.global_state, self.version)

    def client_states(self) -> list[State]:
        return [self.global_state] * self.setup.config.clients

    def facts(self) -> dict:
        return {"fedasync": {"server_versions": self.version, "mean_alpha": sum(self.alphas) / len(self.alphas) if self.alphas else None}}
