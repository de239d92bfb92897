"""Every seed a task derives from its one `seed`, in one place.

A market run and `fedmarket sim` agree bit for bit only while they draw the same numbers, so each
random stream has one named function here and no caller computes a seed of its own. Streams that
must not overlap get distinct SeedSequence entropy (a stream tag, an ASCII word as an integer).
Changing any formula here changes every CID a task produces: the tests pin them.
"""

from __future__ import annotations

import numpy as np

HOLDOUT_TAG = 0x484F4C44  # "HOLD": the holdout cut is not the partition's stream
VALIDATOR_TAG = 0x56414C  # "VAL": a validator's scoring is not a trainer's batch order
SAMPLE_TAG = 0x53414D50  # "SAMP": which clients a round samples is not a batch order
STRAGGLER_TAG = 0x534C4F57  # "SLOW": which simulated clients compute slowly (fl.semi)
TRUST_TAG = 0x54525553  # "TRUS": the random trust graph of the semi-centralised mode
SCORE_TAG = 0x53434F52  # "SCOR": the batch a semi-centralised client scores received models on


def _draw(*entropy: int) -> int:
    """One 32-bit seed from a SeedSequence over `entropy`."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


def partition_seed(seed: int) -> int:
    """The Generator seed that splits the pool among the clients (fl.partition)."""
    return seed


def initial_model_seed(seed: int) -> int:
    """torch's seed for the initial global model (round 0)."""
    return seed


def holdout_entropy(seed: int) -> list[int]:
    """Entropy of the Generator that draws the held-out samples before partitioning."""
    return [seed, HOLDOUT_TAG]


def client_seed(seed: int, round_number: int, client: int) -> int:
    """Batch-order seed of trainer (client) `client`, 0-based, in round `round_number`."""
    return _draw(seed, round_number, client)


def client_sample_seed(seed: int, round_number: int) -> int:
    """The Generator seed that picks the clients of round `round_number` (FedAvg's fraction C)."""
    return _draw(seed, round_number, SAMPLE_TAG)


def validator_seed(seed: int, round_number: int, validator: int) -> int:
    """Seed of validator `validator`'s utility in round `round_number` (its reference training)."""
    return _draw(seed, round_number, validator, VALIDATOR_TAG)


def straggler_seed(seed: int) -> int:
    """Seed of the Generator that picks the slowed-down clients of an asynchronous simulation."""
    return _draw(seed, STRAGGLER_TAG)


def trust_graph_seed(seed: int) -> int:
    """Seed of the Generator that draws a random trust graph (fl.semi.trust)."""
    return _draw(seed, TRUST_TAG)


def score_batch_seed(seed: int, round_number: int, client: int) -> int:
    """Seed of the one batch client `client` scores the models it received on in `round_number`."""
    return _draw(seed, round_number, client, SCORE_TAG)


def centralised_seed(seed: int) -> int:
    """`bench accuracy`: the batch-order seed of centralised training on the pooled data."""
    return seed


# `bench fairness` runs the market's round without the chain; its own streams:


def fairness_holdout_seed(seed: int) -> int:
    """The Generator seed that draws the fairness validator's held-out samples."""
    return seed


def fairness_utility_seed(seed: int, round_number: int) -> int:
    """The utility's seed in round `round_number` of the fairness run with `seed`."""
    return seed * 1000 + round_number


def fairness_noise_seed(seed: int, round_number: int, client: int) -> int:
    """The Gaussian-noise attacker's seed (distinct while client < 100 and round < 10)."""
    return seed * 1000 + round_number * 100 + client
