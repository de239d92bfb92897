"""Task set-up: newModel, payForModel, buyLicense, join*, startTraining, cancelModel.

One test or more per external function and per revert path; custom errors are decoded from the
revert data and checked by name and arguments.
"""

from __future__ import annotations

import pytest
from contract_helpers import DEFAULT_PARAMS, DEFAULT_REWARD, PHASE, ROLE, STATUS

from fedmarket.chain.reverts import ErrorDecoder, InvalidParams

ZERO32 = b"\x00" * 32


# ------------------------------------------------------------------------------ newModel


def test_new_model_records_task_and_escrow(market, actors, tx, events, make_params, flow):
    receipt = tx(market.functions.newModel(make_params()), actors.owner, value=DEFAULT_REWARD)
    (created,) = events(receipt, "ModelCreated")
    assert created["modelId"] == 1 and created["owner"] == actors.owner and created["aggregator"] == actors.aggregator
    assert created["specDigest"] == DEFAULT_PARAMS["specDigest"] and created["rounds"] == 2
    (paid,) = events(receipt, "ModelCreationPayment")
    assert (paid["modelId"], paid["owner"], paid["amount"]) == (1, actors.owner, DEFAULT_REWARD)
    state = flow.state(1)
    assert state["status"] == STATUS["Open"] and state["escrow"] == DEFAULT_REWARD and state["reward"] == 0
    assert state["globalModelDigest"] == DEFAULT_PARAMS["initialModelDigest"]
    assert market.functions.modelCount().call() == 1
    assert market.functions.taskBalance(1).call() == DEFAULT_REWARD
    assert flow.params(1) == make_params()


def test_new_model_ids_are_sequential(post_task, market):
    assert [post_task(), post_task(), post_task()] == [1, 2, 3]
    assert market.functions.modelCount().call() == 3


def test_new_model_zero_escrow(market, actors, make_params, expect_revert):
    expect_revert(market.functions.newModel(make_params()), actors.owner, "ZeroEscrow", value=0)


MAX_WINDOW = 30 * 86400
MAX_STAKE = 2**128 - 1

