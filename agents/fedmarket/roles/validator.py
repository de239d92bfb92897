"""The validator agent: when on the round's committee, score every revealed update, then check
the aggregator's proposal, each by commit-reveal (no member can copy another's scores or vote).

ScoreCommit phase: download each revealed update (verified against its CID, parsed as safetensors
of the task's architecture, trained from this round's global model), score all of them with the
task's utility function on the validator's own held-out data, store the scores with a fresh salt
durably (roles/salts.py's BallotBook) and commit to them. ScoreReveal phase: reveal the stored
scores, so that a validator restarted between the two reveals exactly what it committed. An
update that cannot be used (a blob that does not match its CID, a pickle, wrong shapes, another
round's or model's weights) scores as malformed (-1, a poison score) and the reason goes to the
log. An update the store cannot serve right now (StoreUnavailable: unreachable, slow, not found in
time) is no verdict on its trainer: the validator waits and tries again while more than
WAIT_FRACTION of the score window is left, and only then scores it as malformed (withheld), so
that a transient failure on one validator's side never poison-slashes an honest trainer. The
proposal's file likewise: waited for while more than WAIT_FRACTION of the vote window is left.
Sample counts are bounded by the task (Agent.claimed_samples) and the utility is told what was
public before the round (Agent.public_past), so that it pays nothing for it. VoteCommit
phase: vote ok only if (1) the proposal's CID is that of the aggregate of the accepted updates
(rebuilt with the same deterministic code the aggregator runs), (2) the file behind it can be
fetched (within the model's size bound), matches the CID and is now pinned by this validator's
store: no vote for a model nobody could download, and (3) the published metric is within the
stated tolerance of the validator's own evaluation of the model:

    |published - own| <= max(METRIC_FLOOR, METRIC_SIGMAS * sqrt(a (1 - a) / n))

in accuracy units, a the validator's own accuracy on its n samples (the aggregator's held-out
samples are others, so the two estimates differ by sampling alone by about that much); for
regression max(METRIC_FLOOR, REGRESSION_TOLERANCE * |own|) in MSE units. The vote is stored and
committed like the scores, and revealed in the VoteReveal phase. A validator is paid an equal
share only while its scores stay within the tolerance of the round's medians
(chain.protocol.validator_weights), not for scoring at all.

The duties live in CommitteeMember, which a trainer of an elected-committee task (CMFL, BlockFL;
docs/protocol.md, "Elected committees") shares: in the rounds it sits, it scores the other
trainers' updates on its own train split, seeded as it would train (fl.elected_sim is the
reference), and checks the proposal's CID and availability; it holds no held-out data, so it
cannot check the published metric (its own non-IID split says nothing about the aggregator's).

Attacks (`--attack`) are fedmarket.roles.adversary's, reached through its hooks.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from fedmarket.errors import FedmarketError, StoreUnavailable
from fedmarket.fl.seeds import validator_seed
from fedmarket.roles.agent import Agent, RoundCache

if TYPE_CHECKING:
    import numpy as np

    from fedmarket.chain.client import AgentView, ModelParams, Phase
    from fedmarket.fl.learning import TrainConfig

WAIT_FRACTION = 0.5  # of the score window: the rest is left for scoring and committing
METRIC_SIGMAS = 5.0
METRIC_FLOOR = 0.05
REGRESSION_TOLERANCE = 0.5


def metric_tolerance(own: float, n: int, regression: bool) -> float:
    """How far a published metric may be from the validator's own (metric units, not micro)."""
    if regression:
        return max(METRIC_FLOOR, REGRESSION_TOLERANCE * abs(own))
    return max(METRIC_FLOOR, METRIC_SIGMAS * math.sqrt(max(own * (1.0 - own), 0.0) / max(n, 1)))


def store_wait_ends(phase: Phase, deadline: int, params: ModelParams) -> int | None:
    """The chain time at which a validator waiting for its store in `phase` stops waiting (and
    scores or votes without the blob), or None in a phase where it never waits. The in-process
    engine stops its clock there too, so that a waiting validator is not skipped past."""
    from fedmarket.chain.client import Phase

    window = {Phase.SCORE_COMMIT: params.score_window, Phase.VOTE_COMMIT: params.confirm_window}.get(phase)
    return None if window is None else deadline - int(window * WAIT_FRACTION)


