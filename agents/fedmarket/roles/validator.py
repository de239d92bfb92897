"""The validator agent: when on the round's committee, score every revealed update, then check
the aggregator's proposal.

Score phase: download each revealed update (verified against its CID, parsed as safetensors of
the task's architecture, trained from this round's global model), score all of them with the
task's utility function on the validator's own held-out data, and submit the scores in reveal
order. An update that cannot be used (a blob that does not match its CID, a pickle, wrong
shapes, another round's or model's weights) scores as malformed (-1, a poison score) and the
reason goes to the log. Sample counts are bounded by the task (Agent.claimed_samples) and the
utility is told what was public before the round (Agent.public_past), so that it pays nothing
for it. Confirm phase: vote ok only if (1) the proposal's CID is that of the aggregate of the
accepted updates (rebuilt with the same deterministic code the aggregator runs), (2) the file
behind it can be fetched (within the model's size bound), matches the CID and is now pinned by
this validator's store: no vote for a model nobody could download, and (3) the published metric
is within the stated tolerance of the validator's own evaluation of the model:

    |published - own| <= max(METRIC_FLOOR, METRIC_SIGMAS * sqrt(a (1 - a) / n))

in accuracy units, a the validator's own accuracy on its n samples (the aggregator's held-out
samples are others, so the two estimates differ by sampling alone by about that much); for
regression max(METRIC_FLOOR, REGRESSION_TOLERANCE * |own|) in MSE units.

Attacks (`--attack`) are fedmarket.roles.adversary's, reached through its hooks.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from fedmarket.errors import FedmarketError
from fedmarket.fl.seeds import validator_seed
from fedmarket.roles.agent import Agent, RoundCache

if TYPE_CHECKING:
    from fedmarket.chain.client import AgentView

METRIC_SIGMAS = 5.0
METRIC_FLOOR = 0.05
REGRESSION_TOLERANCE = 0.5


def metric_tolerance(own: float, n: int, regression: bool) -> float:
    """How far a published metric may be from the validator's own (metric units, not micro)."""
    if regression:
        return max(METRIC_FLOOR, REGRESSION_TOLERANCE * abs(own))
    return max(METRIC_FLOOR, METRIC_SIGMAS * math.sqrt(max(own * (1.0 - own), 0.0) / max(n, 1)))


class ValidatorAgent(Agent):
    role = "validator"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cache = RoundCache()

    def act(self, now: AgentView) -> bool:
        from fedmarket.chain.client import Phase

        r = now.current_round
        if not now.on_committee:
            return False
        if now.phase == Phase.SCORE:
            if self.done(r, "score", now.scored):
                return False
            self.checkpoint(r, "before-score")
            return self._score(now, r)
        if now.phase == Phase.CONFIRM and now.proposed:
            if self.done(r, "confirm", now.voted):
                return False
            self.checkpoint(r, "before-confirm")
            return self._confirm(now)
        return False

    def _score(self, now: AgentView, r: int) -> bool:

        from fedmarket.fl.utility import ScoringRequest, Update, ValidationData, get_utility

        global_cid = now.global_model_cid
        global_state = self.global_model(now, r)
        revealed = self._view(lambda: self.market.revealed_updates(self.model_id, r))
        updates = []
        for u in revealed:
            try:
                state = self.load_state(u.update_cid, f"update of {u.trainer}", r, global_cid)
            except FedmarketError as exc:
                self._record("score", r, "reject-update", detail=f"{u.trainer}: {exc}", trainer=u.trainer)
                state = {}  # the utility scores a state it cannot use as malformed
            updates.append(Update(state, self.claimed_samples(u.num_samples)))
        index = self.join_index(self.roster("validators"))
        x, y = self.own_samples(lambda: self.data.validator_indices(index))
        seed = validator_seed(self.spec.seed, r, index)
        utility = get_utility(self.spec.utility)
        public = self.public_past(r, global_cid)
        with self._timing("train_s"):
            request = ScoringRequest(
                global_state,
                updates,
                ValidationData(x, y),
                self.model_spec,
                seed=seed,
                train=self.spec.train_config(seed),
                device=self.options.device,
                public=public,
            )
            scores = utility(request)
        self._send(
            "score",
            r,
            "submit-scores",
            lambda: self.market.submit_scores(self.model_id, r, scores),
            detail=" ".join(f"{u.trainer[:8]}={s}" for u, s in zip(revealed, scores)),
            duty="score",
        )
        return True

    def _confirm(self, now: AgentView) -> bool:
        from fedmarket.storage.cid import digest_to_cid

        r = now.current_round
        proposed = digest_to_cid(now.proposed_digest)
        ok, detail = self.adversary.in_round(r).vote(lambda: self._check_proposal(now, r, proposed, now.proposed_metric))
        self._send(
            "confirm", r, "confirm", lambda: self.market.confirm_global_model(self.model_id, r, ok), detail=f"proposal {proposed} {detail}", duty="confirm"
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
        except FedmarketError as exc:
            return False, f"is the aggregate but not retrievable ({exc}): rejected"
        x, y = self.own_samples(lambda: self.data.validator_indices(self.join_index(self.roster("validators"))))
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
