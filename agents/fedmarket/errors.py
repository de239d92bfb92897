"""The one exception family every layer raises for a user-facing failure.

The CLI turns any FedmarketError into one clear line and a non-zero exit; anything else is a bug
and keeps its traceback.
"""


class FedmarketError(Exception):
    """A failure the user can act on: bad input, wrong phase, missing funds, unreachable node."""

    exit_code = 1


class StoreUnavailable(FedmarketError):
    """The store could not be reached, or did not serve a blob in time: a transport failure, so
    nothing is known about the content (unlike a blob that does not match its CID, which is)."""
