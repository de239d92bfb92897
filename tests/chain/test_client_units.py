"""MarketClient pieces that need no running market: error decoding from raw revert data,
the local commitment against the contract's, digests and CIDs, records, connecting."""

from __future__ import annotations

import pickle

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedmarket.chain.client import (
    ChainUnreachable,
    ContractRevert,
    ErrorDecoder,
    MarketClient,
    MarketNotDeployed,
    ModelParams,
    Panic,
    Phase,
    RevertReason,
    Role,
    SlashReason,
    Status,
    UnknownRevert,
    WrongPhase,
    as_digest,
    cid_to_digest,
    commitment,
    connect,
    digest_to_cid,
    format_eth,
    load_market_abi,
    open_market,
    revert_data,
    score_commitment,
    vote_commitment,
)
from fedmarket.errors import FedmarketError

ALICE = "0x" + "ab" * 20


def error_data(signature: str, types: list[str], values: list[object]) -> bytes:
    return keccak(text=signature)[:4] + encode(types, values)


@pytest.fixture(scope="module")
def decoder() -> ErrorDecoder:
    return ErrorDecoder(load_market_abi())


@pytest.mark.parametrize(
    ("signature", "types", "values", "function", "cls_name", "message"),
    [
        ("WrongPhase(uint256,uint32,uint8,uint8)", ["uint256", "uint32", "uint8", "uint8"], [3, 2, 1, 2], "commitUpdate", "WrongPhase",
         "task 3 round 2 is in its Reveal phase; commitUpdate needs Commit"),
        ("WrongPhase(uint256,uint32,uint8,uint8)", ["uint256", "uint32", "uint8", "uint8"], [3, 0, 1, 0], "commitUpdate", "WrongPhase",
         "task 3 round 0 is not running; commitUpdate needs its Commit phase"),
        ("UnknownModel(uint256)", ["uint256"], [7], "getModel", "UnknownModel", "unknown task 7"),
        ("WrongAmount(uint256,uint256)", ["uint256", "uint256"], [10**16, 5], "joinAsTrainer", "WrongAmount",
         "joinAsTrainer needs exactly 0.01 ETH (10000000000000000 wei); sent 5 wei"),
        ("WrongStatus(uint256,uint8,uint8)", ["uint256", "uint8", "uint8"], [4, 1, 2], "joinAsTrainer", "WrongStatus",
         "task 4 is Training; joinAsTrainer needs it Open"),
        ("RoleFull(uint256,uint8,uint256)", ["uint256", "uint8", "uint256"], [1, 1, 20], "joinAsTrainer", "RoleFull",
         "task 1 is full: it takes at most 20 trainers"),
        ("NoLicense(uint256,address)", ["uint256", "address"], [5, ALICE], "joinAsTrainer", "NoLicense",
         "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB has no licence for task 5: buy one first (buyLicense)"),
        ("RoundsOutOfRange(uint256,uint256)", ["uint256", "uint256"], [0, 1000], "newModel", "RoundsOutOfRange",
         "invalid task parameters: rounds 0 out of range 1..1000"),
        ("RoundNotDue(uint256,uint32,uint8,uint64)", ["uint256", "uint32", "uint8", "uint64"], [2, 1, 1, 1_800_000_000], "closeRound", "RoundNotDue",
         "task 2 round 1 is not due: its Commit phase runs until 2027-01-15 08:00:00 UTC"),
        ("WrongScoreCount(uint256,uint256)", ["uint256", "uint256"], [3, 2], "revealScores", "WrongScoreCount",
         "revealScores needs 3 scores, one per revealed update; got 2"),
        ("WrongPhase(uint256,uint32,uint8,uint8)", ["uint256", "uint32", "uint8", "uint8"], [3, 2, 4, 3], "revealScores", "WrongPhase",
         "task 3 round 2 is in its ScoreCommit phase; revealScores needs ScoreReveal"),
        ("AgreementToleranceOutOfRange(uint256,uint256,uint256)", ["uint256", "uint256", "uint256"], [0, 1, 20000], "newModel",
         "AgreementToleranceOutOfRange", "invalid task parameters: agreement tolerance 0 bps out of range 1..20000 bps"),
        ("NothingToWithdraw(address)", ["address"], [ALICE], "withdraw", "NothingToWithdraw",
         "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB has nothing to withdraw"),
        ("ZeroEscrow()", [], [], "newModel", "ZeroEscrow", "newModel needs a reward escrow > 0 wei (send value with it)"),
    ],
)  # fmt: skip
def test_custom_errors_decode_to_their_class_and_one_line(
    decoder: ErrorDecoder, signature: str, types: list[str], values: list[object], function: str, cls_name: str, message: str
) -> None:
    exc = decoder.decode(error_data(signature, types, values), function)
    assert type(exc).__name__ == cls_name
    assert isinstance(exc, ContractRevert) and isinstance(exc, FedmarketError)
    assert exc.name == cls_name
    assert str(exc) == message
    assert "\n" not in str(exc)