# (id, params overrides, error, its args, the client's line after "invalid task parameters: ")
INVALID_PARAMS = [
    ("spec-digest-zero", {"specDigest": ZERO32}, "ZeroSpecDigest", (), "specDigest is zero (no task spec)"),
    ("initial-model-digest-zero", {"initialModelDigest": ZERO32}, "ZeroInitialModelDigest", (), "initialModelDigest is zero (no initial model)"),
    ("aggregator-zero", {"aggregator": "0x" + "00" * 20}, "ZeroAggregator", (), "the aggregator is the zero address"),
    ("rounds-zero", {"rounds": 0}, "RoundsOutOfRange", (0, 1000), "rounds 0 out of range 1..1000"),
    ("rounds-above-cap", {"rounds": 1001}, "RoundsOutOfRange", (1001, 1000), "rounds 1001 out of range 1..1000"),
    ("min-trainers-zero", {"minTrainers": 0}, "TrainerBoundsOutOfRange", (0, 20, 64),
     "trainers 0..20 out of range: need 1 <= minTrainers <= maxTrainers <= 64"),
    ("min-trainers-above-max", {"minTrainers": 5, "maxTrainers": 4}, "TrainerBoundsOutOfRange", (5, 4, 64),
     "trainers 5..4 out of range: need 1 <= minTrainers <= maxTrainers <= 64"),
    ("max-trainers-above-cap", {"maxTrainers": 65}, "TrainerBoundsOutOfRange", (3, 65, 64),
     "trainers 3..65 out of range: need 1 <= minTrainers <= maxTrainers <= 64"),
    ("committee-zero", {"committeeSize": 0}, "CommitteeSizeOutOfRange", (0, 9), "committeeSize 0 out of range 1..9"),
    ("committee-above-cap", {"committeeSize": 10, "maxValidators": 12}, "CommitteeSizeOutOfRange", (10, 9), "committeeSize 10 out of range 1..9"),
    ("max-validators-below-committee", {"maxValidators": 2}, "MaxValidatorsOutOfRange", (2, 3, 32),
     "maxValidators 2 out of range 3..32 (committeeSize..32; 0 elects the committee from the trainers)"),
    ("max-validators-above-cap", {"maxValidators": 33}, "MaxValidatorsOutOfRange", (33, 3, 32),
     "maxValidators 33 out of range 3..32 (committeeSize..32; 0 elects the committee from the trainers)"),
    ("elected-min-trainers-below-two-committees", {"maxValidators": 0, "minTrainers": 5, "maxTrainers": 10}, "ElectedTrainersOutOfRange",
     (5, 10, 3, 32), "an elected committee of 3 needs minTrainers >= 6 (a whole next committee outside it) and maxTrainers <= 32; got trainers 5..10"),
    ("elected-max-trainers-above-map", {"maxValidators": 0, "minTrainers": 6, "maxTrainers": 33}, "ElectedTrainersOutOfRange",
     (6, 33, 3, 32), "an elected committee of 3 needs minTrainers >= 6 (a whole next committee outside it) and maxTrainers <= 32; got trainers 6..33"),
    ("commit-window-zero", {"commitWindow": 0}, "WindowOutOfRange", (PHASE["Commit"], 0, 1, MAX_WINDOW),
     "commit window 0 s out of range 1..2592000 s"),
    ("reveal-window-zero", {"revealWindow": 0}, "WindowOutOfRange", (PHASE["Reveal"], 0, 1, MAX_WINDOW),
     "reveal window 0 s out of range 1..2592000 s"),
    ("score-window-above-cap", {"scoreWindow": MAX_WINDOW + 1}, "WindowOutOfRange", (PHASE["ScoreCommit"], MAX_WINDOW + 1, 1, MAX_WINDOW),
     "score window 2592001 s out of range 1..2592000 s"),
    ("publish-window-zero", {"publishWindow": 0}, "WindowOutOfRange", (PHASE["Publish"], 0, 1, MAX_WINDOW),
     "publish window 0 s out of range 1..2592000 s"),
    ("confirm-window-above-cap", {"confirmWindow": MAX_WINDOW + 1}, "WindowOutOfRange", (PHASE["VoteCommit"], MAX_WINDOW + 1, 1, MAX_WINDOW),
     "confirm window 2592001 s out of range 1..2592000 s"),
    ("first-bad-window-named", {"revealWindow": 0, "confirmWindow": 0}, "WindowOutOfRange", (PHASE["Reveal"], 0, 1, MAX_WINDOW),
     "reveal window 0 s out of range 1..2592000 s"),
    ("trainer-stake-too-large", {"trainerStake": 2**128}, "StakeTooLarge", (ROLE["Trainer"], 2**128, MAX_STAKE),
     f"trainer stake {2**128} wei above the largest, {MAX_STAKE} wei"),
    ("validator-stake-too-large", {"validatorStake": 2**128}, "StakeTooLarge", (ROLE["Validator"], 2**128, MAX_STAKE),
     f"validator stake {2**128} wei above the largest, {MAX_STAKE} wei"),
    ("aggregator-stake-too-large", {"aggregatorStake": 2**256 - 1}, "StakeTooLarge", (ROLE["Aggregator"], 2**256 - 1, MAX_STAKE),
     f"aggregator stake {2**256 - 1} wei above the largest, {MAX_STAKE} wei"),
    ("late-slash-above-whole", {"lateSlashBps": 10_001}, "SlashBpsTooLarge", (10_001, 5_000, 10_000),
     "slash fractions late 10001 / bad 5000 bps: each at most 10000"),
    ("bad-slash-above-whole", {"badSlashBps": 10_001}, "SlashBpsTooLarge", (1_000, 10_001, 10_000),
     "slash fractions late 1000 / bad 10001 bps: each at most 10000"),
    ("shares-above-whole", {"trainerShareBps": 7_001}, "SharesDoNotSum", (7_001, 2_000, 1_000, 10_000),
     "shares 7001 + 2000 + 1000 = 10001 bps; they must sum to 10000"),
    ("shares-below-whole", {"aggregatorShareBps": 0}, "SharesDoNotSum", (7_000, 2_000, 0, 10_000),
     "shares 7000 + 2000 + 0 = 9000 bps; they must sum to 10000"),
]  # fmt: skip


