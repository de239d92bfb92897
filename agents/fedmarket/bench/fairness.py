"""`fedmarket bench fairness`: who gets paid, honest or dishonest trainers, under each utility function.

The market's incentive test (design §7), run without the chain. A pool of trainers on a split of a
dataset; `attack_share` of the seats attack, their kinds drawn in turn from `attacks` (the seats
rotate with the seed, so every attack meets several data sizes and a run with several seeds sees
every kind); the honest trainers' data quality varies, their share of clean labels falling
linearly from 100 % to `clean_min` (the rest random labels). `validators` validators, each with
its own random held-out slice that no trainer sees, score every update with the utility under
test (micro-units, as submitted on chain), and the round settles by the contract's rules
(docs/protocol.md): the update's utility is the clamped lower median of their scores, 0 without a
quorum (chain.protocol.utility_of); the trainers' pool of each round is paid in proportion to
max(u, 0), and a round in which nobody earned carries its pool to the next round's positive
trainers (what is still carried after the last round is burned, never returned to the buyer); an
update is poison-slashed when u < the poison threshold AND two thirds of all committee seats
scored it below the threshold (3 * below >= 2 * committee size, chain.protocol.poison_slashed);
the aggregator publishes the FedAvg of the updates with u > 0 (the previous model carries over
when none is accepted): a utility that accepts poison also pays for its consequences in the
later rounds, as in the market.
Slashed stakes are not modelled: the figures are shares of the trainers' pool (the budget), and
the contract hands slashed stakes to the same positive trainers in the same proportion.

What each validator knows besides the round's updates is what the chain makes public: the
earlier global models and the previous round's revealed updates (fl.utility.PublicPast).

The attacks (fl.utility.attacks): free ride, momentum free ride (w + (w - w_prev)), stale copy
(the previous round's best-scored update re-applied), copycat (a sybil's second seat: another
seat's update plus 1e-3 relative noise, revealed after it), Gaussian noise (as large as an honest
update), label flip, sign flip, x10 scale, ALIE (the colluding seats of the run send the mean of
their own trained updates plus one standard deviation), lazy (trains on 10 % of its data and
claims all of it).

The clean run beside each run: the same market without its attackers (the honest seats alone),
every update aggregated: the accuracy the attacked market is measured against. Reported per utility and
role (fairness_report): pool share, fraction accepted / slashed, score range; final accuracy
against the clean run; the Spearman correlation of honest pay with clean-sample count; the
issue's targets met or missed. The winner (fairness_report.RANKING) has the largest honest share,
then the smallest total share of the attackers, then meets the most targets; it should be
fl.utility.DEFAULT_UTILITY.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from fedmarket.bench import machine_facts
from fedmarket.bench.fairness_report import HONEST, merge_reports, percent, summarise, to_markdown, winner
from fedmarket.chain.protocol import DEFAULT_POISON_THRESHOLD
from fedmarket.errors import FedmarketError
from fedmarket.fl.learning import Learning

NAME = "fairness"
# One entry per attacking seat kind, in the order seats are dealt; ALIE twice: it needs colluders.
ATTACK_ROLES = ("free_ride", "momentum_free_ride", "stale_copy", "copycat", "gaussian_noise", "label_flip", "sign_flip", "scale", "alie", "lazy")
SEAT_CYCLE = ("free_ride", "momentum_free_ride", "stale_copy", "copycat", "gaussian_noise", "label_flip", "sign_flip", "scale", "alie", "alie", "lazy")
CHAIN_POISON_THRESHOLD = DEFAULT_POISON_THRESHOLD / 1_000_000  # ModelParams' default poison_threshold (micro-units), in utility units
SCALE_FACTOR = 10.0
LAZY_SHARE = 0.1
ALIE_Z = 1.0
COPY_NOISE = 1e-3
PUBLIC_MODELS = 3  # earlier global models a validator reads (their steps span any extrapolation of them)
# The seed protocol's lr 0.005 and a 10x larger one: the utilities behave differently at each.
DEFAULT_SCENARIOS = "mlp:0.05,mlp:0.005"

__all__ = [
    "ATTACK_ROLES",
    "DEFAULT_SCENARIOS",
    "HONEST",
    "NAME",
    "FairnessConfig",
    "merge_reports",
    "parse_scenarios",
    "percent",
    "run",
    "summarise",
    "to_markdown",
    "winner",
]


@dataclass(frozen=True)
class FairnessConfig(Learning):
    """One fairness scenario: the learning settings (an MLP at lr 0.05 on digits, Dir(0.3)) and
    the market's. The defaults finish in minutes on 2 CPU cores; the issue's full benchmark is
    `--dataset mnist --scenarios cnn:0.005 --partitions dir:0.1,pat:2 --clients 20 --rounds 10
    --seeds 0,1,2 --validators 3` (the seed protocol's batch 10 and 1 epoch are the defaults)."""

    partition: str = "dir:0.3"
    model: str = "mlp"
    lr: float = 0.05
    clients: int = 20
    rounds: int = 8
    seeds: tuple[int, ...] = (0, 1, 2)  # one run per seed, with `seed` set to it
    validators: int = 3
    validator_samples: int = 200
    utilities: tuple[str, ...] = ()  # empty: every registered utility
    attacks: tuple[str, ...] = SEAT_CYCLE
    attack_share: float = 0.3
    clean_min: float = 0.2  # the dirtiest honest trainer's share of clean labels
    poison_threshold: float = CHAIN_POISON_THRESHOLD
    device: str = "cpu"
    # Small models train fastest on one CPU thread; on a busy machine torch's thread pool
    # otherwise spins and a run takes 10x longer.
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        """The report's settings, by the names fairness.json has always used (arch: the model)."""
        out = asdict(self)
        out["arch"] = out.pop("model")
        del out["seed"]  # each run's is one of `seeds`
        return out


@dataclass
class RoundLog:
    round: int
    scores: list[float]  # each seat's utility (the contract's lower median of the committee's scores)
    paid: list[float]  # in units of one round's trainer pool (a carried pool adds to it)
    accepted: int
    slashed: list[bool]  # poison-slashed by the contract's rule


@dataclass
class RunLog:
    utility: str
    seed: int
    roles: list[str]
    samples: list[int]
    clean_samples: list[int]
    rounds: list[RoundLog] = field(default_factory=list)
    burned: float = 0.0  # trainer pools still carried after the last round (nobody ever earned them)
    final_accuracy: float = float("nan")
    clean_accuracy: float = float("nan")
    wall_s: float = 0.0


def parse_scenarios(text: str) -> list[tuple[str, float]]:
    """ "mlp:0.05,cnn:0.005" -> [("mlp", 0.05), ("cnn", 0.005)]."""
    scenarios = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        model, _, lr = item.partition(":")
        try:
            scenarios.append((model, float(lr)))
        except ValueError:
            raise FedmarketError(f"bad scenario {item!r}; write MODEL:LR, e.g. mlp:0.05") from None
    if not scenarios:
        raise FedmarketError("give at least one MODEL:LR scenario")
    return scenarios


def assign_roles(clients: int, attacks: tuple[str, ...], seed: int, share: float = 0.3) -> list[str]:
    """round(share * clients) attacking seats, their kinds dealt from `attacks` starting at
    seed * seats (so successive seeds see the next kinds), the rest honest, rotated by `seed` so
    attackers get different data."""
    seats = round(share * clients) if attacks else 0
    if seats * 2 >= clients:
        raise FedmarketError(f"{clients} trainers cannot hold {seats} attackers and an honest majority")
    start = seed * seats
    kinds = [attacks[(start + j) % len(attacks)] for j in range(seats)]
    roles = [HONEST] * (clients - seats) + kinds
    shift = seed % clients
    return roles[shift:] + roles[:shift]


def clean_shares(roles: list[str], clean_min: float) -> list[float]:
    """Each seat's share of clean labels: honest seats from 1.0 down to `clean_min` in seat order; attackers 1.0."""
    honest = [i for i, role in enumerate(roles) if role == HONEST]
    shares = [1.0] * len(roles)
    for k, i in enumerate(honest):
        shares[i] = 1.0 - (1.0 - clean_min) * (k / max(1, len(honest) - 1))
    return shares


def pay_shares(scores: list[float]) -> list[float]:
    """Each trainer's share of the pool: max(u, 0) / sum max(u, 0); all 0 when nobody earned."""
    positive = [max(s, 0.0) for s in scores]
    total = sum(positive)
    return [p / total if total > 0 else 0.0 for p in positive]


def settle_pool(scores: list[float], carried: float) -> tuple[list[float], float]:
    """One round's trainer pool (1) and the carry of earlier rounds paid as the contract pays them:
    in proportion to max(u, 0); when nobody earned, all of it is carried to the next round (every
    seat revealed). Returns (pay per seat in pools, the carry after the round)."""
    shares = pay_shares(scores)
    if not any(shares):
        return shares, carried + 1.0
    return [(1.0 + carried) * p for p in shares], 0.0


def copy_source(roles: list[str], i: int) -> int:
    """The seat a copycat copies: the nearest honest seat before it (cyclically)."""
    n = len(roles)
    for back in range(1, n):
        j = (i - back) % n
        if roles[j] == HONEST:
            return j
    raise FedmarketError("a copycat needs an honest seat to copy")


def run_market(config: FairnessConfig, utility: str, dataset: Any) -> RunLog:
    """`config.rounds` market rounds with one utility, seeded by `config.seed`; every score,
    payment and the final accuracy (the clean run's is clean_accuracy's)."""
    # Heavy imports here, not at module level: `fedmarket --help` stays fast.
    from fedmarket.chain.protocol import poison_slashed, utility_of
    from fedmarket.fl.seeds import fairness_noise_seed
    from fedmarket.fl.utility import MICRO, PublicPast, ScoringRequest, Update, ValidationData, get_utility
    from fedmarket.fl.utility import attacks as atk

    started = time.perf_counter()
    seed = config.seed
    spec, pool, slices, parts, roles, labels, log = _setup(config, utility, dataset)
    validation = [ValidationData(dataset.x[s], dataset.y[s]) for s in slices]
    samples = log.samples
    score = get_utility(utility)
    market = _Market(config, spec, dataset, pool, parts, labels)
    past: list[Any] = []  # earlier global models, newest first
    previous_updates: list[tuple[Any, Any]] = []
    previous_scores: list[float] = []
    carried = 0.0  # trainer pools nobody earned yet (the contract's trainer carry)
    for r in range(1, config.rounds + 1):
        g = market.global_state
        trained = market.train_round(r, roles)
        updates: list[Update] = []
        colluders = [trained[i] for i, role in enumerate(roles) if role == "alie"]
        for i, role in enumerate(roles):
            noise_seed = fairness_noise_seed(seed, r, i)
            if role in ("free_ride", "momentum_free_ride", "stale_copy"):
                state = _free_ride_kind(role, g, past, previous_updates, previous_scores, roles, atk)
            elif role == "copycat":
                state = atk.near_copy(g, trained[copy_source(roles, i)], noise_seed, COPY_NOISE)
            elif role == "gaussian_noise":  # noise as large as the update it replaces
                state = atk.gaussian_noise(g, atk.update_rms(g, trained[i]), noise_seed)
            elif role == "sign_flip":
                state = atk.sign_flip(g, trained[i])
            elif role == "scale":
                state = atk.scale(g, trained[i], SCALE_FACTOR)
            elif role == "alie":
                state = atk.alie(g, colluders, ALIE_Z)
            else:  # honest, label flip, lazy: what they trained
                state = trained[i]
            updates.append(Update(state, samples[i]))
        # Reveal order: every copycat after the seat it copies (a sybil reveals its copy second).
        reveal = [i for i, role in enumerate(roles) if role != "copycat"] + [i for i, role in enumerate(roles) if role == "copycat"]
        public = PublicPast(tuple(past[:PUBLIC_MODELS]), tuple(previous_updates))
        per_validator = [
            score(
                ScoringRequest(
                    g, [updates[i] for i in reveal], data, spec, seed=_utility_seed(seed, r, v), train=market.train, device=config.device, public=public
                )
            )
            for v, data in enumerate(validation)
        ]
        committee = len(per_validator)
        threshold = round(config.poison_threshold * MICRO)
        scores = [0.0] * len(roles)
        slashed = [False] * len(roles)
        for k, i in enumerate(reveal):
            given = [s[k] for s in per_validator]
            scores[i] = utility_of(given, committee) / MICRO
            slashed[i] = poison_slashed(given, committee, threshold)
        accepted = [i for i, s in enumerate(scores) if s > 0]
        past = [g, *past][:PUBLIC_MODELS]
        previous_updates = [(u.state, g) for u in updates]
        previous_scores = scores
        market.aggregate([updates[i] for i in accepted])
        paid, carried = settle_pool(scores, carried)
        log.rounds.append(RoundLog(r, scores, paid, len(accepted), slashed))
    log.burned = carried
    log.final_accuracy = market.accuracy()
    log.wall_s = time.perf_counter() - started
    return log


def _setup(config: FairnessConfig, utility: str, dataset: Any) -> tuple[Any, Any, list[Any], Any, list[str], list[Any], RunLog]:
    """One run's fixed facts: model spec, trainer pool, validator slices, split, roles, labels, its log."""
    import numpy as np

    from fedmarket.fl.models import model_spec_for
    from fedmarket.fl.partition import partition
    from fedmarket.fl.seeds import fairness_holdout_seed, fairness_noise_seed
    from fedmarket.fl.utility import attacks as atk

    seed = config.seed
    order = np.random.default_rng(fairness_holdout_seed(seed)).permutation(len(dataset.y))
    pool = order[config.validators * config.validator_samples :]
    slices = [order[v * config.validator_samples : (v + 1) * config.validator_samples] for v in range(config.validators)]
    parts = partition(dataset.y[pool], config.clients, config.partition, seed)
    roles = assign_roles(config.clients, config.attacks, seed, config.attack_share)
    quality = clean_shares(roles, config.clean_min)
    labels = []  # each seat's training labels: a share of them random for a dirty honest trainer
    for i, client in enumerate(parts.clients):
        y = dataset.y[pool[client.train]]
        dirty = 1.0 - quality[i]
        labels.append(y if dirty == 0 else atk.random_labels(y, dataset.num_classes, dirty, fairness_noise_seed(seed, 0, i)))
    samples = [len(pool[c.train]) for c in parts.clients]
    log = RunLog(utility, seed, roles, samples, [round(n * q) for n, q in zip(samples, quality)])
    return model_spec_for(dataset, config.model), pool, slices, parts, roles, labels, log


def clean_accuracy(config: FairnessConfig, dataset: Any) -> float:
    """The run without its attackers: the honest seats alone (with their own labels, dirty ones
    included), every update aggregated: the final accuracy the attacked run is measured against."""
    from fedmarket.fl.utility import Update

    spec, pool, _slices, parts, roles, labels, _log = _setup(config, "", dataset)
    market = _Market(config, spec, dataset, pool, parts, labels)
    # Attack seats are skipped by train_round like free riders: only the honest ones train.
    seats = [role if role == HONEST else "free_ride" for role in roles]
    for r in range(1, config.rounds + 1):
        trained = market.train_round(r, seats)
        market.aggregate([Update(trained[i], len(labels[i])) for i in sorted(trained)])
    return market.accuracy()


def _free_ride_kind(
    role: str, g: Any, past: list[Any], previous_updates: list[tuple[Any, Any]], previous_scores: list[float], roles: list[str], atk: Any
) -> Any:
    """The updates built from public data alone: the global model, its last step again, or the
    previous round's best-scored honest update re-applied (the global model in round 1)."""
    if role == "momentum_free_ride" and past:
        return atk.momentum_free_ride(g, past[0])
    if role == "stale_copy" and previous_updates:
        best = max((i for i, r in enumerate(roles) if r == HONEST), key=lambda i: previous_scores[i])
        return atk.stale_copy(g, *previous_updates[best])
    return atk.free_ride(g)


def _utility_seed(seed: int, r: int, v: int) -> int:
    from fedmarket.fl.seeds import validator_seed

    return validator_seed(seed, r, v)


class _Market:
    """The learning side of one run: the global model, each seat's local training, FedAvg."""

    def __init__(self, config: FairnessConfig, spec: Any, dataset: Any, pool: Any, parts: Any, labels: list[Any]) -> None:
        from fedmarket.fl.aggregation import get_rule
        from fedmarket.fl.seeds import initial_model_seed

        self.config, self.spec, self.dataset, self.pool, self.parts, self.labels = config, spec, dataset, pool, parts, labels
        self.rule = get_rule(config.aggregation)
        self.model = spec.build()
        self.global_state = spec.init_state(initial_model_seed(config.seed))
        self.train = config.train_config(0)

    def train_round(self, r: int, roles: list[str]) -> dict[int, Any]:
        """Every seat's local update from the global model (free riders train nothing)."""
        from fedmarket.fl.seeds import client_seed
        from fedmarket.fl.training import train_local
        from fedmarket.fl.utility import attacks as atk

        trained: dict[int, Any] = {}
        for i, client in enumerate(self.parts.clients):
            if roles[i] in ("free_ride", "momentum_free_ride", "stale_copy"):
                continue
            x, y = self.dataset.x[self.pool[client.train]], self.labels[i]
            if roles[i] == "lazy":  # the first 10 % of its data, claiming all of it
                keep = max(1, round(LAZY_SHARE * len(y)))
                x, y = x[:keep], y[:keep]
            if roles[i] == "label_flip":
                y = atk.flipped_labels(y, self.spec.num_outputs)
            trained[i], _n, _loss = train_local(
                self.model, self.global_state, x, y, self.config.train_config(client_seed(self.config.seed, r, i)), self.config.device
            )
        return trained

    def aggregate(self, updates: list[Any]) -> None:
        from fedmarket.fl.params import canonical

        if updates:
            self.global_state = canonical(self.rule([u.state for u in updates], [u.num_samples for u in updates]))

    def accuracy(self) -> float:
        """The global model's accuracy on every client's local test split."""
        import numpy as np
        import torch

        from fedmarket.fl.evaluation import evaluate

        test = np.concatenate([self.pool[c.test] for c in self.parts.clients])
        with torch.no_grad():
            metrics = evaluate(self.model, self.global_state, self.dataset.x[test], self.dataset.y[test], self.dataset.task, self.config.device)
        return float(metrics.accuracy if metrics.accuracy is not None else float("nan"))


def run(config: FairnessConfig, on_result: Callable[[str, dict[str, Any]], None] = lambda _name, _summary: None) -> dict[str, Any]:
    """Every utility of `config` over every seed; the report behind fairness.json."""
    import torch

    from fedmarket.fl.datasets import load_dataset
    from fedmarket.fl.utility import DEFAULT_UTILITY, UTILITIES

    dataset = load_dataset(config.dataset)
    load_before = os.getloadavg()
    summaries: dict[str, dict[str, Any]] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        clean = {seed: clean_accuracy(replace(config, seed=seed), dataset) for seed in config.seeds}
        for name in config.utilities or UTILITIES:
            logs = [run_market(replace(config, seed=seed), name, dataset) for seed in config.seeds]
            for log in logs:
                log.clean_accuracy = clean[log.seed]
            summaries[name] = summarise(logs)
            # Roles and sample counts are fixed for a run: stored once, scores round by round.
            summaries[name]["runs"] = [
                {
                    "seed": log.seed,
                    "final_accuracy": log.final_accuracy,
                    "clean_accuracy": log.clean_accuracy,
                    "roles": log.roles,
                    "samples": log.samples,
                    "clean_samples": log.clean_samples,
                    "scores": [r.scores for r in log.rounds],
                    "slashed": [[i for i, hit in enumerate(r.slashed) if hit] for r in log.rounds],
                    "accepted": [r.accepted for r in log.rounds],
                }
                for log in logs
            ]
            on_result(name, summaries[name])
    finally:
        torch.set_num_threads(threads)
    return {
        "benchmark": NAME,
        "settings": config.to_dict(),
        "machine": {**machine_facts(), "load_average_before": list(load_before), "load_average_after": list(os.getloadavg())},
        "default_utility": DEFAULT_UTILITY,
        "winner": winner(summaries),
        "utilities": summaries,
    }
