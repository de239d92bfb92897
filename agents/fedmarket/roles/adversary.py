"""Adversarial behaviour, injected into the agents: for the adversary tests, `demo --attack` and
the fairness story. An honest agent runs `HONEST`, whose every hook is the identity; the honest
code paths call the hooks and never test for an attack themselves.

Trainers (`--attack KIND[@ROUNDS]`):
    free-ride     re-submit the global model unchanged
    momentum-free-ride  submit the previous global step again: w + (w - w_prev) (round 1: w)
    stale-copy    re-apply an update revealed in the previous round (round 1: w)
    copycat       a sybil's second seat: train as the seat before it does (its data, its seed),
                  plus a 1e-3 relative perturbation: a near-copy of that seat's update
    duplicate     a sybil's second seat: train exactly as the seat before it does, so that both
                  reveal the same update digest (the contract refuses the later reveal of a digest)
    oversized-blob  store the honest update with a megabyte of padding after it
    huge-samples  claim 2**63 samples for the honest update
    sign-flip     submit the honest update reversed: w_g - (w_i - w_g)
    scale         submit the honest update times 10
    noise         submit the global model plus Gaussian noise
    label-flip    train on labels c -> C - 1 - c
    corrupt-blob  store the honest update, then corrupt the stored bytes (embedded store only)
    wrong-shape   submit weights whose first tensor has the wrong shape (one row fewer)
    pickle        submit a pickle (torch.save) instead of a safetensors file
    bad-reveal    first send a reveal that does not match the commit (the contract refuses it),
                  then reveal what was committed
Validators: approve-all   vote ok without checking the proposal
            lazy          commit all-zero scores without evaluating anything, and approve every
                          proposal unchecked (paid nothing and slashed Disagreed: its scores are
                          far from the committee's medians)
Aggregator: wrong-aggregate   publish the aggregate plus noise
            withheld-model    publish the aggregate's CID without storing the file
            lying-metric      publish the aggregate with a perfect metric (1_000_000)
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from fedmarket.errors import FedmarketError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from fedmarket.fl.utility import PublicPast
    from fedmarket.storage.store import BlobStore

    State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Attack:
    """An attack as given on the command line: its kind, and the rounds it runs in."""

    kind: str
    rounds: frozenset[int] | None = None  # None: every round

    def active(self, round: int) -> bool:
        return self.rounds is None or round in self.rounds

    @classmethod
    def parse(cls, text: str, allowed: tuple[str, ...]) -> Attack:
        """`KIND` or `KIND@R1,R2`."""
        kind, _, rounds_text = text.partition("@")
        if kind not in allowed:
            raise FedmarketError(f"unknown attack {kind!r} for this role; choose one of {', '.join(allowed)}")
        rounds = None
        if rounds_text:
            try:
                rounds = frozenset(int(r) for r in rounds_text.split(","))
            except ValueError:
                raise FedmarketError(f"invalid attack rounds {rounds_text!r}: give R or R1,R2,...") from None
        return cls(kind, rounds)


class Behaviour:
    """The honest behaviour: every hook returns what the honest agent made. Subclasses override
    the hooks of the one thing their attack does."""

    kind: ClassVar[str | None] = None

    # ------------------------------------------------------------------ trainer
    def data_seat(self, index: int, trainers: int) -> int:
        """Whose data (and training seed) the trainer uses: its own seat's."""
        return index

    def training_labels(self, y: np.ndarray, num_classes: int) -> np.ndarray:
        return y

    def forge_update(self, global_state: State, trained: State, seed: int, past: Callable[[], PublicPast]) -> State:
        """The update to publish; `past()` reads what was public before the round (only attacks call it)."""
        return trained

    def claim_samples(self, num_samples: int) -> int:
        return num_samples

    def encode_update(self, state: State, encode: Callable[[State], bytes]) -> bytes:
        return encode(state)

    def after_store(self, cid: str, store: BlobStore) -> None:
        return None

    def false_reveal_samples(self, num_samples: int) -> list[int]:
        """Sample counts to reveal, and be refused for, before the true reveal."""
        return []

    # ------------------------------------------------------------------ validator
    def scores(self, count: int, evaluate: Callable[[], list[int]]) -> list[int]:
        """The `count` scores to commit; the honest ones run `evaluate`."""
        return evaluate()

    def vote(self, check: Callable[[], tuple[bool, str]]) -> tuple[bool, str]:
        """(ok, why): the honest vote runs `check`."""
        return check()

    # ------------------------------------------------------------------ aggregator
    def tamper_aggregate(self, state: State, round: int) -> State:
        return state

    def publish_blob(self, blob: bytes, store: Callable[[bytes], str]) -> str:
        """Store the proposal's file; its CID."""
        return store(blob)

    def report_metric(self, metric: int) -> int:
        return metric