def _client_error(market, sender, params):
    """The revert of newModel(params) as the Python client decodes it."""
    with pytest.raises(Exception) as info:
        market.functions.newModel(params).call({"from": sender, "value": 1})
    exc = ErrorDecoder(market.abi).decode_exception(info.value, "newModel")
    assert exc is not None, f"not a revert: {info.value!r}"
    return exc


@pytest.mark.parametrize("overrides, error, args, message", [c[1:] for c in INVALID_PARAMS], ids=[c[0] for c in INVALID_PARAMS])
def test_new_model_invalid_params(market, actors, make_params, expect_revert, overrides, error, args, message):
    expect_revert(market.functions.newModel(make_params(**overrides)), actors.owner, error, *args, value=1)
    exc = _client_error(market, actors.owner, make_params(**overrides))
    assert isinstance(exc, InvalidParams) and type(exc).__name__ == error
    assert str(exc) == f"invalid task parameters: {message}"


def test_new_model_aggregator_cannot_be_owner(market, actors, make_params, expect_revert):
    params = make_params(aggregator=actors.owner)
    expect_revert(market.functions.newModel(params), actors.owner, "AggregatorIsOwner", actors.owner, value=1)
    exc = _client_error(market, actors.owner, params)
    assert isinstance(exc, InvalidParams)
    assert str(exc) == f"invalid task parameters: the aggregator {actors.owner} is the task's owner, who cannot take part in it"


def test_new_model_checks_escrow_before_params(market, actors, make_params, expect_revert):
    expect_revert(market.functions.newModel(make_params(rounds=0)), actors.owner, "ZeroEscrow", value=0)


def test_new_model_checks_params_in_order(market, actors, make_params, expect_revert):
    """Every check fails: the first one in IMarketplace's order reverts."""
    params = make_params(
        specDigest=ZERO32,
        initialModelDigest=ZERO32,
        rounds=0,
        minTrainers=0,
        committeeSize=0,
        commitWindow=0,
        trainerStake=2**128,
        lateSlashBps=10_001,
        trainerShareBps=0,
    )
    expect_revert(market.functions.newModel(params), actors.owner, "ZeroSpecDigest", value=1)
    expect_revert(market.functions.newModel(make_params(rounds=0, minTrainers=0)), actors.owner, "RoundsOutOfRange", value=1)
    expect_revert(market.functions.newModel(make_params(commitWindow=0, trainerStake=2**128)), actors.owner, "WindowOutOfRange", value=1)
    expect_revert(market.functions.newModel(make_params(trainerStake=2**128, trainerShareBps=0)), actors.owner, "StakeTooLarge", value=1)


def test_new_model_accepts_bounds(post_task, flow):
    model_id = post_task(rounds=1000, maxTrainers=64, committeeSize=9, maxValidators=32, commitWindow=1, confirmWindow=30 * 86400)
    assert flow.params(model_id)[3] == 1000


# ------------------------------------------------------------------------------ payForModel


def test_pay_for_model_tops_up(market, actors, tx, events, post_task, flow):
    model_id = post_task()
    receipt = tx(market.functions.payForModel(model_id), actors.owner, value=7)
    assert events(receipt, "ModelCreationPayment") == [{"modelId": model_id, "owner": actors.owner, "amount": 7}]
    assert flow.state(model_id)["escrow"] == DEFAULT_REWARD + 7


def test_pay_for_model_unknown(market, actors, expect_revert):
    expect_revert(market.functions.payForModel(9), actors.owner, "UnknownModel", 9, value=1)


def test_pay_for_model_not_owner(market, actors, expect_revert, post_task):
    model_id = post_task()
    expect_revert(market.functions.payForModel(model_id), actors.outsiders[0], "NotOwner", model_id, actors.outsiders[0], value=1)


def test_pay_for_model_zero(market, actors, expect_revert, post_task):
    model_id = post_task()
    expect_revert(market.functions.payForModel(model_id), actors.owner, "ZeroEscrow")


def test_pay_for_model_after_start(market, actors, expect_revert, ready_task):
    model_id = ready_task()
    expect_revert(market.functions.payForModel(model_id), actors.owner, "WrongStatus", model_id, STATUS["Open"], STATUS["Training"], value=1)


