"""The compile pipeline: npm solc through scripts/solc-wrapper.js, cached by source hash."""

from __future__ import annotations

import json
import subprocess

import pytest

from fedmarket.chain import compile as compile_mod
from fedmarket.chain.compile import COMPILER_SETTINGS, compile_contracts, load_artifact, source_hash
from fedmarket.chain.deploy import read_address_book, write_address_book
from fedmarket.errors import FedmarketError


def test_wrapper_answers_version():
    out = subprocess.run(["node", str(compile_mod.wrapper_path()), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1].startswith("Version: 0.8.")


def test_wrapper_prints_only_json():
    request = json.dumps(compile_mod.standard_json_input({"A.sol": "pragma solidity ^0.8.24; contract A {}"}))
    out = subprocess.run(["node", str(compile_mod.wrapper_path()), "--standard-json"], input=request, capture_output=True, text=True, check=True)
    assert "A" in json.loads(out.stdout)["contracts"]["A.sol"]


def test_settings_pin_evm_version_and_optimizer():
    assert COMPILER_SETTINGS["evmVersion"] == "cancun"
    assert COMPILER_SETTINGS["optimizer"] == {"enabled": True, "runs": 200}


def test_cached_artifacts_equal_a_fresh_compile():
    """No hand-edited artifacts: the cache holds exactly what the compiler produces."""
    cached = compile_contracts(include_test=False)
    fresh = compile_contracts(include_test=False, use_cache=False)
    assert cached.keys() == fresh.keys()
    for name in fresh:
        assert cached[name] == fresh[name], name
    marketplace = fresh["Marketplace"]
    assert marketplace.bytecode.startswith("0x60") and len(marketplace.deployed_bytecode) > 100
    assert any(item.get("name") == "newModel" for item in marketplace.abi)


def test_test_set_contains_main_set():
    main = compile_contracts(include_test=False)
    everything = compile_contracts(include_test=True)
    assert set(main) <= set(everything)
    assert all(not a.source.startswith("contracts/test/") for a in main.values())


def test_source_hash_tracks_sources(monkeypatch, tmp_path):
    before = source_hash()
    original = compile_mod.source_files

    def edited(include_test=False):
        files = dict(original(include_test))
        files["contracts/Extra.sol"] = "// extra"
        return files

    monkeypatch.setattr(compile_mod, "source_files", edited)
    assert compile_mod.source_hash() != before


def test_load_artifact():
    assert load_artifact("Marketplace").name == "Marketplace"
    with pytest.raises(FedmarketError, match="no contract named"):
        load_artifact("NoSuchContract")


def test_missing_node_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(compile_mod.shutil, "which", lambda _: None)
    with pytest.raises(FedmarketError, match="scripts/setup.sh"):
        compile_contracts(use_cache=False)


def test_missing_solc_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(compile_mod, "repo_root", lambda: tmp_path)
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "A.sol").write_text("contract A {}")
    with pytest.raises(FedmarketError, match="scripts/setup.sh"):
        compile_contracts(use_cache=False)


def test_compile_error_is_reported(monkeypatch):
    monkeypatch.setattr(compile_mod, "source_files", lambda include_test=False: {"contracts/Bad.sol": "contract Bad { function }"})
    with pytest.raises(FedmarketError, match="do not compile"):
        compile_contracts(use_cache=False)


def test_address_book_round_trip(tmp_path):
    path = write_address_book(31337, "Marketplace", "0x" + "ab" * 20, "0x" + "12" * 32, 7, deployer="0x" + "cd" * 20, directory=tmp_path)
    assert path == tmp_path / "31337.json"
    book = read_address_book(31337, directory=tmp_path)
    entry = book["contracts"]["Marketplace"]
    assert book["chainId"] == 31337
    assert entry["address"].lower() == "0x" + "ab" * 20 and entry["blockNumber"] == 7
    assert entry["deployer"].lower() == "0x" + "cd" * 20
    assert entry["compiler"] == compile_mod.compiler_version()
    assert entry["sourceHash"] == source_hash()
    with pytest.raises(FedmarketError, match="fedmarket deploy"):
        read_address_book(1, directory=tmp_path)


def test_deploy_records_address_book(w3, actors, tmp_path):
    from fedmarket.chain.deploy import deploy_marketplace, deployed_address

    market = deploy_marketplace(w3, actors.deployer, record=True, directory=tmp_path)
    assert deployed_address(w3.eth.chain_id, directory=tmp_path) == market.address
    entry = read_address_book(w3.eth.chain_id, directory=tmp_path)["contracts"]["Marketplace"]
    assert entry["deployer"] == actors.deployer
    assert entry["blockNumber"] == w3.eth.block_number
    # The code holds two immutables, the ParamsCheck and the RoundSettlement the constructor
    # deployed (zeros in the artifact).
    code = w3.eth.get_code(market.address).hex()
    for helper in (market.functions.PARAMS_CHECK().call(), market.functions.SETTLEMENT().call()):
        code = code.replace(helper[2:].lower().rjust(64, "0"), "0" * 64)
    assert code == compile_contracts()["Marketplace"].deployed_bytecode[2:]


def test_settlement_runs_only_by_delegatecall(w3, market, actors):
    """RoundSettlement settles rounds only on the Marketplace's storage: called directly it refuses."""
    from contract_helpers import decode_error
    from eth_tester.exceptions import TransactionFailed

    settlement = w3.eth.contract(address=market.functions.SETTLEMENT().call(), abi=compile_contracts()["RoundSettlement"].abi)
    with pytest.raises(TransactionFailed) as raised:
        settlement.functions.settleRound(1).call({"from": actors.outsiders[0]})
    assert decode_error(settlement, raised.value) == ("NotDelegated", ())
