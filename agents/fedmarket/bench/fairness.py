"""`fedmarket bench fairness`: who gets paid, honest or malicious trainers, under each utility function.

Scenario (the market's round without the chain): a pool of trainers on a Dir(alpha) split of a
dataset, some honest and one of each attack of fl.utility.attacks (free rider, Gaussian noise,
label flipping, sign flipping, x10 scaling); one validator holding a random held-out slice of the
dataset that no trainer sees. Every round each trainer trains from the global model (attackers
then replace or distort their update), the validator scores all updates with the utility under
test (micro-units, as submitted on chain), the trainers' 70 % of the round budget is paid in
proportion to max(u, 0) (nothing paid returns to the buyer), and the aggregator publishes the
FedAvg of the updates with u > 0 (the previous model carries over when none is accepted). So a
utility that accepts poison also pays for its consequences in the following rounds, as in the
market. Roles rotate over the trainers with the seed, so every attack meets several data sizes.

Reported per utility and role: the share of the trainer pool paid, the fraction of updates scored
> 0, < 0 (bad-slashed with a poison threshold of 0) and < -0.1 (the chain's default threshold),
the final global accuracy on every trainer's local test split, and whether the utility meets the
market's requirements: every honest update > 0, free riders exactly 0, noise and label flipping
together at most 1 % of the pool, every sign-flipped and scaled update < 0. The winner is the
utility that meets them with the largest honest share; it should be fl.utility.DEFAULT_UTILITY.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from fedmarket.bench import machine_facts, markdown_table
from fedmarket.errors import FedmarketError
from fedmarket.fl.learning import Learning

NAME = "fairness"
HONEST = "honest"
ATTACK_ROLES = ("free_ride", "gaussian_noise", "label_flip", "sign_flip", "scale")
CHAIN_POISON_THRESHOLD = -0.1  # ModelParams' default poison_threshold (-100_000 micro-units), in utility units
SCALE_FACTOR = 10.0
MAX_ATTACK_PAY = 0.01  # noise + label flipping together may take at most 1 % of the trainer pool
# The seed protocol's lr 0.005 and a 10x larger one: the utilities behave differently at each.
DEFAULT_SCENARIOS = "mlp:0.05,mlp:0.005"


@dataclass(frozen=True)
class FairnessConfig(Learning):
    """One fairness scenario: the learning settings (an MLP at lr 0.05 on digits, Dir(0.3)) and
    the market's; defaults finish in a few minutes on 2 CPU cores."""

    partition: str = "dir:0.3"
    model: str = "mlp"
    lr: float = 0.05
    clients: int = 10
    rounds: int = 8
    seeds: tuple[int, ...] = (0, 1, 2)  # one run per seed, with `seed` set to it
    validator_samples: int = 300
    utilities: tuple[str, ...] = ()  # empty: every registered utility
    attacks: tuple[str, ...] = ATTACK_ROLES
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
    roles: list[str]
    samples: list[int]
    scores: list[float]
    paid: list[float]  # share of this round's trainer pool
    accepted: int


@dataclass
class RunLog:
    utility: str
    seed: int
    rounds: list[RoundLog] = field(default_factory=list)
    final_accuracy: float = float("nan")
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


def assign_roles(clients: int, attacks: tuple[str, ...], seed: int) -> list[str]:
    """One trainer per attack, the rest honest, rotated by `seed` so attackers get different data."""
    if len(attacks) >= clients:
        raise FedmarketError(f"{clients} trainers cannot hold {len(attacks)} attackers and an honest majority")
    roles = [HONEST] * (clients - len(attacks)) + list(attacks)
    shift = seed % clients
    return roles[shift:] + roles[:shift]


def pay_shares(scores: list[float]) -> list[float]:
    """Each trainer's share of the pool: max(u, 0) / sum max(u, 0); all 0 when nobody earned."""
    positive = [max(s, 0.0) for s in scores]
    total = sum(positive)
    return [p / total if total > 0 else 0.0 for p in positive]


