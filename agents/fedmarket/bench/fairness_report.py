"""The fairness benchmark's figures: per role pay and slashing, accuracy against the clean run,
Spearman of honest pay with clean samples, the targets met or missed, and the markdown page.

Targets (the issue "pay only for real work"):
    attackers_at_most_0_5pct      every attack kind earns <= 0.5 % of the trainer pool over the rounds
    poisoners_slashed_most_rounds sign flip, x10 scale, ALIE and label flip updates are poison-slashed
                                  (the contract's rule: utility below the poison threshold and two thirds
                                  of the committee's seats scored below it) in more than half their rounds
    honest_at_least_95pct         honest trainers get >= 95 % of the trainer pool
    accuracy_within_2pts          final accuracy within 2 points of the clean run
    spearman_at_least_0_9         Spearman >= 0.9 between an honest trainer's pay and its clean-sample count
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fedmarket.bench import markdown_table

HONEST = "honest"
POISONERS = ("sign_flip", "scale", "alie", "label_flip")
MAX_ATTACK_PAY = 0.005
MIN_HONEST_PAY = 0.95
MAX_ACCURACY_LOSS = 0.02
MIN_SPEARMAN = 0.9


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); nan for fewer than 3 pairs or a constant side."""
    import numpy as np

    def ranks(values: list[float]) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        order = np.argsort(v, kind="stable")
        out = np.empty(len(v))
        out[order] = np.arange(len(v), dtype=np.float64)
        for value in np.unique(v):  # ties share their mean rank
            tied = v == value
            out[tied] = out[tied].mean()
        return out

    if len(a) < 3:
        return float("nan")
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def summarise(logs: list[Any]) -> dict[str, Any]:
    """Per role: pool share, fraction > 0 / = 0 / < 0 / slashed, score range; accuracy, Spearman, targets."""
    import numpy as np  # here, not at import: `fedmarket --help` stays fast

    pool_rounds = sum(len(log.rounds) for log in logs)
    paid: dict[str, float] = defaultdict(float)
    scores: dict[str, list[float]] = defaultdict(list)
    slashed: dict[str, int] = defaultdict(int)
    correlations = []
    for log in logs:
        honest_pay = defaultdict(float)
        for rnd in log.rounds:
            for i, (role, s, p, hit) in enumerate(zip(log.roles, rnd.scores, rnd.paid, rnd.slashed)):
                paid[role] += p
                scores[role].append(s)
                slashed[role] += hit
                if role == HONEST:
                    honest_pay[i] += p
        seats = [i for i, role in enumerate(log.roles) if role == HONEST]
        correlations.append(spearman([honest_pay[i] for i in seats], [log.clean_samples[i] for i in seats]))
    roles: dict[str, Any] = {}
    for role in sorted(scores, key=lambda r: (r != HONEST, r)):
        values = scores[role]
        roles[role] = {
            "pool_share": paid[role] / pool_rounds,
            "updates": len(values),
            "positive": sum(v > 0 for v in values) / len(values),
            "zero": sum(v == 0 for v in values) / len(values),
            "negative": sum(v < 0 for v in values) / len(values),
            "slashed": slashed[role] / len(values),
            "min": min(values),
            "median": float(np.median(values)),
            "max": max(values),
        }
    burned = sum(log.burned for log in logs) / pool_rounds  # pools carried past the last round
    final = float(np.mean([log.final_accuracy for log in logs]))
    clean = float(np.mean([log.clean_accuracy for log in logs]))
    valid = [c for c in correlations if c == c]
    rho = float(np.mean(valid)) if valid else float("nan")
    attackers = {r: v for r, v in roles.items() if r != HONEST}
    checks = {
        "attackers_at_most_0_5pct": all(v["pool_share"] <= MAX_ATTACK_PAY for v in attackers.values()),
        "poisoners_slashed_most_rounds": all(roles[r]["slashed"] > 0.5 for r in POISONERS if r in roles),
        "honest_at_least_95pct": roles.get(HONEST, {}).get("pool_share", 0.0) >= MIN_HONEST_PAY,
        "accuracy_within_2pts": clean - final <= MAX_ACCURACY_LOSS,
        "spearman_at_least_0_9": rho >= MIN_SPEARMAN,
    }
    return {
        "roles": roles,
        "burned": burned,
        "final_accuracy": final,
        "clean_accuracy": clean,
        "spearman_honest_pay_clean_samples": rho,
        "checks": checks,
        "meets_requirements": all(checks.values()),
        "wall_s": sum(log.wall_s for log in logs),
    }


