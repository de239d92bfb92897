"""The embedded chain's clock is the caller's: blocks are one second apart however long the
machine takes between them, and time moves further only when a test or the engine moves it."""

from __future__ import annotations

import pytest

from fedmarket.chain.embedded import latest_timestamp, new_embedded_web3
from fedmarket.chain.timecontrol import advance_time


def _send(w3) -> int:
    a, b = w3.eth.accounts[:2]
    w3.eth.send_transaction({"from": a, "to": b, "value": 1, "gas": 21_000})
    return latest_timestamp(w3)


def test_a_slow_machine_does_not_move_the_chain_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    import eth._utils.headers as headers

    w3 = new_embedded_web3(2)
    start = latest_timestamp(w3)
    # The wall clock jumps an hour ahead between every two blocks, as on a machine under heavy load.
    wall = [start]

    def an_hour_later() -> int:
        wall[0] += 3600
        return wall[0]

    monkeypatch.setattr(headers, "eth_now", an_hour_later)
    stamps = [_send(w3) for _ in range(4)]
    assert [t - start for t in stamps] == [1, 2, 3, 4]


def test_the_caller_moves_the_clock() -> None:
    w3 = new_embedded_web3(2)
    start = latest_timestamp(w3)
    advance_time(w3, 100)
    assert latest_timestamp(w3) - start == 100
    assert _send(w3) - start == 101


def test_time_left_reads_like_a_clock() -> None:
    from fedmarket.chain.timecontrol import time_left

    assert [time_left(s) for s in (-5, 0, 42, 97, 3599, 7500)] == ["0s", "0s", "42s", "1m37s", "59m59s", "2h05m"]
