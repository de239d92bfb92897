"""The committee draw of docs/protocol.md ("Committee"), written from the spec alone: the reference
model (model.py) and the committee tests use it to predict every round's committee to the seat.

A committee is a bitmap of validator seats (bit i: seat i); members take their committee positions
in seat order. Round 1 is drawn from keccak256(abi.encode(prevrandao, modelId)) at startTraining;
round r + 1 from keccak256(abi.encode(modelId, r + 1, committee of r, the reveal-order words of r))
when round r had reveals, else from keccak256(abi.encode(modelId, r + 1, committee of r, prevrandao))
of the closing block. A reveal-order word holds two reveal entries (seat | numSamples << 8 | the
update digest's top 36 bits << 72, 108 bits each, from the bottom) and, in its top 40 bits, the XOR of the top 40 bits of each of its reveals'
commitments (the round's first reveal: of keccak256(abi.encode(commitment, prevrandao))).

An elected-committee task (maxValidators 0, docs/protocol.md "Elected committees") maps trainer
seats instead: round 1 is drawn as above among the trainers; round r + 1 is elected when round r
closes (`elect`), from round r's utilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi import encode
from eth_utils import keccak

ENTRY_BITS = 108
ENTRIES_PER_WORD = 2
FINGERPRINT_BITS = 36
MIX_BITS = 40
MIX_SHIFT = 256 - MIX_BITS


@dataclass(frozen=True)
class RevealEntry:
    """What one reveal leaves in the reveal-order words: the trainer's seat, its sample count, the
    40 mixed bits (already taken from the commitment, or from the first reveal's hash) and its
    update digest (whose top 36 bits, the fingerprint, the entry holds)."""

    seat: int
    num_samples: int
    mix: int
    update_digest: bytes

    @property
    def fingerprint(self) -> int:
        return _u256(self.update_digest) >> (256 - FINGERPRINT_BITS)


def _u256(data: bytes) -> int:
    return int.from_bytes(data, "big")


def draw(seed: int, count: int, size: int, previous: int) -> int:
    """`size` of the seats 0 .. count - 1 by a partial Fisher-Yates shuffle on the seed's mixed-radix
    digits (count, count - 1, ...); if that is `previous` and count > size, member number
    (next digit mod size) of the shuffle is swapped for left-out seat number (next digit mod
    count - size)."""
    seats = list(range(count))
    digits = seed
    mask = 0
    for j in range(size):
        left = count - j
        k = j + digits % left
        digits //= left
        seats[j], seats[k] = seats[k], seats[j]
        mask |= 1 << seats[j]
    if mask == previous and count > size:
        out = digits % size
        digits //= size
        into = size + digits % (count - size)
        mask ^= (1 << seats[out]) | (1 << seats[into])
    return mask


def elect(scored: Sequence[tuple[int, int]], sitting: int, size: int, count: int) -> int:
    """An elected task's next committee, as a bitmap of trainer seats: `scored` holds (seat, utility)
    of each of this round's revealed updates (a refused duplicate's utility is 0), `sitting` the
    round's committee. The `size` best utilities first, ties to the lower seat; while seats are
    left, the trainers that did not reveal and do not sit, by seat (at least `size` trainers sit
    outside: minTrainers >= 2 * committeeSize)."""
    best = sorted(scored, key=lambda su: (-su[1], su[0]))[:size]
    mask = 0
    for seat, _ in best:
        mask |= 1 << seat
    revealed = {seat for seat, _ in scored}
    left = size - len(best)
    unrevealed = [i for i in range(count) if i not in revealed and not sitting >> i & 1]
    assert len(unrevealed) >= left, (scored, sitting, size, count)
    for seat in unrevealed[:left]:
        mask |= 1 << seat
    return mask


def members(validators: Sequence[str], mask: int) -> list[str]:
    """The committee's addresses in seat order (committee position j = the j-th)."""
    return [v for i, v in enumerate(validators) if mask >> i & 1]


def first_seed(prevrandao: int, model_id: int) -> int:
    """Round 1's seed: keccak256(abi.encode(block.prevrandao, modelId)) at startTraining."""
    return _u256(keccak(encode(["uint256", "uint256"], [prevrandao, model_id])))


def reveal_mix(commitment: bytes, position: int, prevrandao: int) -> int:
    """The 40 bits a reveal mixes into its order word."""
    if position == 0:
        return _u256(keccak(encode(["bytes32", "uint256"], [commitment, prevrandao]))) >> MIX_SHIFT
    return _u256(commitment) >> MIX_SHIFT


def order_words(entries: Sequence[RevealEntry]) -> list[int]:
    """The reveal-order words a round's reveals leave, in reveal order."""
    words = [0] * ((len(entries) + ENTRIES_PER_WORD - 1) // ENTRIES_PER_WORD)
    for position, e in enumerate(entries):
        slot = position % ENTRIES_PER_WORD
        entry = e.seat | e.num_samples << 8 | e.fingerprint << 72
        words[position // ENTRIES_PER_WORD] ^= (entry << (ENTRY_BITS * slot)) ^ (e.mix << MIX_SHIFT)
    return words


def next_seed(model_id: int, round_: int, mask: int, entries: Sequence[RevealEntry], prevrandao: int) -> int:
    """The seed of round `round_ + 1`'s committee after round `round_` (committee `mask`) closed."""
    if not entries:
        return _u256(keccak(encode(["uint256", "uint32", "uint32", "uint256"], [model_id, round_ + 1, mask, prevrandao])))
    return _u256(keccak(encode(["uint256", "uint32", "uint32", "uint256[]"], [model_id, round_ + 1, mask, order_words(entries)])))