class CommitteeMember(Agent):
    """A committee member's duties: score commit / reveal, vote commit / reveal (`serve`). What
    it scores with, and what it checks a metric on, are its role's (the hooks below)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        from fedmarket.roles.salts import BallotBook

        self.ballots = BallotBook(self.state_dir / "salts")
        self.cache = RoundCache()

    def scoring_data(self, r: int) -> tuple[np.ndarray, np.ndarray, int, TrainConfig]:
        """(x, y, seed, local-training settings) this member scores round r's updates with."""
        raise NotImplementedError

    def metric_samples(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The data this member checks a published metric on, or None (it cannot)."""
        raise NotImplementedError

    def serve(self, now: AgentView) -> bool:
        """The one next committee duty of this phase, if this agent sits on the round's committee."""
        from fedmarket.chain.client import Phase

        r = now.current_round
        if not now.on_committee:
            return False
        if now.phase == Phase.SCORE_COMMIT:
            if self.done(r, "score-commit", now.score_committed):
                return False
            self.checkpoint(r, "before-score")
            return self._commit_scores(now, r)
        if now.phase == Phase.SCORE_REVEAL:
            if not self.done(r, "score-commit", now.score_committed) or self.done(r, "score", now.scored):
                return False  # nothing committed (the commit window is over) or already revealed
            self.checkpoint(r, "before-score-reveal")
            return self._reveal_ballot(r, "scores")
        if now.phase == Phase.VOTE_COMMIT and now.proposed:
            if self.done(r, "vote-commit", now.vote_committed):
                return False
            self.checkpoint(r, "before-confirm")
            return self._commit_vote(now)
        if now.phase == Phase.VOTE_REVEAL:
            if not self.done(r, "vote-commit", now.vote_committed) or self.done(r, "vote", now.voted):
                return False
            self.checkpoint(r, "before-vote-reveal")
            return self._reveal_ballot(r, "vote")
        return False

    def _commit_scores(self, now: AgentView, r: int) -> bool:
        revealed = self._view(lambda: self.market.revealed_updates(self.model_id, r))
        try:
            scores = self.adversary.in_round(r).scores(len(revealed), lambda: self._scores(now, r, revealed))
        except _WaitForStore as wait:
            self._waiting("score-commit", r, f"round {r}: waiting for the store ({wait}); scoring as withheld once {wait.left_after} s are left")
            return False
        stored = self.ballots.prepare_scores(self.market.chain_id, self.market.address, self.model_id, r, self.address, scores)
        self._send(
            "score-commit",
            r,
            "commit-scores",
            lambda: self.market.commit_scores(self.model_id, r, stored.commitment_bytes),
            detail=" ".join(f"{u.trainer[:8]}={s}" for u, s in zip(revealed, scores)),
            duty="score-commit",
        )
        return True

    def _scores(self, now: AgentView, r: int, revealed: list) -> list[int]:
        """Every revealed update scored with the task's utility on this validator's own data."""
        from fedmarket.fl.utility import ScoringRequest, Update, ValidationData, get_utility

        global_cid = now.global_model_cid
        global_state = self.global_model(now, r)
        updates = []
        for u in revealed:
            try:
                state = self.load_state(u.update_cid, f"update of {u.trainer}", r, global_cid)
            except StoreUnavailable as exc:
                self._wait_for_store(now, exc)
                self._record("score-commit", r, "reject-update", detail=f"{u.trainer}: unavailable until the wait ended: {exc}", trainer=u.trainer)
                state = {}
            except FedmarketError as exc:
                self._record("score-commit", r, "reject-update", detail=f"{u.trainer}: {exc}", trainer=u.trainer)
                state = {}  # the utility scores a state it cannot use as malformed
            updates.append(Update(state, self.claimed_samples(u.num_samples)))
        x, y, seed, train = self.scoring_data(r)
        utility = get_utility(self.spec.utility)
        public = self.public_past(r, global_cid)
        with self._timing("train_s"):
            request = ScoringRequest(
                global_state,
                updates,
                ValidationData(x, y),
                self.model_spec,
                seed=seed,
                train=train,
                device=self.options.device,
                public=public,
            )
            return [int(s) for s in utility(request)]

    def _wait_for_store(self, now: AgentView, exc: StoreUnavailable) -> None:
        """Raise _WaitForStore until store_wait_ends (the phase's deadline less WAIT_FRACTION of its window)."""
        from fedmarket.chain.timecontrol import chain_now

        ends = store_wait_ends(now.phase, now.phase_deadline, self.params)
        if ends is not None and chain_now(self.market.w3) < ends:
            raise _WaitForStore(str(exc), now.phase_deadline - ends)

    def _commit_vote(self, now: AgentView) -> bool:
        from fedmarket.storage.cid import digest_to_cid

        r = now.current_round
        proposed = digest_to_cid(now.proposed_digest)
        try:
            ok, detail = self.adversary.in_round(r).vote(lambda: self._check_proposal(now, r, proposed, now.proposed_metric))
        except _WaitForStore as wait:
            self._waiting("vote-commit", r, f"round {r}: waiting for the store ({wait}); rejecting as not retrievable once {wait.left_after} s are left")
            return False
        stored = self.ballots.prepare_vote(self.market.chain_id, self.market.address, self.model_id, r, self.address, ok)
        self._send(
            "vote-commit",
            r,
            "commit-vote",
            lambda: self.market.commit_vote(self.model_id, r, stored.commitment_bytes),
            detail=f"proposal {proposed} {detail}",
            duty="vote-commit",
        )
        return True

    def _reveal_ballot(self, r: int, kind: str) -> bool:
        """Reveal the scores or the vote committed in round `r`, as stored before the commit
        (a validator restarted between its commit and its reveal reveals the same)."""
        stored = self.ballots.load(self.market.chain_id, self.market.address, self.model_id, r, self.address, kind)
        if kind == "scores":
            self._send(
                "score-reveal",
                r,
                "reveal-scores",
                lambda: self.market.reveal_scores(self.model_id, r, stored.scores, stored.salt_bytes),
                detail=" ".join(map(str, stored.scores)),
                duty="score",
            )
        else:
            self._send(
                "vote-reveal",
                r,
                "reveal-vote",
                lambda: self.market.reveal_vote(self.model_id, r, stored.ok, stored.salt_bytes),
                detail="ok" if stored.ok else "reject",
                duty="vote",
            )
        return True

    def _check_proposal(self, now: AgentView, r: int, proposed: str, metric: int) -> tuple[bool, str]:
        """Whether the proposal is the deterministic aggregate of the accepted updates, retrievable
        (fetched, verified and pinned here) and published with an honest metric; and why."""
        memo = self.cache.for_round(r)
        expected = memo.get("expected")
        if expected is None:
            state, _accepted = self.accepted_aggregate(r, now.global_model_cid)
            expected = self._cid_of(state, r, now.global_model_cid)
            memo["expected"] = expected
        if expected != proposed:
            return False, f"is not the aggregate {expected}: rejected"
        try:
            self._states.pop(proposed, None)  # fetch it from the store, not from this agent's memory
            state = self.load_state(proposed, "proposed global model", r, now.global_model_cid)
            with self._timing("storage_s"):
                self.store.pin(proposed)
        except StoreUnavailable as exc:
            self._wait_for_store(now, exc)
            return False, f"is the aggregate but was not retrievable until the wait ended ({exc}): rejected"
        except FedmarketError as exc:
            return False, f"is the aggregate but not retrievable ({exc}): rejected"
        samples = self.metric_samples()
        if samples is None:
            return True, "is the aggregate, fetched and pinned (metric not checked: no held-out data here)"
        x, y = samples
        own = self.metric_of(state, x, y)
        regression = self.data.dataset.task == "regression"
        tolerance = metric_tolerance(own / 1_000_000, len(y), regression)
        if abs(metric - own) > tolerance * 1_000_000:
            return False, f"is the aggregate, but its metric {metric} is not within {tolerance:.4f} of {own} measured here: rejected"
        return True, f"is the aggregate, fetched and pinned, metric {metric} within {tolerance:.4f} of {own}"

    def _cid_of(self, state: dict, r: int, parent: str) -> str:
        from fedmarket.storage.cid import cid_of

        with self._timing("storage_s"):
            return cid_of(self.weights_file(state, r, parent))


class ValidatorAgent(CommitteeMember):
    """A staked validator: serves on the committees drawn for it, with its own held-out slice."""

    role = "validator"

    def act(self, now: AgentView) -> bool:
        return self.serve(now)

    def scoring_data(self, r: int) -> tuple[np.ndarray, np.ndarray, int, TrainConfig]:
        index = self.join_index(self.roster("validators"))
        x, y = self.own_samples(lambda: self.data.validator_indices(index))
        seed = validator_seed(self.spec.seed, r, index)
        return x, y, seed, self.spec.train_config(seed)

    def metric_samples(self) -> tuple[np.ndarray, np.ndarray]:
        return self.own_samples(lambda: self.data.validator_indices(self.join_index(self.roster("validators"))))


class _WaitForStore(Exception):
    """Some update could not be fetched yet and there is time to try again (never leaves the agent)."""

    def __init__(self, reason: str, left_after: int) -> None:
        super().__init__(reason)
        self.left_after = left_after
