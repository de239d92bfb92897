"""The validator agent: when on the round's committee, score every revealed update, then check
the aggregator's proposal.

Score phase: download each revealed update (verified against its CID, parsed as safetensors of
the task's architecture, trained from this round's global model), score all of them with the
task's utility function on the validator's own held-out data, and submit the scores in reveal
order. An update that cannot be used (a blob that does not match its CID, a pickle, wrong
shapes, another round's or model's weights) scores as malformed (-1, a poison score) and the
reason goes to the log. Confirm phase: rebuild the aggregate of the accepted updates (the same
deterministic code the aggregator runs) and vote ok only if its CID is the proposal's.

Attacks (`--attack`) are fedmarket.roles.adversary's, reached through its hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedmarket.errors import FedmarketError
from fedmarket.fl.seeds import validator_seed
from fedmarket.roles.agent import Agent, RoundCache

if TYPE_CHECKING:
    from fedmarket.chain.client import ModelInfo, RoundView


class ValidatorAgent(Agent):
    role = "validator"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cache = RoundCache()

    def act(self, info: ModelInfo, view: RoundView) -> bool:
        from fedmarket.chain.client import Phase

        r = view.round
        if self.address not in view.committee:
            return False
        if view.phase == Phase.SCORE:
            if self.done(r, "score", lambda: self.market.scores_of(self.model_id, r, self.address).submitted):
                return False
            self.checkpoint(r, "before-score")
            return self._score(info, r)
        if view.phase == Phase.CONFIRM and view.proposed:
            if self.done(r, "confirm", lambda: self.market.has_confirmed(self.model_id, r, self.address).voted):
                return False
            self.checkpoint(r, "before-confirm")
            return self._confirm(info, view)
        return False

    def _score(self, info: ModelInfo, r: int) -> bool:

        from fedmarket.fl.utility import Update, ValidationData, get_utility

        global_cid = info.state.global_model_cid
        global_state = self.load_state(global_cid, "global model")
        revealed = self._view(lambda: self.market.revealed_updates(self.model_id, r))
        updates = []
        for u in revealed:
            try:
                state = self.load_state(u.update_cid, f"update of {u.trainer}", r, global_cid)
            except FedmarketError as exc:
                self._record("score", r, "reject-update", detail=f"{u.trainer}: {exc}", trainer=u.trainer)
                state = {}  # the utility scores a state it cannot use as malformed
            updates.append(Update(state, int(u.num_samples)))
        index = self.join_index(self._view(lambda: self.market.validators(self.model_id)))
        x, y = self.own_samples(lambda: self.data.validator_indices(index))
        seed = validator_seed(self.spec.seed, r, index)
        utility = get_utility(self.spec.utility)
        with self._timing("train_s"):
            scores = utility(global_state, updates, ValidationData(x, y), self.model_spec, seed=seed,
                             train=self.spec.train_config(seed), device=self.options.device)
        self._send("score", r, "submit-scores", lambda: self.market.submit_scores(self.model_id, r, scores),
                   detail=" ".join(f"{u.trainer[:8]}={s}" for u, s in zip(revealed, scores)))
        return True

    def _confirm(self, info: ModelInfo, view: RoundView) -> bool:
        from fedmarket.storage.cid import digest_to_cid

        r = view.round
        proposed = digest_to_cid(view.proposed_digest)
        ok, detail = self.adversary.in_round(r).vote(lambda: self._check_proposal(info, r, proposed))
        self._send("confirm", r, "confirm", lambda: self.market.confirm_global_model(self.model_id, r, ok), detail=f"proposal {proposed} {detail}")
        return True

    def _check_proposal(self, info: ModelInfo, r: int, proposed: str) -> tuple[bool, str]:
        """Whether the proposal is the deterministic aggregate of the accepted updates, and why."""
        expected = self.cache.for_round(r).get("expected")
        if expected is None:
            state, _accepted = self.accepted_aggregate(r, info.state.global_model_cid)
            expected = self._cid_of(state, r, info.state.global_model_cid)
            self.cache.for_round(r)["expected"] = expected
        if expected == proposed:
            return True, "is the aggregate"
        return False, f"is not the aggregate {expected}: rejected"

    def _cid_of(self, state: dict, r: int, parent: str) -> str:
        from fedmarket.storage.cid import cid_of

        with self._timing("storage_s"):
            return cid_of(self.weights_file(state, r, parent))