# ------------------------------------------------------------------------------ buyLicense


def test_buy_license_holds_fee(market, actors, tx, events, post_task, flow):
    """Issue 10 item 2: the fee is held by the task (part of its balance), not credited to the owner."""
    model_id = post_task(licenseFee=1_234)
    trainer = actors.trainers[0]
    receipt = tx(market.functions.buyLicense(model_id), trainer, value=1_234)
    assert events(receipt, "LicensePurchased") == [{"modelId": model_id, "licensee": trainer, "fee": 1_234}]
    assert market.functions.credit(actors.owner).call() == 0
    assert market.functions.totalCredit().call() == 0
    assert (flow.state(model_id)["licenseIncome"], flow.state(model_id)["licenseHeld"]) == (0, 1_234)
    assert flow.participant(model_id, trainer)["licensed"] is True
    assert market.functions.taskBalance(model_id).call() == DEFAULT_REWARD + 1_234


def test_buy_license_free(market, actors, tx, post_task, flow):
    model_id = post_task(licenseFee=0)
    tx(market.functions.buyLicense(model_id), actors.trainers[0], value=0)
    assert flow.participant(model_id, actors.trainers[0])["licensed"] is True
    assert market.functions.credit(actors.owner).call() == 0


def test_buy_license_during_training(market, actors, expect_revert, ready_task, flow):
    """Issue 10 item 4: a licence bought during training could not be used to join: no sale."""
    model_id = ready_task()
    expect_revert(market.functions.buyLicense(model_id), actors.outsiders[0], "WrongStatus", model_id, STATUS["Open"], STATUS["Training"], value=1_000)
    assert flow.participant(model_id, actors.outsiders[0])["licensed"] is False


def test_buy_license_owner(market, actors, expect_revert, post_task):
    model_id = post_task()
    expect_revert(market.functions.buyLicense(model_id), actors.owner, "OwnerCannotParticipate", model_id, value=1_000)


def test_buy_license_twice(market, actors, tx, expect_revert, post_task):
    model_id = post_task()
    tx(market.functions.buyLicense(model_id), actors.trainers[0], value=1_000)
    expect_revert(market.functions.buyLicense(model_id), actors.trainers[0], "AlreadyLicensed", model_id, actors.trainers[0], value=1_000)


def test_buy_license_wrong_fee(market, actors, expect_revert, post_task):
    model_id = post_task()
    expect_revert(market.functions.buyLicense(model_id), actors.trainers[0], "WrongAmount", 1_000, 999, value=999)


def test_buy_license_unknown(market, actors, expect_revert):
    expect_revert(market.functions.buyLicense(3), actors.trainers[0], "UnknownModel", 3, value=1_000)


def test_buy_license_after_cancel(market, actors, tx, expect_revert, post_task):
    model_id = post_task()
    tx(market.functions.cancelModel(model_id), actors.owner)
    expect_revert(market.functions.buyLicense(model_id), actors.trainers[0], "WrongStatus", model_id, STATUS["Open"], STATUS["Cancelled"], value=1_000)


# ------------------------------------------------------------------------------ joins


def test_join_as_trainer(market, actors, tx, events, post_task, flow):
    model_id = post_task()
    trainer = actors.trainers[0]
    tx(market.functions.buyLicense(model_id), trainer, value=1_000)
    receipt = tx(market.functions.joinAsTrainer(model_id), trainer, value=10_000)
    assert events(receipt, "ParticipantJoined") == [{"modelId": model_id, "participant": trainer, "role": ROLE["Trainer"], "stake": 10_000}]
    assert flow.participant(model_id, trainer) == {"role": ROLE["Trainer"], "stakeRemaining": 10_000, "earned": 0, "slashed": 0, "licensed": True}
    assert market.functions.trainers(model_id).call() == [trainer]
    assert flow.state(model_id)["stakesHeld"] == 10_000 and flow.state(model_id)["trainerCount"] == 1
    assert market.functions.taskBalance(model_id).call() == DEFAULT_REWARD + 1_000 + 10_000


