"""The elected-committee simulation: `fedmarket sim --committee elected`, without a chain.

The numerical reference for a market task with `committee: elected` (CMFL, BlockFL; the rules
are fl.committee's). N participants hold the partition's clients. Every round r:

1. the committee C_r (round 1: drawn from the seed; later: elected) does not train; every other
   participant (seat order) trains from the global model as fl.sim's clients do, with seed
   fl.seeds.client_seed(seed, r, seat) on its own train split;
2. each member scores the trainers' updates with the task's utility (cmfl_distance by default)
   on its own train split, seeded as it would train (client_seed(seed, r, member)): for
   cmfl_distance the member's reference step is exactly the update it would have trained;
3. a trainer's utility is the contract's rule over the members' scores (fl.committee.utility_of);
4. as the market's aggregator does, the updates with a positive utility are accepted and the
   task's rule aggregates them in seat order with sample-count weights and the utilities as
   scores (cmfl_s1 / cmfl_s2 select among them, fl.aggregation.selection); with none accepted
   the previous global model carries over, file and CID (the chain keeps it);
5. the next committee is elected from the trainers' utilities (fl.committee.elect).

Each member's utility request carries what was public before the round (the PUBLIC_MODELS
earlier global models and the previous round's updates), as a market validator's does. The same
seed gives the same committees, scores and global-model CIDs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from fedmarket.errors import FedmarketError
from fedmarket.fl.aggregation import get_scored_rule
from fedmarket.fl.committee import check_committee, elect, first_committee, trainers_of, utility_of
from fedmarket.fl.datasets import Dataset, dataset_named
from fedmarket.fl.evaluation import evaluate_clients, weighted_overall
from fedmarket.fl.learning import Learning
from fedmarket.fl.models import ModelSpec, model_spec_for
from fedmarket.fl.params import State, canonical
from fedmarket.fl.partition import market_partition
from fedmarket.fl.seeds import client_seed, initial_model_seed
from fedmarket.fl.sim import RoundRecord, SimConfig, SimResult, global_model_cid, state_digest
from fedmarket.fl.taskspec import check_learning
from fedmarket.fl.training import resolve_device, train_local
from fedmarket.fl.utility import PublicPast, ScoringRequest, Update, UtilityFunction, ValidationData, get_utility

ELECTED_UTILITY = "cmfl_distance"
ELECTED_AGGREGATION = "cmfl_s1"
# The fields of SimConfig an elected run reads: the learning settings and these.
ELECTED_RUN_FIELDS = {f.name for f in fields(Learning)} | {"clients", "rounds", "device", "data_dir", "holdout"}
PUBLIC_MODELS = 3  # earlier global models a member reads, as a market validator does (roles.agent)


@dataclass(frozen=True)
class ElectedConfig(SimConfig):
    """A simulation whose `clients` both train and serve on an elected committee of `committee_size`."""

    aggregation: str = ELECTED_AGGREGATION
    committee_size: int = 3
    utility: str = ELECTED_UTILITY
    # Round 1's committee when given (e.g. the one a chain drew); otherwise drawn from the seed.
    first_committee: tuple[int, ...] | None = None


@dataclass(frozen=True)
class CommitteeRound:
    """Who served and trained in `round`, what the committee scored, and what was aggregated.

    scores[j][t] is member committee[j]'s score (micro-units) of trainer trainers[t]'s update;
    utilities[t] the contract's utility of that update; accepted the trainers with a positive
    utility (what the rule aggregated, or selected from); next_committee the election's result.
    """

    round: int
    committee: tuple[int, ...]
    trainers: tuple[int, ...]
    scores: tuple[tuple[int, ...], ...]
    utilities: tuple[int, ...]
    accepted: tuple[int, ...]
    carried_over: bool
    next_committee: tuple[int, ...]
    global_cid: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "committee": list(self.committee),
            "trainers": list(self.trainers),
            "scores": {str(m): list(s) for m, s in zip(self.committee, self.scores)},
            "utilities": {str(t): u for t, u in zip(self.trainers, self.utilities)},
            "accepted": list(self.accepted),
            "carried_over": self.carried_over,
            "next_committee": list(self.next_committee),
            "global_cid": self.global_cid,
        }


@dataclass(frozen=True, eq=False)
class ElectedResult(SimResult):
    committees: tuple[CommitteeRound, ...] = ()  # committees[0] is round 1

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "committee": "elected", "committee_rounds": [c.to_dict() for c in self.committees]}


def check_elected(config: ElectedConfig) -> tuple[int, ...]:
    """Refuse a bad config before any work; return round 1's committee."""
    check_learning(config, scores=True)
    if config.rounds < 0 or config.holdout < 0:
        raise FedmarketError("rounds and holdout must be >= 0")
    # Every trainer trains in this process, one at a time (so the CIDs are the market's): the
    # sim's other run options (batched training, worker processes, client sampling) must be off.
    changed = [f.name for f in fields(SimConfig) if f.name not in ELECTED_RUN_FIELDS and getattr(config, f.name) != f.default]
    if changed:
        raise FedmarketError(f"an elected committee runs with {', '.join(changed)} at the default (every participant trains or serves, one at a time)")
    check_committee(config.clients, config.committee_size)
    get_utility(config.utility)
    resolve_device(config.device)
    if config.first_committee is None:
        return first_committee(config.clients, config.committee_size, config.seed)
    given = tuple(sorted(config.first_committee))
    if len(set(given)) != config.committee_size or not all(0 <= i < config.clients for i in given):
        raise FedmarketError(f"the first committee {list(config.first_committee)} is not {config.committee_size} distinct seats of 0..{config.clients - 1}")
    return given