def run_market(config: FairnessConfig, utility: str, dataset: Any) -> RunLog:
    """`config.rounds` market rounds with one utility, seeded by `config.seed`; every score and payment."""
    # Heavy imports here, not at module level: `fedmarket --help` stays fast.
    import numpy as np
    import torch

    from fedmarket.fl.aggregation import get_rule
    from fedmarket.fl.evaluation import evaluate
    from fedmarket.fl.models import model_spec_for
    from fedmarket.fl.params import canonical
    from fedmarket.fl.partition import partition
    from fedmarket.fl.seeds import client_seed, fairness_holdout_seed, fairness_noise_seed, fairness_utility_seed, initial_model_seed
    from fedmarket.fl.training import train_local
    from fedmarket.fl.utility import MICRO, Update, ValidationData, get_utility
    from fedmarket.fl.utility import attacks as atk

    started = time.perf_counter()
    seed = config.seed
    order = np.random.default_rng(fairness_holdout_seed(seed)).permutation(len(dataset.y))
    held_out, pool = order[: config.validator_samples], order[config.validator_samples :]
    parts = partition(dataset.y[pool], config.clients, config.partition, seed)
    roles = assign_roles(config.clients, config.attacks, seed)
    spec = model_spec_for(dataset, config.model)
    validation = ValidationData(dataset.x[held_out], dataset.y[held_out])
    score = get_utility(utility)
    aggregate = get_rule(config.aggregation)
    global_state = spec.init_state(initial_model_seed(seed))
    model = spec.build()
    train = config.train_config(0)
    log = RunLog(utility, seed)
    for r in range(1, config.rounds + 1):
        updates: list[Update] = []
        for i, client in enumerate(parts.clients):
            idx = pool[client.train]
            x, y = dataset.x[idx], dataset.y[idx]
            local = config.train_config(client_seed(seed, r, i))
            role = roles[i]
            if role == "label_flip":
                state, n = atk.label_flip(spec, global_state, x, y, local, config.device)
            else:
                state, n, _ = train_local(model, global_state, x, y, local, config.device)
            if role == "free_ride":
                state = atk.free_ride(global_state)
            elif role == "gaussian_noise":  # noise as large as the update it replaces
                state = atk.gaussian_noise(global_state, atk.update_rms(global_state, state), fairness_noise_seed(seed, r, i))
            elif role == "sign_flip":
                state = atk.sign_flip(global_state, state)
            elif role == "scale":
                state = atk.scale(global_state, state, SCALE_FACTOR)
            updates.append(Update(state, n))
        micro = score(global_state, updates, validation, spec, seed=fairness_utility_seed(seed, r), train=train,
                      device=config.device)
        scores = [m / MICRO for m in micro]
        accepted = [u for u, s in zip(updates, scores) if s > 0]
        if accepted:
            global_state = canonical(aggregate([u.state for u in accepted], [u.num_samples for u in accepted]))
        log.rounds.append(RoundLog(r, roles, [u.num_samples for u in updates], scores, pay_shares(scores), len(accepted)))
    test = np.concatenate([pool[c.test] for c in parts.clients])
    with torch.no_grad():
        metrics = evaluate(model, global_state, dataset.x[test], dataset.y[test], dataset.task, config.device)
    log.final_accuracy = float(metrics.accuracy if metrics.accuracy is not None else float("nan"))
    log.wall_s = time.perf_counter() - started
    return log


def summarise(logs: list[RunLog]) -> dict[str, Any]:
    """Per role: pool share, fraction > 0 / < 0 / below the chain threshold, score range; the verdict."""
    import numpy as np  # here, not at import: `fedmarket --help` stays fast

    pool_rounds = sum(len(log.rounds) for log in logs)
    paid: dict[str, float] = defaultdict(float)
    scores: dict[str, list[float]] = defaultdict(list)
    for log in logs:
        for rnd in log.rounds:
            for role, s, p in zip(rnd.roles, rnd.scores, rnd.paid):
                paid[role] += p
                scores[role].append(s)
    roles: dict[str, Any] = {}
    for role in (HONEST, *ATTACK_ROLES):
        values = scores.get(role, [])
        if not values:
            continue
        roles[role] = {
            "pool_share": paid[role] / pool_rounds,
            "updates": len(values),
            "positive": sum(v > 0 for v in values) / len(values),
            "zero": sum(v == 0 for v in values) / len(values),
            "negative": sum(v < 0 for v in values) / len(values),
            "below_chain_threshold": sum(v < CHAIN_POISON_THRESHOLD for v in values) / len(values),
            "min": min(values),
            "median": float(np.median(values)),
            "max": max(values),
        }
    returned = max(0.0, 1.0 - sum(paid.values()) / pool_rounds)  # max: no "-0.00 %" from float rounding
    checks = {
        "honest_all_positive": roles.get(HONEST, {}).get("positive", 0.0) == 1.0,
        "free_ride_all_zero": roles.get("free_ride", {"zero": 1.0})["zero"] == 1.0,
        "noise_and_flip_at_most_1pct": (roles.get("gaussian_noise", {}).get("pool_share", 0.0)
                                        + roles.get("label_flip", {}).get("pool_share", 0.0)) <= MAX_ATTACK_PAY,
        "sign_flip_all_negative": roles.get("sign_flip", {"negative": 1.0})["negative"] == 1.0,
        "scale_all_negative": roles.get("scale", {"negative": 1.0})["negative"] == 1.0,
    }
    return {
        "roles": roles,
        "returned_to_buyer": returned,
        "final_accuracy": float(np.mean([log.final_accuracy for log in logs])),
        "checks": checks,
        "meets_requirements": all(checks.values()),
        "wall_s": sum(log.wall_s for log in logs),
    }


