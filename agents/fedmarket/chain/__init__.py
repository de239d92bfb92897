"""The chain layer: compile the contracts, run the embedded chain, deploy (and, from other
modules, the typed Marketplace client and the event cursor)."""

from fedmarket.chain.compile import Artifact, compile_contracts, load_artifact
from fedmarket.chain.deploy import deploy_contract, deploy_marketplace, read_address_book, write_address_book
from fedmarket.chain.embedded import new_embedded_web3, set_next_timestamp, time_travel

__all__ = [
    "Artifact",
    "compile_contracts",
    "deploy_contract",
    "deploy_marketplace",
    "load_artifact",
    "new_embedded_web3",
    "read_address_book",
    "set_next_timestamp",
    "time_travel",
    "write_address_book",
]
