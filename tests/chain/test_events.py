"""EventCursor: decoding, block windows, model filter, resume from a stored position across
restarts without duplicates or misses, refusal of a position that belongs to another chain."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from chain_helpers import REWARD, Actors
from web3 import Web3

from fedmarket.chain.client import MarketClient, ModelParams, TxResult, connect
from fedmarket.chain.deploy import deploy_marketplace
from fedmarket.chain.events import CursorMismatch, Event, EventCursor
from fedmarket.errors import FedmarketError


def keys(events: list[Event]) -> list[tuple[int, int, str]]:
    return [(e.block_number, e.log_index, e.name) for e in events]


@pytest.fixture
def history(market: MarketClient, actors: Actors, params: ModelParams, ready_task: Callable[..., int]) -> list[TxResult]:
    """Two tasks with interleaved activity; returns every transaction's result in order."""
    results: list[TxResult] = []
    first = market.new_model(params, REWARD)
    results.append(first)
    second = market.new_model(params.with_(rounds=1), REWARD)
    results.append(second)
    for model_id in (first.model_id, second.model_id):
        for trainer in actors.trainers[:2]:
            client = market.with_account(trainer)
            results.append(client.buy_license(model_id))
            results.append(client.join_as_trainer(model_id))
        results.append(market.pay_for_model(model_id, 7))
    return results


def all_events(results: list[TxResult]) -> list[Event]:
    return [e for r in results for e in r.events]


def cursor(market: MarketClient, **kwargs: object) -> EventCursor:
    return EventCursor(market.w3, market.address, market.abi, **kwargs)  # type: ignore[arg-type]


def test_reads_every_event_once_in_chain_order(market: MarketClient, history: list[TxResult]) -> None:
    expected = all_events(history)
    events = cursor(market).poll()
    assert keys(events) == keys(expected)
    assert [e.args for e in events] == [e.args for e in expected]
    assert cursor(market).poll() == events  # decoding is deterministic
    assert {e.name for e in events} == {"ModelCreated", "ModelCreationPayment", "LicensePurchased", "ParticipantJoined"}


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1_000])
def test_block_windows_do_not_change_the_result(market: MarketClient, history: list[TxResult], chunk: int) -> None:
    assert keys(cursor(market, chunk_blocks=chunk).poll()) == keys(all_events(history))


def test_reads_in_windows_from_its_position_never_from_zero(market: MarketClient, history: list[TxResult], monkeypatch: pytest.MonkeyPatch) -> None:
    c = cursor(market, chunk_blocks=4)
    c.poll()
    head = market.w3.eth.block_number
    assert c.position == head + 1
    market.pay_for_model(1, 1)
    ranges: list[tuple[int, int]] = []
    real = c._read

    def spy(start: int, end: int) -> list[Event]:
        ranges.append((start, end))
        return real(start, end)

    monkeypatch.setattr(c, "_read", spy)
    assert [e.name for e in c.poll()] == ["ModelCreationPayment"]
    assert ranges == [(head + 1, head + 1)]
    assert c.poll() == [] and len(ranges) == 1  # nothing new: no request at all


def test_filters_by_model_and_by_name(market: MarketClient, history: list[TxResult]) -> None:
    expected = [e for e in all_events(history) if e.model_id == 2]
    got = cursor(market, model_id=2).poll()
    assert keys(got) == keys(expected) and all(e.model_id == 2 for e in got)
    joins = cursor(market, names=["ParticipantJoined"]).poll()
    assert len(joins) == 4 and {e.name for e in joins} == {"ParticipantJoined"}
    with pytest.raises(FedmarketError, match="no events named"):
        cursor(market, names=["NoSuchEvent"])


def test_resumes_from_the_stored_position_across_restarts(market: MarketClient, actors: Actors, params: ModelParams, tmp_path: Path) -> None:
    state = tmp_path / "agent" / "cursor.json"
    seen: list[Event] = []
    produced: list[Event] = []
    for step in range(4):
        # some activity, then a fresh cursor object (a restarted agent) reads what is new
        for _ in range(step + 1):
            produced.extend(market.new_model(params, REWARD).events)
        c = cursor(market, state_file=state, chunk_blocks=3)
        seen.extend(c.poll())
        assert json.loads(state.read_text())["nextBlock"] == c.position
    assert keys(seen) == keys(produced)  # no duplicates, no misses
    assert not [p for p in state.parent.iterdir() if p.name != "cursor.json"]  # atomic write leaves no temp files


