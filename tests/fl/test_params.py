"""State helpers: canonical order, flatten/unflatten, stack/unstack, comparisons."""

from __future__ import annotations

import pytest
import torch

from fedmarket.fl.params import (
    canonical,
    flatten,
    max_abs_diff,
    ordered_keys,
    stack,
    states_equal,
    subtract,
    unflatten,
    unstack,
)


def two_states() -> tuple[dict, dict]:
    a = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([5.0])}
    b = {"b": torch.tensor([7.0]), "w": torch.tensor([[1.0, 2.0], [3.0, 4.5]])}
    return a, b


def test_canonical_order_is_by_name_whatever_the_dict_order() -> None:
    a, b = two_states()
    assert ordered_keys(a) == ordered_keys(b) == ["b", "w"]
    assert list(canonical(a)) == ["b", "w"]
    assert flatten(a).tolist() == [5.0, 1.0, 2.0, 3.0, 4.0]


def test_unflatten_inverts_flatten() -> None:
    a, _ = two_states()
    back = unflatten(flatten(a), a)
    assert states_equal(back, canonical(a))
    with pytest.raises(ValueError):
        unflatten(torch.zeros(4), a)


def test_stack_and_unstack() -> None:
    a, b = two_states()
    stacked = stack([a, b])
    assert stacked["w"].shape == (2, 2, 2) and stacked["b"].tolist() == [[5.0], [7.0]]
    back = unstack(stacked)
    assert states_equal(back[0], a) and states_equal(back[1], b)


def test_differences() -> None:
    a, b = two_states()
    assert max_abs_diff(a, b) == 2.0
    assert subtract(b, a)["w"].tolist() == [[0.0, 0.0], [0.0, 0.5]]
    assert states_equal(a, {k: v.clone() for k, v in a.items()})
    assert not states_equal(a, {k: v.double() for k, v in a.items()})