def test_join_as_trainer_needs_license(market, actors, expect_revert, post_task):
    model_id = post_task()
    expect_revert(market.functions.joinAsTrainer(model_id), actors.trainers[0], "NoLicense", model_id, actors.trainers[0], value=10_000)


def test_join_as_trainer_owner(market, actors, expect_revert, post_task):
    model_id = post_task()
    expect_revert(market.functions.joinAsTrainer(model_id), actors.owner, "OwnerCannotParticipate", model_id, value=10_000)


def test_join_as_trainer_wrong_stake(market, actors, tx, expect_revert, post_task):
    model_id = post_task()
    tx(market.functions.buyLicense(model_id), actors.trainers[0], value=1_000)
    expect_revert(market.functions.joinAsTrainer(model_id), actors.trainers[0], "WrongAmount", 10_000, 10_001, value=10_001)


def test_join_as_trainer_twice(market, actors, tx, expect_revert, post_task):
    model_id = post_task()
    trainer = actors.trainers[0]
    tx(market.functions.buyLicense(model_id), trainer, value=1_000)
    tx(market.functions.joinAsTrainer(model_id), trainer, value=10_000)
    expect_revert(market.functions.joinAsTrainer(model_id), trainer, "AlreadyJoined", model_id, trainer, ROLE["Trainer"], value=10_000)
    expect_revert(market.functions.joinAsValidator(model_id), trainer, "AlreadyJoined", model_id, trainer, ROLE["Trainer"], value=20_000)


def test_join_as_trainer_full(market, actors, tx, expect_revert, post_task):
    model_id = post_task(minTrainers=1, maxTrainers=2)
    for trainer in actors.trainers[:3]:
        tx(market.functions.buyLicense(model_id), trainer, value=1_000)
    for trainer in actors.trainers[:2]:
        tx(market.functions.joinAsTrainer(model_id), trainer, value=10_000)
    expect_revert(market.functions.joinAsTrainer(model_id), actors.trainers[2], "RoleFull", model_id, ROLE["Trainer"], 2, value=10_000)


def test_join_as_trainer_after_start(market, actors, tx, expect_revert, ready_task):
    model_id = ready_task()
    trainer = actors.trainers[5]
    expect_revert(market.functions.joinAsTrainer(model_id), trainer, "WrongStatus", model_id, STATUS["Open"], STATUS["Training"], value=10_000)


def test_join_as_validator(market, actors, tx, events, post_task, flow):
    model_id = post_task()
    validator = actors.validators[0]
    receipt = tx(market.functions.joinAsValidator(model_id), validator, value=20_000)
    assert events(receipt, "ParticipantJoined") == [{"modelId": model_id, "participant": validator, "role": ROLE["Validator"], "stake": 20_000}]
    assert market.functions.validators(model_id).call() == [validator]
    assert flow.participant(model_id, validator)["stakeRemaining"] == 20_000
    assert flow.state(model_id)["validatorCount"] == 1


def test_join_as_validator_reverts(market, actors, tx, expect_revert, post_task):
    model_id = post_task(committeeSize=1, maxValidators=1)
    v0, v1 = actors.validators[:2]
    expect_revert(market.functions.joinAsValidator(model_id), actors.owner, "OwnerCannotParticipate", model_id, value=20_000)
    expect_revert(market.functions.joinAsValidator(model_id), v0, "WrongAmount", 20_000, 0)
    tx(market.functions.joinAsValidator(model_id), v0, value=20_000)
    expect_revert(market.functions.joinAsValidator(model_id), v0, "AlreadyJoined", model_id, v0, ROLE["Validator"], value=20_000)
    expect_revert(market.functions.joinAsValidator(model_id), v1, "RoleFull", model_id, ROLE["Validator"], 1, value=20_000)
    expect_revert(market.functions.joinAsValidator(99), v1, "UnknownModel", 99, value=20_000)


def test_join_as_validator_after_cancel(market, actors, tx, expect_revert, post_task):
    model_id = post_task()
    tx(market.functions.cancelModel(model_id), actors.owner)
    expect_revert(market.functions.joinAsValidator(model_id), actors.validators[0], "WrongStatus", model_id, STATUS["Open"], STATUS["Cancelled"], value=20_000)


