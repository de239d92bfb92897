"""`run_async`: one run of an fl.semi method (semi, fedasync or local) on the virtual clock."""

from __future__ import annotations

from collections.abc import Callable

from fedmarket.fl.datasets import Dataset
from fedmarket.fl.semi.config import AsyncConfig
from fedmarket.fl.semi.engine import AsyncResult, CurvePoint, make_setup, run_events, score_clients
from fedmarket.fl.semi.fedasync import FedAsync
from fedmarket.fl.semi.local import LocalOnly
from fedmarket.fl.semi.semi_centralised import SemiCentralised

METHODS = {"semi": SemiCentralised, "fedasync": FedAsync, "local": LocalOnly}


def run_async(config: AsyncConfig, on_point: Callable[[CurvePoint], None] | None = None, dataset: Dataset | None = None) -> AsyncResult:
    """Run `config.mode` (semi, fedasync or local) on the virtual clock; see the method modules."""
    setup = make_setup(config, dataset)
    method = METHODS[config.mode](setup)
    curve, ledger = run_events(setup, method, on_point)
    states = method.client_states()
    client_metrics, average_metrics = score_clients(setup, states)
    return AsyncResult(
        config,
        setup.spec.id,
        str(setup.device),
        setup.parts.summary(),
        tuple(curve),
        client_metrics,
        average_metrics,
        ledger.summary(setup.costs, setup.stragglers),
        [dict(s) for s in states],
        getattr(method, "records", None),
        method.facts() if hasattr(method, "facts") else {},
    )
