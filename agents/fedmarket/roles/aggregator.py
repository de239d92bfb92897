"""The aggregator agent: once the committee has scored, aggregate the accepted updates, store the
new global model and propose it with its metric.

Publish phase: the accepted updates are those whose median utility is > 0 (read from the chain);
the task's rule (FedAvg by claimed samples by default) combines them in trainer join order, in
float64 on the CPU, so every validator that recomputes it gets the same bytes and CID. The metric
is the new model's accuracy (micro-units; for regression, minus the MSE) on the aggregator's own
held-out data.

Attack (`--attack`): `wrong-aggregate` proposes the true aggregate plus a little Gaussian noise:
a model that is not the aggregate, which the committee must reject.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedmarket.roles.agent import Agent

if TYPE_CHECKING:
    from fedmarket.chain.client import ModelInfo, RoundView


class AggregatorAgent(Agent):
    role = "aggregator"

    def act(self, info: ModelInfo, view: RoundView) -> bool:
        from fedmarket.chain.client import Phase

        r = view.round
        if view.phase != Phase.PUBLISH or view.proposed:
            return False
        self.checkpoint(r, "before-publish")
        global_cid = info.state.global_model_cid
        state, accepted = self.accepted_aggregate(r, global_cid)
        behaviour = self.adversary.in_round(r)
        state = behaviour.tamper_aggregate(state, r)
        cid = self.store_state(state, r, global_cid)
        metric = self._metric(state)
        detail = f"{cid} from {len(accepted)} accepted updates, metric {metric}"
        if behaviour.kind:
            detail += f" ({behaviour.kind} attack: noise added)"
        self._send("publish", r, "publish", lambda: self.market.publish_global_model(self.model_id, r, cid, metric), detail=detail)
        return True

    def _metric(self, state: dict) -> int:
        from fedmarket.fl.evaluation import evaluate
        from fedmarket.fl.training import resolve_device, task_of

        x, y = self.own_samples(self.data.aggregator_indices)
        with self._timing("train_s"):
            metrics = evaluate(self.model_spec.build(), state, x, y, task_of(y), resolve_device(self.options.device))
        value = metrics.accuracy if metrics.accuracy is not None else -(metrics.mse or 0.0)
        return int(round(value * 1_000_000))
