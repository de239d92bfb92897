"""The one exception family every layer raises for a user-facing failure.

The CLI turns any FedmarketError into one clear line and a non-zero exit; anything else is a bug
and keeps its traceback.
"""


class FedmarketError(Exception):
    """A failure the user can act on: bad input, wrong phase, missing funds, unreachable node."""

    exit_code = 1
