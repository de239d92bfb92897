"""The trainer agent: in each round, train the global model on its own data, store, commit, reveal.

Commit phase: download and verify the round's global model, train it locally with the task's
hyper-parameters (seeded by task seed, round and join index, as `fedmarket sim` seeds client i),
store the update, write the salt durably, commit. Reveal phase: reveal what was committed.
Training is deterministic, so a trainer restarted before its commit retrains to the same bytes
and the same CID, and the salt book hands back the same salt.

A global model no store serves is rebuilt from the previous round's revealed accepted updates
(Agent.global_model), and the log says so. Attacks (`--attack`) are fedmarket.roles.adversary's,
reached through its hooks.

In an elected-committee task (docs/protocol.md, "Elected committees") a trainer also serves: in
the rounds the chain puts it on the committee it does not train; it scores the other trainers'
updates on its own train split, seeded as it would have trained (roles.validator's
CommitteeMember duties; fl.elected_sim is the reference), and votes on the proposal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedmarket.chain.reverts import ContractRevert
from fedmarket.errors import FedmarketError
from fedmarket.fl.seeds import client_seed
from fedmarket.roles.validator import CommitteeMember

if TYPE_CHECKING:
    import numpy as np

    from fedmarket.chain.client import AgentView
    from fedmarket.fl.learning import TrainConfig


class TrainerAgent(CommitteeMember):
    role = "trainer"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        from fedmarket.roles.salts import SaltBook

        self.salts = SaltBook(self.state_dir / "salts")

    def act(self, now: AgentView) -> bool:
        from fedmarket.chain.client import Phase

        if now.on_committee:  # an elected task's member serves this round instead of training it
            return self.serve(now)
        r = now.current_round
        if now.phase == Phase.COMMIT:
            if self.done(r, "commit", now.committed):
                return False
            self.checkpoint(r, "before-commit")
            return self._commit(now, r)
        if now.phase == Phase.REVEAL:
            if not self.done(r, "commit", now.committed):
                return False  # the commit phase is over: nothing to reveal
            if self.done(r, "reveal", now.revealed):
                return False
            self.checkpoint(r, "before-reveal")
            return self._reveal(r)
        return False

    # ------------------------------------------------------------------ commit

    def _commit(self, now: AgentView, r: int) -> bool:
        from fedmarket.chain.client import Phase

        global_cid = now.global_model_cid
        update_cid, samples, loss = self._update(now, r, global_cid)
        stored = self.salts.prepare(self.market.chain_id, self.market.address, self.model_id, r, self.address, update_cid, samples)
        if self.now().phase != Phase.COMMIT:  # training takes time: is the commit phase still on?
            self._record("commit", r, "missed", detail="the commit phase ended while training")
            return True
        self._send(
            "commit",
            r,
            "commit",
            lambda: self.market.commit_update(self.model_id, r, stored.commitment_bytes),
            detail=f"update {update_cid}, {samples} samples, train loss {loss:.4f}",
            duty="commit",
        )
        return True

    def _update(self, now: AgentView, r: int, global_cid: str) -> tuple[str, int, float]:
        """Train (or, under an attack, forge) this round's update and store it: (CID, samples, loss)."""
        cached = self.cache.for_round(r).get(global_cid)
        if cached is not None:
            return cached
        from fedmarket.fl.training import resolve_device, train_local

        behaviour = self.adversary.in_round(r)
        index = self.join_index(self.roster("trainers"))
        seat = behaviour.data_seat(index, self.spec.trainers)
        x, y = self.own_samples(lambda: self.data.trainer_indices(seat))
        global_state = self.global_model(now, r)
        y = behaviour.training_labels(y, self.data.dataset.num_classes)
        config = self.spec.train_config(client_seed(self.spec.seed, r, seat))
        with self._timing("train_s"):
            state, samples, loss = train_local(self.model_spec.build(), global_state, x, y, config, resolve_device(self.options.device))
            state = behaviour.forge_update(global_state, state, config.seed, lambda: self.public_past(r, global_cid))
        samples = behaviour.claim_samples(int(samples))
        update_cid = self.store_blob(behaviour.encode_update(state, lambda s: self.weights_file(s, r, global_cid)))
        behaviour.after_store(update_cid, self.store)
        if behaviour.kind:
            self._record("commit", r, "attack", detail=f"{behaviour.kind}: update {update_cid}")
        result = (update_cid, samples, float(loss))
        self.cache.for_round(r)[global_cid] = result
        return result

    # ------------------------------------------------------------------ reveal

    def _reveal(self, r: int) -> bool:
        stored = self.salts.load(self.market.chain_id, self.market.address, self.model_id, r, self.address)
        for false_samples in self.adversary.in_round(r).false_reveal_samples(stored.num_samples):
            try:
                self._send(
                    "reveal",
                    r,
                    "reveal",
                    lambda n=false_samples: self.market.reveal_update(self.model_id, r, stored.update_cid, n, stored.salt_bytes),
                    detail="bad-reveal attack: a sample count that does not match the commit",
                )
            except FedmarketError as exc:
                self._record("reveal", r, "refused", detail=f"the contract refused the mismatched reveal: {exc}")
        try:
            self._send(
                "reveal",
                r,
                "reveal",
                lambda: self.market.reveal_update(self.model_id, r, stored.update_cid, stored.num_samples, stored.salt_bytes),
                detail=f"update {stored.update_cid}",
                duty="reveal",
            )
        except ContractRevert as exc:
            if exc.name != "TooManySamples":
                raise
            # Only a dishonest commit claims more than the task allows: it stays unrevealed (and late).
            self._facts.add((r, "reveal"))
            self._record("reveal", r, "refused", detail=f"the contract refused the reveal: {exc}")
        return True

    # ------------------------------------------------------------------ on an elected committee

    def scoring_data(self, r: int) -> tuple[np.ndarray, np.ndarray, int, TrainConfig]:
        """Its own train split, and the seed it would have trained round r with (as fl.elected_sim's
        members score: for cmfl_distance the reference step is the update it would have sent)."""
        seat = self.join_index(self.roster("trainers"))
        x, y = self.own_samples(lambda: self.data.trainer_indices(seat))
        return x, y, client_seed(self.spec.seed, r, seat), self.spec.train_config(0)

    def metric_samples(self) -> None:
        return None  # a trainer holds no held-out data: its own split says nothing of the aggregator's metric
