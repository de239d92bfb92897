"""`fedmarket deploy`: compile contracts/ and deploy the Marketplace; record it in the address book."""

from __future__ import annotations

from typing import Optional

import typer

from fedmarket.cli import market_options as opt
from fedmarket.cli.output import console, one_line_errors, print_json


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)


@one_line_errors
@opt.with_session(("rpc", "address_book", "keystore_dir", "password_file"))
def deploy(
    rpc: Optional[str] = opt.RpcOption,  # before the deployer's --account in --help, as it always was
    account: Optional[str] = typer.Option(
        None, "--account", "-a", envvar="FEDMARKET_ACCOUNT", help="Deployer: keystore NAME, 0x ADDRESS, or dev:N (default: dev:0, dev chains only)."
    ),
    *,
    session: opt.MarketSession,
) -> None:
    """Compile the contracts (cached by source hash) and deploy the Marketplace.

    Writes deploy/deployments/<chainId>.json (or <--address-book>/<chainId>.json), where every
    other command finds the contract.
    """
    from fedmarket.chain.compile import compile_contracts
    from fedmarket.chain.deploy import MARKETPLACE, deploy_marketplace, deployments_dir

    w3 = session.connect()
    deployer = session.signer(w3, account or "dev:0")
    compile_contracts(include_test=False)
    _require_deploy_funds(w3, deployer.address)
    try:
        contract = deploy_marketplace(w3, deployer, record=True, directory=session.address_book)
    except Exception as exc:  # a node's refusal (funds, gas) as one line; bugs keep their traceback
        _reraise_node_refusal(exc, deployer.address)
        raise
    receipt = contract.deployment_receipt
    book = (session.address_book or deployments_dir()) / f"{int(w3.eth.chain_id)}.json"
    result = {
        "contract": MARKETPLACE,
        "address": contract.address,
        "chain_id": int(w3.eth.chain_id),
        "deployer": deployer.address,
        "tx": receipt["transactionHash"].to_0x_hex(),
        "block": int(receipt["blockNumber"]),
        "gas_used": int(receipt["gasUsed"]),
        "address_book": str(book),
    }
    if session.as_json:
        print_json(result)
        return
    console.print(f"Marketplace deployed at [bold]{contract.address}[/] on chain {result['chain_id']}", highlight=False)
    console.print(f"  deployer {deployer.address}, gas {result['gas_used']}, block {result['block']}", highlight=False)
    console.print(f"  address book {book}", highlight=False)


def _require_deploy_funds(w3, address: str) -> None:
    from fedmarket.errors import FedmarketError

    balance = int(w3.eth.get_balance(address))
    if balance == 0:
        raise FedmarketError(f"insufficient funds to deploy: {address} holds 0 ETH (fund it first, e.g. `fedmarket wallet send`)")


def _reraise_node_refusal(exc: Exception, address: str) -> None:
    from fedmarket.errors import FedmarketError

    if isinstance(exc, FedmarketError):
        raise exc
    text = str(exc).lower()
    if "insufficient funds" in text:
        raise FedmarketError(f"insufficient funds to deploy from {address}: the node refused the transaction") from None
    if "connection" in text and "refused" in text:
        raise FedmarketError(f"lost the connection to the node while deploying: {type(exc).__name__}") from None