def test_error_fields_are_named_typed_and_attributes(decoder: ErrorDecoder) -> None:
    exc = decoder.decode(error_data("WrongPhase(uint256,uint32,uint8,uint8)", ["uint256", "uint32", "uint8", "uint8"], [3, 2, 1, 2]), "commitUpdate")
    assert isinstance(exc, WrongPhase)
    assert exc.fields == {"modelId": 3, "round": 2, "expected": Phase.COMMIT, "actual": Phase.REVEAL}
    assert exc.actual is Phase.REVEAL and exc.modelId == 3
    assert exc.function == "commitUpdate"


def test_every_abi_error_has_a_class_with_its_own_message(decoder: ErrorDecoder) -> None:
    from fedmarket.chain.client import ERROR_CLASSES

    abi_errors = {e["name"] for e in load_market_abi() if e["type"] == "error"}
    assert abi_errors <= set(ERROR_CLASSES), abi_errors - set(ERROR_CLASSES)


def test_error_string_panic_and_unknown_data(decoder: ErrorDecoder) -> None:
    reason = decoder.decode(error_data("Error(string)", ["string"], ["nope"]), "withdraw")
    assert isinstance(reason, RevertReason) and str(reason) == "withdraw reverted: nope"
    panic = decoder.decode(error_data("Panic(uint256)", ["uint256"], [0x11]), "closeRound")
    assert isinstance(panic, Panic) and str(panic) == "closeRound panicked: arithmetic overflow or underflow (0x11)"
    unknown = decoder.decode(b"\xde\xad\xbe\xef", "withdraw")
    assert isinstance(unknown, UnknownRevert) and str(unknown) == "withdraw reverted with unknown error data 0xdeadbeef"
    assert str(decoder.decode(b"", "withdraw")) == "withdraw reverted without a reason"
    truncated = decoder.decode(keccak(text="UnknownModel(uint256)")[:4] + b"\x01", "getModel")
    assert isinstance(truncated, UnknownRevert)


def test_reverts_survive_pickling(decoder: ErrorDecoder) -> None:
    exc = decoder.decode(error_data("UnknownModel(uint256)", ["uint256"], [7]), "getModel")
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc) and str(clone) == "unknown task 7" and clone.fields == {"modelId": 7}


def test_revert_data_from_web3_and_eth_tester_exceptions() -> None:
    from eth_tester.exceptions import TransactionFailed
    from web3.exceptions import ContractCustomError

    data = error_data("UnknownModel(uint256)", ["uint256"], [7])
    assert revert_data(ContractCustomError("0x" + data.hex(), data="0x" + data.hex())) == data
    try:
        try:
            raise TransactionFailed(data)
        except TransactionFailed:
            raise TransactionFailed(f"execution reverted: {data!r}")  # noqa: B904 - what web3's eth-tester provider does (the context, not the cause)
    except TransactionFailed as exc:
        assert revert_data(exc) == data
    assert revert_data(TransactionFailed(f"execution reverted: {data!r}")) == data
    assert revert_data(ValueError("something else")) is None


def test_enums_print_solidity_names() -> None:
    assert str(Phase.REVEAL) == "Reveal" and str(Status.CANCELLED) == "Cancelled" and str(Role.TRAINER) == "Trainer"
    assert str(Phase.SCORE_COMMIT) == "ScoreCommit" and str(Phase.VOTE_REVEAL) == "VoteReveal" and str(SlashReason.DISAGREED) == "Disagreed"
    assert Phase(8) is Phase.DUE


# ------------------------------------------------------------------------------ commitments, digests


def test_local_commitment_is_abi_encode_keccak() -> None:
    trainer = Account.from_key(b"\x02" * 32).address
    digest, salt = keccak(text="u"), keccak(text="s")
    expected = keccak(encode(["uint256", "uint32", "bytes32", "uint64", "bytes32", "address"], [1, 2, digest, 10, salt, trainer]))
    assert commitment(1, 2, digest, 10, salt, trainer) == expected
    assert commitment(1, 2, digest, 10, salt, trainer.lower()) == expected
    assert commitment(1, 2, digest_to_cid(digest), 10, salt, trainer) == expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    model_id=st.integers(0, 2**256 - 1),
    round=st.integers(0, 2**32 - 1),
    digest=st.binary(min_size=32, max_size=32),
    samples=st.integers(0, 2**64 - 1),
    salt=st.binary(min_size=32, max_size=32),
    key=st.integers(1, 2**64),
)
def test_local_commitment_equals_the_contracts(market: MarketClient, model_id: int, round: int, digest: bytes, samples: int, salt: bytes, key: int) -> None:
    trainer = Account.from_key(key.to_bytes(32, "big")).address
    assert commitment(model_id, round, digest, samples, salt, trainer) == market.commitment_of(model_id, round, digest, samples, salt, trainer)