def winner(summaries: dict[str, dict[str, Any]]) -> str | None:
    """The utility that meets every requirement with the largest honest share (then accuracy)."""
    passing = [(s["roles"].get(HONEST, {}).get("pool_share", 0.0), s["final_accuracy"], name)
               for name, s in summaries.items() if s["meets_requirements"]]
    return max(passing)[2] if passing else None


def run(config: FairnessConfig, on_result: Callable[[str, dict[str, Any]], None] = lambda _name, _summary: None) -> dict[str, Any]:
    """Every utility of `config` over every seed; the report behind fairness.json."""
    import torch

    from fedmarket.fl.datasets import load_dataset
    from fedmarket.fl.utility import DEFAULT_UTILITY, UTILITIES

    dataset = load_dataset(config.dataset)
    summaries: dict[str, dict[str, Any]] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        for name in config.utilities or UTILITIES:
            logs = [run_market(replace(config, seed=seed), name, dataset) for seed in config.seeds]
            summaries[name] = summarise(logs)
            # Roles and sample counts are fixed for a run: stored once, scores round by round.
            summaries[name]["runs"] = [
                {"seed": log.seed, "final_accuracy": log.final_accuracy, "roles": log.rounds[0].roles,
                 "samples": log.rounds[0].samples, "scores": [r.scores for r in log.rounds],
                 "accepted": [r.accepted for r in log.rounds]}
                for log in logs
            ]
            on_result(name, summaries[name])
    finally:
        torch.set_num_threads(threads)
    return {
        "benchmark": NAME,
        "settings": config.to_dict(),
        "machine": machine_facts(),
        "default_utility": DEFAULT_UTILITY,
        "winner": winner(summaries),
        "utilities": summaries,
    }


def percent(value: float) -> str:
    """A share as a percentage with two decimals."""
    return f"{100 * value:.2f}%"