RANKING = "the largest honest share, then the smallest total share of the attackers, then the most targets met"


def honest_share(summary: dict[str, Any]) -> float:
    """The honest trainers' share of the trainer pool."""
    return float(summary["roles"].get(HONEST, {}).get("pool_share", 0.0))


def attackers_share(summary: dict[str, Any]) -> float:
    """Every attack kind's share of the trainer pool, summed."""
    return float(sum(v["pool_share"] for role, v in summary["roles"].items() if role != HONEST))


def _rank(honest: float, attackers: float, met: int) -> tuple[float, float, int]:
    """Sort key, larger is better. Honest share first: the continuous measure of "pay only for real
    work" (a target met by a hair, e.g. accuracy, must not outrank paying attackers several times
    more); then the attackers' total share (lower is better), then the targets met."""
    return (honest, -attackers, met)


def winner(summaries: dict[str, dict[str, Any]]) -> str | None:
    """The best utility of one scenario by RANKING."""
    ranked = [(_rank(honest_share(s), attackers_share(s), sum(s["checks"].values())), name) for name, s in summaries.items()]
    return max(ranked)[1] if ranked else None


def _load(machine: dict[str, Any], key: str) -> str:
    return "/".join(f"{x:.2f}" for x in machine[key]) if key in machine else "not recorded"


def percent(value: float) -> str:
    """A share as a percentage with two decimals."""
    return f"{100 * value:.2f}%"


def to_markdown(report: dict[str, Any]) -> str:
    s, m = report["settings"], report["machine"]
    roles_seen = sorted({r for u in report["utilities"].values() for r in u["roles"]}, key=lambda r: (r != HONEST, r))
    headers = ["utility", *roles_seen, "burned", "final acc", "clean acc", "spearman", "targets met"]
    rows = []
    for name, u in report["utilities"].items():
        roles = u["roles"]
        label = name + (" (default)" if name == report["default_utility"] else "")
        cells = [percent(roles[r]["pool_share"]) + (f" / {percent(roles[r]['slashed'])} sl." if r != HONEST else "") if r in roles else "-" for r in roles_seen]
        rows.append(
            [
                label,
                *cells,
                percent(u["burned"]),
                f"{u['final_accuracy']:.3f}",
                f"{u['clean_accuracy']:.3f}",
                f"{u['spearman_honest_pay_clean_samples']:.2f}",
                f"{sum(u['checks'].values())}/{len(u['checks'])}",
            ]
        )
    score_rows = []
    for name, u in report["utilities"].items():
        for role, r in u["roles"].items():
            score_rows.append([name, role, f"{r['min']:+.4f}", f"{r['median']:+.4f}", f"{r['max']:+.4f}", percent(r["positive"]), percent(r["slashed"])])
    best = report["winner"]
    conclusion = f"Best in this scenario ({RANKING}): **{best}**."
    failed = {name: [check for check, ok in u["checks"].items() if not ok] for name, u in report["utilities"].items()}
    conclusion += "\n\nTargets missed: " + "; ".join(f"{name}: {', '.join(checks) if checks else 'none'}" for name, checks in failed.items()) + "."
    return (
        f"# bench fairness: {s['arch']}, lr {s['lr']}, {s['partition']}\n\n"
        f"{s['dataset']}, {s['partition']}, {s['clients']} trainers ({percent(s['attack_share'])} of the seats attack, kinds dealt "
        f"in turn from {', '.join(dict.fromkeys(s['attacks']))}; honest trainers' clean-label share from 100 % down to "
        f"{percent(s['clean_min'])}), {s['rounds']} rounds, seeds {list(s['seeds'])}, {s['arch']} trained with lr {s['lr']}, "
        f"batch {s['batch_size']}, {s['epochs']} local epoch; {s['validators']} validators with {s['validator_samples']} "
        f"held-out samples each; the round settles by the contract's rules: the utility is the lower median of the scores "
        f"(0 without a quorum), a round nobody earned in carries its pool to the next; the global model is the FedAvg of the "
        f"updates with utility > 0. Cells: share of the trainers' pool summed over rounds and seeds / share of that role's "
        f"updates poison-slashed by the contract's rule (utility < {s['poison_threshold']} and two thirds of the committee's "
        f'seats scored below it); "burned" is the pool still carried after the last round (nobody earned it); clean acc: the same '
        f"market without its attackers, every honest update aggregated. Machine: {m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']}; "
        f"load average (1/5/15 min) {_load(m, 'load_average_before')} before, {_load(m, 'load_average_after')} after; measured {m['measured_at']}.\n\n"
        + markdown_table(headers, rows)
        + "\n\n"
        + conclusion
        + "\n\n"
        "Scores (utility units; the chain gets micro-units), the fraction > 0 and the fraction slashed:\n\n"
        + markdown_table(["utility", "role", "min", "median", "max", "> 0", "slashed"], score_rows)
        + "\n"
    )


