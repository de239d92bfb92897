"""The aggregator agent: once the committee has scored, aggregate the accepted updates, store the
new global model and propose it with its metric.

Publish phase: the accepted updates are those whose median utility is > 0 (read from the chain);
the task's rule (FedAvg by claimed samples by default) combines them in trainer join order, in
float64 on the CPU, so every validator that recomputes it gets the same bytes and CID. The metric
is the new model's accuracy (micro-units; for regression, minus the MSE) on the aggregator's own
held-out data.

Attacks (`--attack`, fedmarket.roles.adversary): `wrong-aggregate` proposes the true aggregate plus
a little Gaussian noise; `withheld-model` publishes the true aggregate's CID without storing the
file; `lying-metric` publishes a perfect metric. The committee must reject all three.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedmarket.roles.agent import Agent

if TYPE_CHECKING:
    from fedmarket.chain.client import AgentView


class AggregatorAgent(Agent):
    role = "aggregator"

    def act(self, now: AgentView) -> bool:
        from fedmarket.chain.client import Phase

        r = now.current_round
        if now.phase != Phase.PUBLISH or now.proposed:
            return False
        self.checkpoint(r, "before-publish")
        global_cid = now.global_model_cid
        state, accepted = self.accepted_aggregate(r, global_cid)
        behaviour = self.adversary.in_round(r)
        state = behaviour.tamper_aggregate(state, r)
        cid = behaviour.publish_blob(self.weights_file(state, r, global_cid), self.store_blob)
        metric = behaviour.report_metric(self.metric_of(state, *self.own_samples(self.data.aggregator_indices)))
        detail = f"{cid} from {len(accepted)} accepted updates, metric {metric}"
        if behaviour.kind:
            detail += f" ({behaviour.kind} attack)"
        self._send("publish", r, "publish", lambda: self.market.publish_global_model(self.model_id, r, cid, metric), detail=detail)
        return True