def test_uncommitted_batch_is_delivered_again_after_a_crash(market: MarketClient, params: ModelParams, tmp_path: Path) -> None:
    state = tmp_path / "cursor.json"
    market.new_model(params, REWARD)
    first = cursor(market, state_file=state)
    batch = first.poll(commit=False)
    assert batch and not state.exists()  # "crash" before commit
    again = cursor(market, state_file=state)
    assert keys(again.poll(commit=False)) == keys(batch)
    again.commit()
    assert cursor(market, state_file=state).poll() == []


def test_partial_read_up_to_a_block(market: MarketClient, history: list[TxResult], tmp_path: Path) -> None:
    state = tmp_path / "cursor.json"
    middle = history[len(history) // 2].block_number
    head = cursor(market, state_file=state).poll(to_block=middle)
    tail = cursor(market, state_file=state).poll()
    assert all(e.block_number <= middle for e in head) and all(e.block_number > middle for e in tail)
    assert keys(head + tail) == keys(all_events(history))


def test_start_block_skips_older_history(market: MarketClient, history: list[TxResult]) -> None:
    start = history[2].block_number
    got = cursor(market, start_block=start).poll()
    assert keys(got) == keys([e for e in all_events(history) if e.block_number >= start])


def test_refuses_a_position_of_another_market_model_or_chain(w3: Web3, market: MarketClient, actors: Actors, params: ModelParams, tmp_path: Path) -> None:
    state = tmp_path / "cursor.json"
    market.new_model(params, REWARD)
    cursor(market, state_file=state).poll()
    other = deploy_marketplace(w3, actors.deployer)
    with pytest.raises(CursorMismatch, match="follows the market at"):
        EventCursor(w3, other.address, market.abi, state_file=state)
    with pytest.raises(CursorMismatch, match="follows task None, not task 1"):
        cursor(market, state_file=state, model_id=1)
    # a restarted dev chain: same chain id and contract address, but fewer blocks
    fresh = connect(None)
    with pytest.raises(CursorMismatch, match="was the chain restarted"):
        EventCursor(fresh, market.address, market.abi, state_file=state)
    state.write_text("{not json")
    with pytest.raises(CursorMismatch, match="unreadable"):
        cursor(market, state_file=state)


def test_confirmations_keep_the_cursor_behind_the_head(market: MarketClient, params: ModelParams) -> None:
    created = market.new_model(params, REWARD)
    c = cursor(market, confirmations=2, start_block=created.block_number - 1)
    assert c.poll() == [] and c.position == created.block_number - 1
    market.pay_for_model(created.model_id, 1)
    market.pay_for_model(created.model_id, 1)
    assert keys(c.poll()) == keys(created.events)
    assert c.position == created.block_number + 1


def test_event_json_is_plain(market: MarketClient, params: ModelParams) -> None:
    event = market.new_model(params, REWARD).event("ModelCreated")
    data = json.loads(json.dumps(event.as_json()))
    assert data["name"] == "ModelCreated" and data["args"]["specDigest"] == "0x" + params.spec_digest.hex()


def test_embedded_fast_path_equals_eth_get_logs(market: MarketClient, history: list[TxResult]) -> None:
    fast = cursor(market, chunk_blocks=5)
    slow = cursor(market, chunk_blocks=5)
    slow._embedded = False  # force eth_getLogs, what every node serves
    assert fast.poll() == slow.poll()
    for filters in ({"model_id": 2}, {"names": ["ParticipantJoined", "ModelCreated"]}):
        fast, slow = cursor(market, **filters), cursor(market, **filters)
        slow._embedded = False
        assert fast.poll() == slow.poll()


def test_a_failed_read_does_not_move_the_position(market: MarketClient, history: list[TxResult], monkeypatch: pytest.MonkeyPatch) -> None:
    c = cursor(market, chunk_blocks=2)
    real, calls = c._read, []

    def flaky(start: int, end: int) -> list[Event]:
        calls.append(start)
        if len(calls) == 3:
            raise ConnectionError("node went away")
        return real(start, end)

    monkeypatch.setattr(c, "_read", flaky)
    with pytest.raises(FedmarketError, match="cannot reach the Ethereum node"):
        c.poll()
    assert c.position == 0
    assert keys(c.poll()) == keys(all_events(history))