def test_join_as_aggregator(market, actors, tx, events, post_task, flow):
    model_id = post_task()
    receipt = tx(market.functions.joinAsAggregator(model_id), actors.aggregator, value=30_000)
    assert events(receipt, "ParticipantJoined") == [{"modelId": model_id, "participant": actors.aggregator, "role": ROLE["Aggregator"], "stake": 30_000}]
    assert flow.state(model_id)["aggregatorJoined"] is True
    assert flow.participant(model_id, actors.aggregator)["role"] == ROLE["Aggregator"]


def test_join_as_aggregator_reverts(market, actors, tx, expect_revert, post_task):
    model_id = post_task()
    other = actors.outsiders[0]
    expect_revert(market.functions.joinAsAggregator(model_id), other, "NotAggregator", model_id, other, value=30_000)
    expect_revert(market.functions.joinAsAggregator(model_id), actors.aggregator, "WrongAmount", 30_000, 1, value=1)
    tx(market.functions.joinAsAggregator(model_id), actors.aggregator, value=30_000)
    expect_revert(
        market.functions.joinAsAggregator(model_id), actors.aggregator, "AlreadyJoined", model_id, actors.aggregator, ROLE["Aggregator"], value=30_000
    )


def test_join_as_aggregator_after_start(market, actors, expect_revert, ready_task):
    model_id = ready_task()
    expect_revert(market.functions.joinAsAggregator(model_id), actors.aggregator, "WrongStatus", model_id, STATUS["Open"], STATUS["Training"], value=30_000)


def test_named_aggregator_that_joined_as_trainer_cannot_aggregate(market, actors, tx, expect_revert, post_task):
    model_id = post_task()
    tx(market.functions.buyLicense(model_id), actors.aggregator, value=1_000)
    tx(market.functions.joinAsTrainer(model_id), actors.aggregator, value=10_000)
    expect_revert(market.functions.joinAsAggregator(model_id), actors.aggregator, "AlreadyJoined", model_id, actors.aggregator, ROLE["Trainer"], value=30_000)


# ------------------------------------------------------------------------------ startTraining


@pytest.mark.parametrize("starter", ["owner", "aggregator"])
def test_start_training(market, actors, tx, events, ready_task, flow, starter):
    model_id = ready_task(start=False)
    receipt = tx(market.functions.startTraining(model_id), getattr(actors, starter))
    assert events(receipt, "TrainingStarted") == [{"modelId": model_id, "reward": DEFAULT_REWARD}]
    (started,) = events(receipt, "RoundStarted")
    block = market.w3.eth.get_block(receipt["blockNumber"])
    assert started["round"] == 1 and started["commitDeadline"] == block["timestamp"] + 100
    state = flow.state(model_id)
    assert state["status"] == STATUS["Training"] and state["reward"] == DEFAULT_REWARD and state["currentRound"] == 1
    view = flow.round(model_id, 1)
    assert view["phase"] == PHASE["Commit"] and view["phaseDeadline"] == started["commitDeadline"]
    assert view["committee"] == started["committee"] and len(view["committee"]) == 3


def test_start_training_committee_draw_formula(market, actors, tx, events, ready_task):
    """Round 1's committee: Committee.draw(keccak256(abi.encode(prevrandao, modelId)), V, c, 0), in seat order."""
    import committee_model as CM

    model_id = ready_task(n_validators=5, start=False)
    receipt = tx(market.functions.startTraining(model_id), actors.owner)
    validators = market.functions.validators(model_id).call()
    (started,) = events(receipt, "RoundStarted")
    # py-evm executes transactions with prevrandao 0 and draws the block's mixHash afterwards;
    # a node executes with the mixHash. Either way the committee follows the formula.
    candidates = [0, int.from_bytes(bytes(market.w3.eth.get_block(receipt["blockNumber"])["mixHash"]), "big")]
    committees = [CM.members(validators, CM.draw(CM.first_seed(randao, model_id), 5, 3, 0)) for randao in candidates]
    assert started["committee"] in committees


def test_start_training_not_owner(market, actors, expect_revert, ready_task):
    model_id = ready_task(start=False)
    expect_revert(market.functions.startTraining(model_id), actors.trainers[0], "NotOwnerOrAggregator", model_id, actors.trainers[0])


