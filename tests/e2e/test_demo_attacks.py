"""The demo's market (in process: embedded chain and store, the real agents) against the attacks
of "pay only for real work": the attacker gains nothing, honest trainers are not slashed, the task
completes. The task's utility is the default one (fl.utility.DEFAULT_UTILITY).

- momentum free rider, stale copy, same-round copy (a sybil's second seat), lying metric;
- oversized blob, huge sample count, withheld model (rejected by the committee);
- withheld model behind a lazy committee: the trainers rebuild the model and carry on;
- a lazy validator (all-zero scores, approves everything): paid nothing, slashed Disagreed;
- a duplicate update (a sybil's second seat reveals the first's exact digest): refused.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from fedmarket.chain.embedded import new_embedded_web3
from fedmarket.fl.taskspec import TaskData, TaskSpec
from fedmarket.fl.utility import DEFAULT_UTILITY
from fedmarket.market.engine import MarketConfig, run_local_market
from fedmarket.market.report import build_report
from fedmarket.market.setup import MarketTerms
from fedmarket.storage.embedded import EmbeddedStore
from fedmarket.storage.kubo import KuboStore
from fedmarket.storage.store import BlobStore

pytestmark = pytest.mark.slow

SPEC = TaskSpec(utility=DEFAULT_UTILITY)
TRAINERS = [f"trainer-{i}" for i in range(1, 6)]


def market(tmp: Path, rounds: int, attacks: dict[str, str], store: BlobStore | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the demo market with `attacks` (on an embedded store unless `store` is given); its
    report (by participant label) and every log record."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        w3 = new_embedded_web3(num_accounts=12)
        store = store or EmbeddedStore(tmp / "store")
        run = run_local_market(w3, store, MarketConfig(spec=SPEC, terms=MarketTerms(rounds=rounds), attacks=attacks), tmp / "state")
        report = build_report(
            run.market,
            run.model_id,
            store=store,
            task_data=TaskData.load(SPEC),
            labels=run.labels,
            round_wall_s=run.round_wall_s,
            agent_logs=run.logs,
            start_block=run.start_block,
        )
    finally:
        torch.set_num_threads(threads)
    return report, run.logs


def people(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["label"]: {"address": a, **p} for a, p in report["participants"].items()}


def slashes(report: dict[str, Any], address: str) -> list[tuple[int, str]]:
    return [(r["round"], s["reason"]) for r in report["rounds"] for s in r["slashes"] if s["participant"] == address]


def settled(report: dict[str, Any]) -> bool:
    return (
        report["status"].lower() == "settled" and report["totals"]["conserved"] and report["totals"]["contract_balance_wei"] == report["totals"]["burned_wei"]
    )


def test_public_information_earns_nothing_and_a_lying_metric_is_voted_down(tmp_path: Path) -> None:
    """trainer-3 copies trainer-2's update (its sybil seat), trainer-4 extrapolates the global
    models, trainer-5 re-applies a revealed update of the round before; the aggregator lies
    about its metric in round 2."""
    report, logs = market(tmp_path, 3, {"trainer-3": "copycat", "trainer-4": "momentum-free-ride", "trainer-5": "stale-copy", "aggregator": "lying-metric@2"})
    who = people(report)
    copycat, momentum, stale = (who[f"trainer-{i}"]["address"] for i in (3, 4, 5))
    for r in report["rounds"]:
        assert r["utilities"][copycat] <= 0 and r["utilities"][momentum] <= 0 and r["utilities"][stale] <= 0
        assert r["utilities"][who["trainer-2"]["address"]] > 0  # the copied seat keeps its score
    for label in ("trainer-3", "trainer-4", "trainer-5"):
        assert who[label]["earned_wei"] == 0
    for label in ("trainer-1", "trainer-2"):
        assert who[label]["earned_wei"] > 0 and who[label]["slashed_wei"] == 0
    r1, r2, r3 = report["rounds"]
    assert r1["accepted_proposal"] and not r2["accepted_proposal"] and r3["accepted_proposal"]
    votes = [r for r in logs if r["action"] == "commit-vote" and r["round"] == 2]
    assert len(votes) == 3 and all("metric 1000000 is not within" in r["detail"] for r in votes)
    assert slashes(report, who["aggregator"]["address"]) == [(2, "rejected")]
    assert settled(report)


def test_oversized_blobs_huge_sample_counts_and_withheld_models_gain_nothing(tmp_path: Path) -> None:
    report, logs = market(tmp_path, 2, {"trainer-4": "oversized-blob", "trainer-5": "huge-samples", "aggregator": "withheld-model@1"})
    who = people(report)
    big, huge = who["trainer-4"]["address"], who["trainer-5"]["address"]
    refused = [r["detail"] for r in logs if r["action"] == "reject-update" and r.get("trainer") == big]
    assert refused and all("larger than" in d for d in refused)
    assert slashes(report, big) == [(1, "poison"), (2, "poison")] and who["trainer-4"]["earned_wei"] == 0
    # Round 1: the committee could not fetch the proposal, voted it down; the aggregator is slashed.
    r1, r2 = report["rounds"]
    votes = [r for r in logs if r["action"] == "commit-vote" and r["round"] == 1]
    assert len(votes) == 3 and all("not retrievable" in r["detail"] for r in votes)
    assert not r1["accepted_proposal"] and r2["accepted_proposal"]
    assert slashes(report, who["aggregator"]["address"]) == [(1, "rejected")]
    # A claim of 2**63 samples is above the task's maxSamples: the contract refuses the reveal, so
    # the update is never scored and its author is late: it earns nothing.
    refusals = [r["detail"] for r in logs if r.get("address") == huge and r["action"] == "refused"]
    assert len(refusals) == 2 and all("samples claimed" in d for d in refusals)
    assert who["trainer-5"]["earned_wei"] == 0 and {reason for _r, reason in slashes(report, huge)} == {"late"}
    for label in ("trainer-1", "trainer-2", "trainer-3"):
        assert who[label]["slashed_wei"] == 0
    assert report["final"]["accuracy"] > report["initial"]["accuracy"]
    assert settled(report)


def test_on_kubo_a_withheld_model_is_waited_for_then_voted_down_in_time(tmp_path: Path) -> None:
    """The same withheld proposal on a Kubo node (the stand-in, over real HTTP), where a missing
    blob is "not found" like a slow one: every member waits for it until half the vote window is
    left (the engine stops its clock there), then votes it down and still commits in time, so no
    honest member is late; the aggregator alone is slashed."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
    from kubo_rpc_server import serve_store

    server = serve_store(tmp_path / "kubo")
    try:
        with KuboStore(server.url) as store:
            report, logs = market(tmp_path, 1, {"aggregator": "withheld-model@1"}, store)
    finally:
        server.shutdown()
        server.server_close()
    who = people(report)
    waits = [r for r in logs if r["action"] == "waiting" and "waiting for the store" in (r["detail"] or "")]
    assert sorted(r["agent"] for r in waits) == ["validator-1", "validator-2", "validator-3"]
    votes = [r for r in logs if r["action"] == "commit-vote"]
    assert len(votes) == 3 and all("not retrievable until the wait ended" in r["detail"] for r in votes)
    assert not report["rounds"][0]["accepted_proposal"]
    assert slashes(report, who["aggregator"]["address"]) == [(1, "rejected")]
    assert all(who[label]["slashed_wei"] == 0 for label in [*TRAINERS, "validator-1", "validator-2", "validator-3"])
    assert settled(report)


