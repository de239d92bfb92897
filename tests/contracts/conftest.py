"""The contract tests' fixtures; they live in contract_helpers, which the tests import by that
unique name (`from conftest import` picked another folder's conftest when folders ran in another order)."""

from contract_helpers import *  # noqa: F403 - pytest finds the fixtures in this module's namespace
