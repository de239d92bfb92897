"""Hypothesis profiles for the Marketplace property tests (tests/contracts/test_invariants.py).

Profiles:
- "ci" (the default): 200 random action sequences, a few minutes on 2 cores.
- "thorough": 10,000 sequences (hours); for a release or after touching Marketplace.sol.

Switches (environment variables):
- FEDMARKET_HYPOTHESIS_PROFILE=ci|thorough picks a profile;
- FEDMARKET_HYPOTHESIS_EXAMPLES=N overrides the number of sequences of the chosen profile
  (e.g. FEDMARKET_HYPOTHESIS_EXAMPLES=10000 is the same as the "thorough" profile);
- FEDMARKET_HYPOTHESIS_STEPS=N overrides the maximum number of rules per sequence;
- FEDMARKET_HYPOTHESIS_SHRINK=0 reports a failing sequence as found (shrinking one can take minutes).

The sequences are split over PARTS test items (each its own random stream) so that the suite's two
workers share them; the profile's count is the total over the parts.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

DEFAULT_EXAMPLES = 200
THOROUGH_EXAMPLES = 10_000
DEFAULT_STEPS = 30
PARTS = 2

_COMMON = dict(
    deadline=None,
    stateful_step_count=DEFAULT_STEPS,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    print_blob=True,
)

settings.register_profile("ci", max_examples=DEFAULT_EXAMPLES, **_COMMON)
settings.register_profile("thorough", max_examples=THOROUGH_EXAMPLES, **_COMMON)


def marketplace_settings(parts: int = 1) -> settings:
    """The settings one of `parts` equal parts of the invariant test runs under (profile +
    environment overrides; the sequence count is the total over the parts, rounded up)."""
    profile = os.environ.get("FEDMARKET_HYPOTHESIS_PROFILE", "ci")
    base = settings.get_profile(profile)
    overrides: dict[str, int] = {}
    examples = os.environ.get("FEDMARKET_HYPOTHESIS_EXAMPLES")
    if examples:
        overrides["max_examples"] = int(examples)
    overrides["max_examples"] = -(-overrides.get("max_examples", base.max_examples) // parts)
    steps = os.environ.get("FEDMARKET_HYPOTHESIS_STEPS")
    if steps:
        overrides["stateful_step_count"] = int(steps)
    if os.environ.get("FEDMARKET_HYPOTHESIS_SHRINK") == "0":
        return settings(base, phases=[p for p in base.phases if p != Phase.shrink], **overrides)
    return settings(base, **overrides)