def test_score_and_vote_commitments_are_abi_encode_keccak() -> None:
    """The tuple encoding of (modelId, round, validator, scores, salt) that the contract's
    abi.encode makes: head words, the array's offset, then its length and its int64 words (two's
    complement), spelled out here by hand. The contract accepting one is tests/chain/test_client.py."""
    validator = Account.from_key(b"\x03" * 32).address
    salt = keccak(text="s")

    def word(value: int) -> bytes:
        return (value % 2**256).to_bytes(32, "big")

    by_hand = word(7) + word(2) + bytes(12) + bytes.fromhex(validator[2:]) + word(5 * 32) + salt + word(2) + word(300_000) + word(-5)
    assert score_commitment(7, 2, validator, [300_000, -5], salt) == keccak(by_hand)
    assert score_commitment(7, 2, validator.lower(), [300_000, -5], salt) == keccak(by_hand)
    assert score_commitment(7, 2, validator, [300_000, -4], salt) != keccak(by_hand)
    assert vote_commitment(7, 2, validator, True, salt) == keccak(word(7) + word(2) + bytes(12) + bytes.fromhex(validator[2:]) + word(1) + salt)
    assert vote_commitment(7, 2, validator, False, salt) == keccak(word(7) + word(2) + bytes(12) + bytes.fromhex(validator[2:]) + word(0) + salt)
    with pytest.raises(FedmarketError, match="a salt is 32 bytes"):
        vote_commitment(7, 2, validator, True, b"short")


def test_cid_digest_round_trip() -> None:
    cid = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"  # Kubo: b"hello world\n"
    digest = cid_to_digest(cid)
    assert len(digest) == 32 and digest_to_cid(digest) == cid
    assert as_digest(cid) == digest == as_digest("0x" + digest.hex()) == as_digest(digest)
    for bad in ("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5", "bafy0", "0x1234", "Qm0OIl"):
        with pytest.raises(FedmarketError):
            as_digest(bad)
    with pytest.raises(FedmarketError):
        as_digest(b"\x00" * 31)


def test_format_eth() -> None:
    assert format_eth(0) == "0 ETH"
    assert format_eth(5) == "5 wei"
    assert format_eth(10**18) == "1 ETH"
    assert format_eth(15 * 10**17) == "1.5 ETH"
    assert format_eth(21_000 * 10**9) == "0.000021 ETH"


def test_model_params_defaults_and_abi_round_trip() -> None:
    params = ModelParams(spec_digest=keccak(text="s"), initial_model_digest="QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o", aggregator=ALICE)
    assert params.agreement_tolerance_bps == 10_000
    assert (params.trainer_share_bps, params.validator_share_bps, params.aggregator_share_bps) == (7000, 2000, 1000)
    assert params.trainer_share_bps + params.validator_share_bps + params.aggregator_share_bps == 10_000
    assert params.aggregator == "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"
    assert ModelParams.from_abi(params.to_abi()) == params
    assert params.initial_model_cid == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    abi_fields = next(e for e in load_market_abi() if e.get("name") == "newModel")["inputs"][0]["components"]
    assert len(abi_fields) == len(params.to_abi())


# ------------------------------------------------------------------------------ connecting


def test_connect_refused_is_one_line_naming_the_url() -> None:
    from fedmarket.chain.anvil import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChainUnreachable) as info:
        connect(url)
    assert str(info.value) == f"cannot reach the Ethereum node at {url}: connection refused (is it running? `fedmarket chain start` starts one)"


def test_connect_rejects_other_schemes() -> None:
    with pytest.raises(FedmarketError, match="unsupported RPC URL"):
        connect("ws://127.0.0.1:8546")


def test_open_market_without_code_or_address_book(tmp_path, w3, actors) -> None:
    with pytest.raises(MarketNotDeployed, match="no contract at"):
        MarketClient(w3, actors.outsider.address)
    with pytest.raises(MarketNotDeployed, match="run `fedmarket deploy`"):
        open_market(w3, address_book=tmp_path)


def test_open_market_reads_the_address_book(tmp_path, w3, actors) -> None:
    from fedmarket.chain.deploy import deploy_marketplace

    contract = deploy_marketplace(w3, actors.deployer, record=True, directory=tmp_path)
    market = open_market(w3, account=actors.owner, address_book=tmp_path)
    assert market.address == contract.address
    assert market.model_count() == 0


def test_sending_without_an_account_says_so(w3, market: MarketClient) -> None:
    viewer = MarketClient(w3, market.address)
    with pytest.raises(FedmarketError, match="has no account"):
        viewer.withdraw()


def test_time_control_on_the_embedded_chain(w3) -> None:
    from fedmarket.chain.timecontrol import advance_time, advance_to, chain_now

    before = chain_now(w3)
    assert advance_time(w3, 3_600) == chain_now(w3) >= before + 3_600
    assert advance_to(w3, before + 7_200) >= before + 7_200
    assert advance_to(w3, before) == chain_now(w3)  # never backwards
    with pytest.raises(FedmarketError, match="time only moves forward"):
        advance_time(w3, -1)