def committee_scores(
    utility: UtilityFunction,
    config: ElectedConfig,
    round_number: int,
    member: int,
    global_state: State,
    updates: list[Update],
    data: ValidationData,
    spec: ModelSpec,
    public: PublicPast,
) -> tuple[int, ...]:
    """Member `member`'s scores of the round's updates: the task's utility on its own train split,
    seeded as the member would train (for cmfl_distance its step is the update it would send)."""
    request = ScoringRequest(
        global_state,
        updates,
        data,
        spec,
        seed=client_seed(config.seed, round_number, member),
        train=config.train_config(0),
        device=config.device,
        public=public,
    )
    return tuple(utility(request))


def run_elected(config: ElectedConfig, on_round: Callable[[RoundRecord], None] | None = None, dataset: Dataset | None = None) -> ElectedResult:
    """Run `config.rounds` rounds with an elected committee; call on_round after each."""
    committee = check_elected(config)
    device = resolve_device(config.device)
    data = dataset_named(config.dataset, config.data_dir, config.input_scaling, dataset)
    spec = model_spec_for(data, config.model)
    model = spec.build().to(device)
    aggregate = get_scored_rule(config.aggregation)
    utility = get_utility(config.utility)
    parts, _held = market_partition(data.y, config.clients, config.partition, config.seed, config.holdout)
    train_sets = [c.train for c in parts.clients]
    test_sets = [c.test for c in parts.clients]

    def record(round_number: int, state: State, train_loss: float | None, train_s: float, started: float, carried_over: bool = False) -> RoundRecord:
        per_client = evaluate_clients(model, state, data.x, data.y, test_sets, data.task, device)
        if carried_over:  # the chain keeps the previous global model: same file, same CID
            cid = records[-1].global_cid
        else:
            cid = global_model_cid(state, spec.id, round_number, records[-1].global_cid if records else None)
        entry = RoundRecord(round_number, weighted_overall(per_client), train_loss, state_digest(state), cid, train_s, time.perf_counter() - started)
        if on_round is not None:
            on_round(entry)
        return entry

    records: list[RoundRecord] = []
    started = time.perf_counter()
    global_state = spec.init_state(initial_model_seed(config.seed))
    records.append(record(0, global_state, None, 0.0, started))
    history: list[State] = []  # earlier global models, newest first
    previous: list[tuple[State, State]] = []  # the previous round's updates and their parent
    committees: list[CommitteeRound] = []
    for r in range(1, config.rounds + 1):
        started = time.perf_counter()
        trainers = trainers_of(config.clients, committee)
        updates = [
            train_local(model, global_state, data.x[train_sets[t]], data.y[train_sets[t]], config.train_config(client_seed(config.seed, r, t)), device)
            for t in trainers
        ]
        train_s = time.perf_counter() - started
        public = PublicPast(tuple(history[:PUBLIC_MODELS]), tuple(previous))
        revealed = [Update(state, n) for state, n, _ in updates]
        member_data = {m: ValidationData(data.x[train_sets[m]], data.y[train_sets[m]]) for m in committee}
        scores = [committee_scores(utility, config, r, m, global_state, revealed, member_data[m], spec, public) for m in committee]
        utilities = tuple(utility_of([s[t] for s in scores], len(committee)) for t in range(len(trainers)))
        accepted = [t for t, u in enumerate(utilities) if u > 0]
        parent = global_state
        if accepted:
            global_state = canonical(
                aggregate([revealed[t].state for t in accepted], [revealed[t].num_samples for t in accepted], [utilities[t] for t in accepted])
            )
        train_loss = float(sum(loss * n for _, n, loss in updates) / sum(n for _, n, _ in updates))
        entry = record(r, global_state, train_loss, train_s, started, carried_over=not accepted)
        records.append(entry)
        next_committee = elect(dict(zip(trainers, utilities)), committee, config.committee_size, config.clients)
        committees.append(
            CommitteeRound(
                r, committee, trainers, tuple(scores), utilities, tuple(trainers[t] for t in accepted), not accepted, next_committee, entry.global_cid
            )
        )
        history.insert(0, parent)
        previous = [(u.state, parent) for u in revealed]
        committee = next_committee
    return ElectedResult(config, spec.id, parts.summary(), tuple(records), global_state, str(device), tuple(committees))