def test_a_model_nobody_serves_is_rebuilt_by_the_trainers(tmp_path: Path) -> None:
    """A lazy committee approves a model the aggregator never stored: a trainer rebuilds it from
    round 1's revealed accepted updates, says so, stores it, and the task goes on."""
    attacks = {f"validator-{i}": "approve-all" for i in (1, 2, 3)} | {"aggregator": "withheld-model@1"}
    report, logs = market(tmp_path, 2, attacks)
    who = people(report)
    assert report["rounds"][0]["accepted_proposal"]
    rebuilt = [r for r in logs if r["action"] == "rebuilt-global-model"]
    # The first to need it rebuilds it and stores it: the others (and the report) fetch it from the store.
    assert len(rebuilt) == 1 and rebuilt[0]["agent"] in TRAINERS and rebuilt[0]["round"] == 2
    assert "not retrievable" in rebuilt[0]["detail"] and report["rounds"][0]["global_cid"] in rebuilt[0]["detail"]
    assert all(len(r["accepted"]) == 5 for r in report["rounds"])
    for label in TRAINERS:
        assert who[label]["slashed_wei"] == 0 and who[label]["earned_wei"] > 0
    assert settled(report)


def test_a_lazy_validator_earns_nothing_and_is_slashed_for_disagreeing(tmp_path: Path) -> None:
    """validator-3 commits all-zero scores without evaluating anything and approves every
    proposal: its scores are a whole tolerance (10000 bps) from the medians, so it earns nothing
    and is slashed Disagreed every round; the two working members are paid their equal shares and
    never slashed."""
    report, logs = market(tmp_path, 2, {"validator-3": "lazy"})
    who = people(report)
    lazy = who["validator-3"]["address"]
    committed = [r["detail"] for r in logs if r["agent"] == "validator-3" and r["action"] == "commit-scores"]
    assert len(committed) == 2 and all(score.endswith("=0") for detail in committed for score in detail.split(" "))
    assert not [r for r in logs if r["agent"] == "validator-3" and r["action"] == "reject-update"]  # it fetched nothing to score
    for r in report["rounds"]:
        assert lazy in r["committee"] and r["accepted_proposal"]
        assert r["disagreed"] == ["validator-3"] and r["validator_pay_wei"]["validator-3"] == 0
        # an equal third of V each; the lazy member's third goes to the trainer carry, not to them
        assert r["validator_pay_wei"]["validator-1"] == r["validator_pay_wei"]["validator-2"] == r["budget_wei"] * 2_000 // 10_000 // 3 > 0
        assert all(a["scores_revealed"] and a["vote"] is True for a in r["committee_actions"])
    assert who["validator-3"]["earned_wei"] == 0 and slashes(report, lazy) == [(1, "disagreed"), (2, "disagreed")]
    for label in ("validator-1", "validator-2"):
        assert who[label]["earned_wei"] > 0 and who[label]["slashed_wei"] == 0
    for label in TRAINERS:
        assert who[label]["earned_wei"] > 0 and who[label]["slashed_wei"] == 0
    assert settled(report)


def test_a_duplicate_update_is_refused_and_the_original_is_paid(tmp_path: Path) -> None:
    """trainer-3 trains exactly as trainer-2 (its sybil seat: the same data and seed), so both
    reveal the same digest; trainer-2 revealed first. The later reveal is refused at settlement
    (UpdateRefused): utility 0, never paid, late-slashed; trainer-2 is paid as usual."""
    report, logs = market(tmp_path, 2, {"trainer-3": "duplicate"})
    who = people(report)
    original, copy = who["trainer-2"]["address"], who["trainer-3"]["address"]
    commits = {r["agent"]: r["detail"].split(",")[0] for r in logs if r["action"] == "commit" and r["round"] == 1}
    assert commits["trainer-3"] == commits["trainer-2"]  # "update <the same CID>"
    for r in report["rounds"]:
        assert [f["label"] for f in r["refused"]] == ["trainer-3"]
        assert r["utilities"][copy] == 0 and copy not in r["accepted"] and original in r["accepted"]
    assert who["trainer-3"]["earned_wei"] == 0 and slashes(report, copy) == [(1, "late"), (2, "late")]
    assert who["trainer-2"]["earned_wei"] > 0 and who["trainer-2"]["slashed_wei"] == 0
    assert settled(report)