def to_markdown(report: dict[str, Any]) -> str:
    s, m = report["settings"], report["machine"]
    headers = ["utility", "honest", "free ride", "noise", "label flip", "sign flip", "x10 scale", "to buyer",
               "honest > 0", "sign < 0", "scale < 0", "final acc", "meets all"]
    rows = []
    for name, u in report["utilities"].items():
        roles = u["roles"]
        share = lambda role: percent(roles[role]["pool_share"]) if role in roles else "-"  # noqa: E731
        frac = lambda role, key: percent(roles[role][key]) if role in roles else "-"  # noqa: E731
        label = name + (" (default)" if name == report["default_utility"] else "")
        rows.append([label, share(HONEST), share("free_ride"), share("gaussian_noise"), share("label_flip"),
                     share("sign_flip"), share("scale"), percent(u["returned_to_buyer"]), frac(HONEST, "positive"),
                     frac("sign_flip", "negative"), frac("scale", "negative"), f"{u['final_accuracy']:.3f}",
                     "yes" if u["meets_requirements"] else "no"])
    score_rows = []
    for name, u in report["utilities"].items():
        for role, r in u["roles"].items():
            score_rows.append([name, role, f"{r['min']:+.4f}", f"{r['median']:+.4f}", f"{r['max']:+.4f}",
                               percent(r["below_chain_threshold"])])
    best = report["winner"]
    if best is None:
        conclusion = "No utility met every requirement in this scenario."
    else:
        conclusion = f"Best in this scenario (meets every requirement, then largest honest share, then accuracy): **{best}**."
    failed = {name: [check for check, ok in u["checks"].items() if not ok] for name, u in report["utilities"].items()}
    conclusion += "\n\nFailed requirements: " + "; ".join(
        f"{name}: {', '.join(checks) if checks else 'none'}" for name, checks in failed.items()) + "."
    return (
        f"# bench fairness: {s['arch']}, lr {s['lr']}\n\n"
        f"{s['dataset']}, {s['partition']}, {s['clients']} trainers ({len(s['attacks'])} attackers: one each of "
        f"{', '.join(s['attacks'])}; the rest honest), {s['rounds']} rounds, seeds {list(s['seeds'])}, "
        f"{s['arch']} trained with lr {s['lr']}, batch {s['batch_size']}, {s['epochs']} local epoch; one validator "
        f"with {s['validator_samples']} held-out samples; the global model is the FedAvg of the updates scored > 0. "
        f"Shares are of the trainers' pool (70 % of each round's budget) summed over rounds and seeds; "
        f"\"to buyer\" is the part nobody earned. Machine: {m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']}; "
        f"measured {m['measured_at']}.\n\n"
        f"Requirements (\"meets all\"): every honest update > 0, free riders exactly 0, noise + label flipping "
        f"<= 1 % of the pool, every sign-flipped and x10-scaled update < 0.\n\n"
        + markdown_table(headers, rows) + "\n\n" + conclusion + "\n\n"
        "Scores (utility units; the chain gets micro-units) and the fraction below the chain's default poison "
        f"threshold {CHAIN_POISON_THRESHOLD}:\n\n"
        + markdown_table(["utility", "role", "min", "median", "max", f"< {CHAIN_POISON_THRESHOLD}"], score_rows) + "\n"
    )


def overall_winner(reports: list[dict[str, Any]]) -> str | None:
    """Across scenarios: the utility meeting every requirement in the most scenarios, then the
    largest mean honest share."""
    import numpy as np  # here, not at import: `fedmarket --help` stays fast

    names = list(reports[0]["utilities"]) if reports else []
    ranked = []
    for name in names:
        entries = [r["utilities"][name] for r in reports if name in r["utilities"]]
        passed = sum(e["meets_requirements"] for e in entries)
        honest = float(np.mean([e["roles"].get(HONEST, {}).get("pool_share", 0.0) for e in entries]))
        ranked.append((passed, honest, name))
    if not ranked or max(ranked)[0] == 0:
        return None
    return max(ranked)[2]


def merge_reports(reports: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """Several scenarios (e.g. two learning rates) in one JSON document and one markdown page."""
    from fedmarket.fl.utility import DEFAULT_UTILITY

    best = overall_winner(reports)
    merged = {"benchmark": NAME, "default_utility": DEFAULT_UTILITY, "overall_winner": best, "scenarios": reports}
    summary_rows = []
    for r in reports:
        s = r["settings"]
        passing = [n for n, u in r["utilities"].items() if u["meets_requirements"]]
        default = r["utilities"].get(DEFAULT_UTILITY)
        default_cell = "-" if default is None else (
            f"honest {percent(default['roles'][HONEST]['pool_share'])}; fails: "
            + (", ".join(c for c, ok in default["checks"].items() if not ok) or "nothing"))
        summary_rows.append([f"{s['arch']}, lr {s['lr']}", ", ".join(passing) or "none", r["winner"] or "none",
                             default_cell])
    if best is None:
        verdict = "No utility met every requirement in any scenario."
    elif best == DEFAULT_UTILITY:
        verdict = f"Overall winner: **{best}**, the default utility of fl.utility."
    else:
        verdict = f"Overall winner: **{best}**; the default is still {DEFAULT_UTILITY} and should follow this table."
    head = (
        "# bench fairness\n\n"
        "Which utility pays honest trainers and not malicious ones, scenario by scenario (details below). "
        "The overall winner meets every requirement in the most scenarios, then has the largest mean honest share.\n\n"
        + markdown_table(["scenario", "meets every requirement", "best", f"default ({DEFAULT_UTILITY})"], summary_rows) + "\n\n" + verdict
    )
    return merged, head + "\n\n" + "\n\n".join(to_markdown(r).replace("# bench fairness:", "## scenario:") for r in reports)
