"""An agent as a process: follow the task's events and step the agent until the task is done.

The event cursor (persisted in the agent's state dir) tells the loop that something happened on
chain; the agent's `step()` then reads the views and acts. Deadlines pass without events, so the
loop also steps every `poll_s` seconds. A step that fails on a transient fault (the node or the
store briefly unreachable) is retried after a pause; a refusal that will not go away is raised.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fedmarket.errors import FedmarketError, StoreUnavailable

if TYPE_CHECKING:
    from fedmarket.roles.agent import Agent

RETRIES = 5  # transient failures in a row before the agent gives up


class Stopped(FedmarketError):
    """SIGTERM: the supervisor stops the agent (it resumes from the chain when started again)."""


def _raise_stopped(signum: int, _frame: object) -> None:
    raise Stopped(f"stopped by signal {signum}")


def run_agent(agent: Agent, *, poll_s: float = 0.5, state_dir: Path | None = None) -> None:
    """Step `agent` until it has finished (the task settled and its credit withdrawn)."""
    from fedmarket.chain.client import ChainUnreachable
    from fedmarket.chain.events import EventCursor

    signal.signal(signal.SIGTERM, _raise_stopped)
    cursor = EventCursor(agent.market.w3, agent.market.address, model_id=agent.model_id, state_file=(state_dir or agent.state_dir) / "cursor.json")
    agent._record("start", 0, "start", detail=f"following task {agent.model_id} from block {cursor.position}")
    failures = 0
    while not agent.finished:
        try:
            news = cursor.poll()
            acted = agent.step()
            failures = 0
        except (ChainUnreachable, StoreUnavailable, ConnectionError, TimeoutError) as exc:
            failures += 1
            if failures > RETRIES:
                raise
            agent._record("error", 0, "retry", detail=f"{type(exc).__name__}: {exc}")
            time.sleep(poll_s * 2**failures)
            continue
        if not acted and not news:
            time.sleep(poll_s)
    agent._record("done", 0, "exit", detail="task settled")