def overall_winner(reports: list[dict[str, Any]]) -> str | None:
    """Across scenarios by RANKING: the mean honest share, then the mean attackers' total share,
    then the targets met in all scenarios together."""
    import numpy as np  # here, not at import: `fedmarket --help` stays fast

    names = list(reports[0]["utilities"]) if reports else []
    ranked = []
    for name in names:
        entries = [r["utilities"][name] for r in reports if name in r["utilities"]]
        met = sum(sum(e["checks"].values()) for e in entries)
        honest = float(np.mean([honest_share(e) for e in entries]))
        attackers = float(np.mean([attackers_share(e) for e in entries]))
        ranked.append((_rank(honest, attackers, met), name))
    return max(ranked)[1] if ranked else None


def merge_reports(reports: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """Several scenarios (models, learning rates, partitions) in one JSON document and one markdown page."""
    from fedmarket.fl.utility import DEFAULT_UTILITY

    best = overall_winner(reports)
    merged = {"benchmark": "fairness", "default_utility": DEFAULT_UTILITY, "overall_winner": best, "scenarios": reports}
    summary_rows = []
    for r in reports:
        s = r["settings"]
        default = r["utilities"].get(DEFAULT_UTILITY)
        default_cell = (
            "-"
            if default is None
            else (
                f"honest {percent(honest_share(default))}, attackers {percent(attackers_share(default))}; misses: "
                + (", ".join(c for c, ok in default["checks"].items() if not ok) or "nothing")
            )
        )
        summary_rows.append([f"{s['arch']}, lr {s['lr']}, {s['partition']}", r["winner"] or "none", default_cell])
    if best == DEFAULT_UTILITY:
        verdict = f"Overall winner: **{best}**, the default utility of fl.utility."
    else:
        verdict = f"Overall winner: **{best}**; the default is still {DEFAULT_UTILITY} and should follow this table."
    head = (
        "# bench fairness\n\n"
        "Which utility pays honest trainers and not dishonest ones, scenario by scenario (details below). "
        f"Ranking, per scenario and overall (means over the scenarios, targets summed): {RANKING}.\n\n"
        + markdown_table(["scenario", "best", f"default ({DEFAULT_UTILITY})"], summary_rows)
        + "\n\n"
        + verdict
    )
    return merged, head + "\n\n" + "\n\n".join(to_markdown(r).replace("# bench fairness:", "## scenario:") for r in reports)
