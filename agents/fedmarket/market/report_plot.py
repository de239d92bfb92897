"""The market report as one PNG: accuracy per round, and what each participant earned and lost.

Left: the global model's accuracy after each round (round 0 is the initial model); a round whose
proposal was rejected or missing (the previous model carried over) is drawn as a red cross.
Right: per participant, earned wei above the axis and slashed wei below it (in ETH), coloured by
role. The file is deterministic: same report, same bytes (no timestamp or version in the PNG).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedmarket.chain.protocol import WEI_PER_ETH

ROLE_COLOURS = {"trainer": "#1f77b4", "validator": "#2ca02c", "aggregator": "#9467bd", "licensee": "#7f7f7f", "buyer": "#ff7f0e"}


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """Draw `report` (build_report's dict) into the PNG `path` (parents created); return the path."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A Figure on an Agg canvas, not pyplot: no display needed, and the caller's pyplot backend
    # and global figure list are left alone.
    with matplotlib.rc_context({"figure.dpi": 100, "savefig.dpi": 100}):
        fig = Figure(figsize=(12, 4.5))
        FigureCanvasAgg(fig)
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.4]})
        _accuracy_panel(left, report)
        _payout_panel(right, report, Patch)
        chain = report.get("chain", {})
        fig.suptitle(f"task {report.get('model_id')} ({report.get('status', '?')}) on the {chain.get('kind', '?')} chain {chain.get('chain_id', '')}")
        fig.tight_layout()
        # No Software chunk (and Agg writes no creation time): identical reports, identical bytes.
        fig.savefig(path, format="png", metadata={"Software": None})
    return path


def _accuracy_panel(ax: Any, report: dict[str, Any]) -> None:
    initial = report.get("initial") or {}
    points = [(0, initial.get("accuracy"), True)]
    points += [(r["round"], r.get("accuracy"), bool(r.get("accepted_proposal", True))) for r in report.get("rounds", [])]
    ax.set_title("global model accuracy per round")
    ax.set_xlabel("round (0 = initial model)")
    known = [(x, y, ok) for x, y, ok in points if y is not None]
    if not known:
        ax.text(0.5, 0.5, "no learning metrics", ha="center", va="center", transform=ax.transAxes, fontsize=13, color="#555555")
        ax.set_xticks([p[0] for p in points])
        ax.set_yticks([])
        return
    ax.plot([x for x, _, _ in known], [y for _, y, _ in known], color="#1f77b4", marker="o", zorder=1)
    rejected = [(x, y) for x, y, ok in known if not ok]
    if rejected:
        ax.scatter([x for x, _ in rejected], [y for _, y in rejected], marker="x", s=90, color="#d62728", zorder=2, label="proposal rejected / missing")
        ax.legend(loc="lower right")
    ax.set_xticks([p[0] for p in points])
    ax.set_ylabel("accuracy")
    ax.set_ylim(0.0, 1.0)
    ax.grid(alpha=0.3)


def _payout_panel(ax: Any, report: dict[str, Any], patch: Any) -> None:
    people = list((report.get("participants") or {}).values())
    ax.set_title("payouts per participant (ETH)")
    if not people:
        ax.text(0.5, 0.5, "no participants", ha="center", va="center", transform=ax.transAxes)
        return
    xs = list(range(len(people)))
    colours = [ROLE_COLOURS.get(p.get("role", ""), "#7f7f7f") for p in people]
    earned = [int(p.get("earned_wei", 0)) / WEI_PER_ETH for p in people]
    slashed = [-int(p.get("slashed_wei", 0)) / WEI_PER_ETH for p in people]
    ax.bar(xs, earned, color=colours)
    ax.bar(xs, slashed, color=colours, hatch="//", alpha=0.55, edgecolor="#d62728")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(xs)
    ax.set_xticklabels([str(p.get("label", "?")) for p in people], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("earned (up) / slashed (down), ETH")
    roles = [r for r in ROLE_COLOURS if any(p.get("role") == r for p in people)]
    handles = [patch(facecolor=ROLE_COLOURS[r], label=r) for r in roles]
    if any(slashed):
        handles.append(patch(facecolor="white", edgecolor="#d62728", hatch="//", label="slashed"))
    ax.legend(handles=handles, fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