HONEST = Behaviour()


class FreeRide(Behaviour):
    kind = "free-ride"

    def forge_update(self, global_state: State, trained: State, seed: int, past: Callable[[], PublicPast]) -> State:
        from fedmarket.fl.utility import attacks

        return attacks.free_ride(global_state)


class MomentumFreeRide(Behaviour):
    kind = "momentum-free-ride"

    def forge_update(self, global_state: State, trained: State, seed: int, past: Callable[[], PublicPast]) -> State:
        from fedmarket.fl.utility import attacks

        models = past().global_models
        return attacks.momentum_free_ride(global_state, models[0]) if models else attacks.free_ride(global_state)


class StaleCopy(Behaviour):
    kind = "stale-copy"

    def forge_update(self, global_state: State, trained: State, seed: int, past: Callable[[], PublicPast]) -> State:
        from fedmarket.fl.utility import attacks

        updates = past().updates
        return attacks.stale_copy(global_state, *updates[0]) if updates else attacks.free_ride(global_state)


class Copycat(Behaviour):
    kind = "copycat"

    def data_seat(self, index: int, trainers: int) -> int:
        return index - 1 if index > 0 else min(1, trainers - 1)

    def forge_update(self, global_state: State, trained: State, seed: int, past: Callable[[], PublicPast]) -> State:
        from fedmarket.fl.utility import attacks

        return attacks.near_copy(global_state, trained, seed)


class Duplicate(Copycat):
    kind = "duplicate"

    def forge_update(self, global_state: State, trained: State, seed: int, past: Callable[[], PublicPast]) -> State:
        return trained  # the seat before's data and seed, trained the same way: the same bytes, the same CID


class OversizedBlob(Behaviour):
    kind = "oversized-blob"

    def encode_update(self, state: State, encode: Callable[[State], bytes]) -> bytes:
        return encode(state) + bytes(1 << 20)


class HugeSamples(Behaviour):
    kind = "huge-samples"

    def claim_samples(self, num_samples: int) -> int:
        return 2**63


class SignFlip(Behaviour):
    kind = "sign-flip"

    def forge_update(self, global_state: State, trained: State, seed: int, past: Callable[[], PublicPast]) -> State:
        from fedmarket.fl.utility import attacks

        return attacks.sign_flip(global_state, trained)


class Scale(Behaviour):
    kind = "scale"

    def forge_update(self, global_state: State, trained: State, seed: int, past: Callable[[], PublicPast]) -> State:
        from fedmarket.fl.utility import attacks

        return attacks.scale(global_state, trained)


class Noise(Behaviour):
    kind = "noise"

    def forge_update(self, global_state: State, trained: State, seed: int, past: Callable[[], PublicPast]) -> State:
        from fedmarket.fl.utility import attacks

        return attacks.gaussian_noise(global_state, 0.1, seed)


class LabelFlip(Behaviour):
    kind = "label-flip"

    def training_labels(self, y: np.ndarray, num_classes: int) -> np.ndarray:
        from fedmarket.fl.utility import attacks

        return attacks.flipped_labels(y, num_classes)