@pytest.mark.parametrize(
    "n_trainers, n_validators, aggregator, expected",
    [(2, 3, True, (2, 3, True)), (3, 2, True, (3, 2, True)), (3, 3, False, (3, 3, False))],
)
def test_start_training_not_enough(market, actors, tx, expect_revert, post_task, n_trainers, n_validators, aggregator, expected):
    model_id = post_task()
    for trainer in actors.trainers[:n_trainers]:
        tx(market.functions.buyLicense(model_id), trainer, value=1_000)
        tx(market.functions.joinAsTrainer(model_id), trainer, value=10_000)
    for validator in actors.validators[:n_validators]:
        tx(market.functions.joinAsValidator(model_id), validator, value=20_000)
    if aggregator:
        tx(market.functions.joinAsAggregator(model_id), actors.aggregator, value=30_000)
    expect_revert(market.functions.startTraining(model_id), actors.owner, "NotEnoughParticipants", model_id, *expected)


def test_start_training_twice(market, actors, expect_revert, ready_task):
    model_id = ready_task()
    expect_revert(market.functions.startTraining(model_id), actors.owner, "WrongStatus", model_id, STATUS["Open"], STATUS["Training"])


def test_start_training_unknown(market, actors, expect_revert):
    expect_revert(market.functions.startTraining(5), actors.owner, "UnknownModel", 5)


# ------------------------------------------------------------------------------ cancelModel


def test_cancel_model_credits_everyone(market, actors, tx, events, ready_task, flow):
    model_id = ready_task(start=False)
    receipt = tx(market.functions.cancelModel(model_id), actors.owner)
    assert events(receipt, "ModelCancelled") == [{"modelId": model_id}]
    assert events(receipt, "ModelBuyerReturnPayment") == [{"modelId": model_id, "owner": actors.owner, "amount": DEFAULT_REWARD}]
    assert [e["stakeReturned"] for e in events(receipt, "ContributionPayment")] == [10_000] * 3
    assert [e["stakeReturned"] for e in events(receipt, "ValidationPayment")] == [20_000] * 3
    assert events(receipt, "OrchestrationPayment") == [{"modelId": model_id, "aggregator": actors.aggregator, "earned": 0, "stakeReturned": 30_000}]
    assert flow.state(model_id)["status"] == STATUS["Cancelled"]
    # the three trainers' licence fees stay in the task until each reclaims its own (leaveModel)
    assert market.functions.taskBalance(model_id).call() == 3 * 1_000
    assert market.functions.credit(actors.owner).call() == DEFAULT_REWARD
    assert market.functions.credit(actors.trainers[0]).call() == 10_000
    for trainer in actors.trainers[:3]:
        tx(market.functions.leaveModel(model_id), trainer)
    assert market.functions.taskBalance(model_id).call() == 0
    assert market.functions.credit(actors.trainers[0]).call() == 10_000 + 1_000
    assert market.functions.credit(actors.validators[2]).call() == 20_000
    assert market.functions.credit(actors.aggregator).call() == 30_000
    assert market.functions.totalCredit().call() == market.w3.eth.get_balance(market.address)


def test_cancel_model_without_aggregator(market, actors, tx, events, post_task):
    model_id = post_task()
    receipt = tx(market.functions.cancelModel(model_id), actors.owner)
    assert events(receipt, "OrchestrationPayment") == []


def test_cancel_model_reverts(market, actors, tx, expect_revert, post_task, ready_task):
    model_id = post_task()
    expect_revert(market.functions.cancelModel(model_id), actors.aggregator, "NotOwner", model_id, actors.aggregator)
    tx(market.functions.cancelModel(model_id), actors.owner)
    expect_revert(market.functions.cancelModel(model_id), actors.owner, "WrongStatus", model_id, STATUS["Open"], STATUS["Cancelled"])
    started = ready_task()
    expect_revert(market.functions.cancelModel(started), actors.owner, "WrongStatus", started, STATUS["Open"], STATUS["Training"])
    expect_revert(market.functions.cancelModel(42), actors.owner, "UnknownModel", 42)