class CorruptBlob(Behaviour):
    kind = "corrupt-blob"

    def after_store(self, cid: str, store: BlobStore) -> None:
        """Flip bytes of the stored copy: the CID still names the honest bytes, the store now lies."""
        path_of = getattr(store, "path_of", None)
        if path_of is None:
            raise FedmarketError("the corrupt-blob attack needs the embedded store (it edits the stored file)")
        path = path_of(cid)
        data = bytearray(path.read_bytes())
        middle = len(data) // 2
        data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
        path.chmod(0o644)
        path.write_bytes(bytes(data))


class WrongShape(Behaviour):
    kind = "wrong-shape"

    def encode_update(self, state: State, encode: Callable[[State], bytes]) -> bytes:
        import torch

        # One fewer element along the first axis: a file within the size bound, refused for its shape.
        name = sorted(state)[0]
        shape = state[name].shape
        return encode({**state, name: torch.zeros((max(1, shape[0] - 1), *shape[1:]) if shape[0] > 1 else (2, *shape[1:]))})


class Pickle(Behaviour):
    kind = "pickle"

    def encode_update(self, state: State, encode: Callable[[State], bytes]) -> bytes:
        import torch

        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()


class BadReveal(Behaviour):
    kind = "bad-reveal"

    def false_reveal_samples(self, num_samples: int) -> list[int]:
        return [num_samples + 1]


class ApproveAll(Behaviour):
    kind = "approve-all"

    def vote(self, check: Callable[[], tuple[bool, str]]) -> tuple[bool, str]:
        return True, "approved unchecked (attack)"


class Lazy(ApproveAll):
    kind = "lazy"

    def scores(self, count: int, evaluate: Callable[[], list[int]]) -> list[int]:
        return [0] * count  # nothing evaluated: "no change" for every update


class WrongAggregate(Behaviour):
    kind = "wrong-aggregate"

    def tamper_aggregate(self, state: State, round: int) -> State:
        from fedmarket.fl.utility import attacks

        return attacks.gaussian_noise(state, 0.01, round)


class WithheldModel(Behaviour):
    kind = "withheld-model"

    def publish_blob(self, blob: bytes, store: Callable[[bytes], str]) -> str:
        from fedmarket.storage.cid import cid_of

        return cid_of(blob)  # the true aggregate's CID, and no file behind it


class LyingMetric(Behaviour):
    kind = "lying-metric"

    def report_metric(self, metric: int) -> int:
        return 1_000_000


_TRAINER_ATTACKS = (
    FreeRide,
    MomentumFreeRide,
    StaleCopy,
    Copycat,
    Duplicate,
    SignFlip,
    Scale,
    Noise,
    LabelFlip,
    CorruptBlob,
    WrongShape,
    Pickle,
    BadReveal,
    OversizedBlob,
    HugeSamples,
)
BEHAVIOURS: dict[str, dict[str, type[Behaviour]]] = {
    "trainer": {cls.kind: cls for cls in _TRAINER_ATTACKS},  # type: ignore[misc]
    "validator": {cls.kind: cls for cls in (ApproveAll, Lazy)},  # type: ignore[misc]
    "aggregator": {cls.kind: cls for cls in (WrongAggregate, WithheldModel, LyingMetric)},  # type: ignore[misc]
}
"""role -> attack kind -> its behaviour."""


def attacks_of(role: str) -> tuple[str, ...]:
    """The attack kinds an agent of `role` can run."""
    return tuple(BEHAVIOURS.get(role, {}))


class Adversary:
    """An agent's behaviour round by round: its attack where the attack is active, else honest."""

    def __init__(self, role: str, attack: Attack | None) -> None:
        if attack is not None and attack.kind not in BEHAVIOURS.get(role, {}):
            raise FedmarketError(f"a {role} cannot run attack {attack.kind!r}; its attacks: {', '.join(attacks_of(role))}")
        self.attack = attack
        self._behaviour = BEHAVIOURS[role][attack.kind]() if attack is not None else HONEST

    def in_round(self, round: int) -> Behaviour:
        if self.attack is not None and self.attack.active(round):
            return self._behaviour
        return HONEST
