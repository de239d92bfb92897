"""The worked economics scenario, to the wei (docs/protocol.md, "Settlement of round r").

3 trainers A, B, C; 3 validators V1, V2, V3 (committee 3: all of them, every round); the
aggregator G; the buyer O. Two rounds. Amounts are chosen so that every rounding shows.

Parameters: reward W = 1_234_577, licence 1_001, stakes 10_007 (trainer), 20_013 (validator),
30_011 (aggregator), late slash 10 %, bad slash 50 %, shares 70 / 20 / 10 %, minTrainers 3. Round 2,
with two commits of three, late-slashes C (nobody is late only when 2 * commits < trainers).

Budgets: B1 = W // 2 = 617_288; B2 = W - B1 = 617_289 (the last round takes the remainder).

Round 1 — everyone acts; reveal order A, B, C; scores (V1 / V2 / V3):
    A 300_000 / 310_000 / 290_000 -> median 300_000
    B 200_000 / 100_000 / 150_000 -> median 150_000
    C  50_000 /  70_000 /  60_000 -> median  60_000          P = 510_000
  T1 = 617_288 * 7000 // 10000 = 432_101   (432_101.6)
  V1 = 617_288 * 2000 // 10000 = 123_457   (123_457.6)
  A1 = 617_288 - 432_101 - 123_457 = 61_730
  A: 432_101 * 300_000 // 510_000 = 254_177  (4_321_010 / 17 = 254_177.06)
  B: 432_101 * 150_000 // 510_000 = 127_088  (2_160_505 / 17 = 127_088.53)
  C: 432_101 *  60_000 // 510_000 =  50_835  (  864_202 / 17 =  50_835.41)
     trainers' dust: 432_101 - 432_100 = 1 -> buyer
  each validator: 123_457 // 3 = 41_152, dust 1 -> buyer
  aggregator: 61_730; no slashes.              buyer gets 1 + 1 = 2 in round 1

Round 2 — C never commits (Commit ends at its deadline); A then B reveal; V3 never scores
(Score ends at its deadline) but votes; everyone confirms. Scores (V1 / V2):
    two of three scored: a quorum; the utility is the lower median (a submitted score)
    A 600_001 / 599_999 -> 599_999
    B 200_001 / 200_000 -> 200_000                                         P = 799_999
  T2 = 617_289 * 7000 // 10000 = 432_102   (432_102.3)
  V2 = 617_289 * 2000 // 10000 = 123_457   (123_457.8)
  A2 = 617_289 - 432_102 - 123_457 = 61_730
  slashes: C late 10_007 * 1000 // 10000 = 1_000 (1_000.7); V3 late 20_013 * 1000 // 10000 = 2_001
     (2_001.3); S = 3_001
  A: 432_102 * 599_999 // 799_999 = 324_076 (324_076.36) + 3_001 * 599_999 // 799_999 = 2_250 (2_250.75) -> 326_326
  B: 432_102 * 200_000 // 799_999 = 108_025 (108_025.64) + 3_001 * 200_000 // 799_999 =   750 (  750.25) -> 108_775
     pool dust: 432_102 - 324_076 - 108_025 = 1 -> buyer
     slash dust: 3_001 - 2_250 - 750 = 1 -> the trainer carry (slashed wei never goes to the buyer)
  V1, V2 (scored and voted): 123_457 // 2 = 61_728 each, dust 1 -> buyer; V3 earns nothing
  aggregator: 61_730.                            buyer gets 1 + 1 = 2 in round 2; carry 1

Settlement (earned + stake remaining):
  A 254_177 + 326_326 = 580_503 + 10_007          = 590_510
  B 127_088 + 108_775 = 235_863 + 10_007          = 245_870
  C  50_835                     + 10_007 - 1_000  =  59_842
  V1, V2 41_152 + 61_728 = 102_880 + 20_013       = 122_893 each
  V3 41_152                     + 20_013 - 2_001  =  59_164
  G  61_730 * 2 = 123_460       + 30_011          = 153_471
  O  unspent escrow 0 + 2 + 2 = 4, plus licence fees 3 * 1_001 = 3_003  -> 3_007
  the carry left after the last round, 1, is burned (credited to the zero address, never withdrawn)
  Sum 1_357_650 + 1 burned = W + 3 * 10_007 + 3 * 20_013 + 30_011 + 3 * 1_001 = everything deposited.
"""

from __future__ import annotations

from contract_helpers import ROLE, SLASH, STATUS, WINDOW

W = 1_234_577
FEE, T_STAKE, V_STAKE, A_STAKE = 1_001, 10_007, 20_013, 30_011


def test_two_round_scenario_to_the_wei(w3, market, actors, flow, tx, events, advance, post_task):
    f = market.functions
    owner, g = actors.owner, actors.aggregator
    a, b, c = actors.trainers[:3]
    v1, v2, v3 = actors.validators[:3]
    deposited = 0

    def pay(call, sender, value):
        nonlocal deposited
        deposited += value
        return tx(call, sender, value=value)

    model_id = post_task(
        value=W,
        rounds=2,
        minTrainers=3,
        maxTrainers=3,
        committeeSize=3,
        maxValidators=3,
        licenseFee=FEE,
        trainerStake=T_STAKE,
        validatorStake=V_STAKE,
        aggregatorStake=A_STAKE,
        lateSlashBps=1_000,
        badSlashBps=5_000,
    )
    deposited += W
    for trainer in (a, b, c):
        pay(f.buyLicense(model_id), trainer, FEE)
        pay(f.joinAsTrainer(model_id), trainer, T_STAKE)
    for validator in (v1, v2, v3):
        pay(f.joinAsValidator(model_id), validator, V_STAKE)
    pay(f.joinAsAggregator(model_id), g, A_STAKE)
    tx(f.startTraining(model_id), owner)
    assert sorted(flow.committee(model_id, 1)) == sorted([v1, v2, v3])

    # ---------------------------------------------------------------- round 1: everyone acts
    for trainer in (a, b, c):
        flow.commit(model_id, 1, trainer)
    for trainer in (a, b, c):
        flow.reveal(model_id, 1, trainer)
    flow.score(model_id, 1, {v1: [300_000, 200_000, 50_000], v2: [310_000, 100_000, 70_000], v3: [290_000, 150_000, 60_000]})
    assert f.utilities(model_id, 1).call() == [300_000, 150_000, 60_000]
    flow.publish(model_id, 1)
    closing = flow.vote(model_id, 1, dict.fromkeys((v1, v2, v3), True))

    # V = 123,457: M = 510,000 = tolerance; distances 60,000 / 70,000 / 10,000, all below it, so
    # all three agree and are paid an equal 41,152; 1 wei of dust (+ 1 of T's) back to the buyer
    (closed,) = events(closing, "RoundClosed")
    assert (closed["budget"], closed["returnedToBuyer"], closed["accepted"]) == (617_288, 2, True)
    assert events(closing, "Slashed") == []
    accrued = {(e["participant"], e["role"]): e["amount"] for e in events(closing, "RewardAccrued")}
    assert accrued == {
        (a, ROLE["Trainer"]): 254_177,
        (b, ROLE["Trainer"]): 127_088,
        (c, ROLE["Trainer"]): 50_835,
        (v1, ROLE["Validator"]): 41_152,
        (v2, ROLE["Validator"]): 41_152,
        (v3, ROLE["Validator"]): 41_152,
        (g, ROLE["Aggregator"]): 61_730,
    }

    # ---------------------------------------------------------------- round 2
    flow.commit(model_id, 2, a)
    flow.commit(model_id, 2, b)  # C never commits
    advance(WINDOW + 1)
    flow.reveal(model_id, 2, a)
    flow.reveal(model_id, 2, b)
    flow.score(model_id, 2, {v1: [600_001, 200_001], v2: [599_999, 200_000]})  # V3 never commits
    assert f.utilities(model_id, 2).call() == [599_999, 200_000]
    flow.publish(model_id, 2)  # the two reveals ended ScoreReveal
    closing = flow.vote(model_id, 2, dict.fromkeys((v1, v2, v3), True))
    # distances 3 / 0 of M = 799,999: both agree, 61,728 each, 1 wei of dust

    (closed,) = events(closing, "RoundClosed")
    assert (closed["budget"], closed["returnedToBuyer"], closed["accepted"]) == (617_289, 2, True)
    assert f.trainerCarry(model_id).call() == 1
    assert [(e["participant"], e["reason"], e["amount"]) for e in events(closing, "Slashed")] == [
        (c, SLASH["Late"], 1_000),
        (v3, SLASH["Late"], 2_001),
    ]
    accrued = {(e["participant"], e["role"]): e["amount"] for e in events(closing, "RewardAccrued")}
    assert accrued == {
        (a, ROLE["Trainer"]): 326_326,
        (b, ROLE["Trainer"]): 108_775,
        (v1, ROLE["Validator"]): 61_728,
        (v2, ROLE["Validator"]): 61_728,
        (g, ROLE["Aggregator"]): 61_730,
    }
    assert events(closing, "RoundStarted") == []  # the last round

    # ---------------------------------------------------------------- the end
    state = flow.state(model_id)
    assert (state["escrow"], state["stakesHeld"], state["accrued"]) == (0, 3 * T_STAKE + 3 * V_STAKE + A_STAKE - 3_001, W + 3_001)
    tx(f.finalizeContract(model_id), actors.outsiders[0])
    settled = tx(f.generateTrainingPayments(model_id), actors.outsiders[1])
    assert flow.state(model_id)["status"] == STATUS["Settled"]
    assert f.taskBalance(model_id).call() == 0

    assert {e["trainer"]: (e["earned"], e["stakeReturned"]) for e in events(settled, "ContributionPayment")} == {
        a: (580_503, 10_007),
        b: (235_863, 10_007),
        c: (50_835, 9_007),
    }
    assert {e["validator"]: (e["earned"], e["stakeReturned"]) for e in events(settled, "ValidationPayment")} == {
        v1: (102_880, 20_013),
        v2: (102_880, 20_013),
        v3: (41_152, 18_012),
    }
    assert events(settled, "OrchestrationPayment") == [{"modelId": model_id, "aggregator": g, "earned": 123_460, "stakeReturned": 30_011}]
    assert events(settled, "ModelBuyerReturnPayment") == [{"modelId": model_id, "owner": owner, "amount": 4}]
    assert events(settled, "CarryBurned") == [{"modelId": model_id, "amount": 1}]
    assert f.credit("0x" + "00" * 20).call() == 1 and f.trainerCarry(model_id).call() == 0

    expected_credit = {
        a: 590_510,
        b: 245_870,
        c: 59_842,
        v1: 122_893,
        v2: 122_893,
        v3: 59_164,
        g: 153_471,
        owner: 3_007,
    }
    assert {who: f.credit(who).call() for who in expected_credit} == expected_credit
    assert sum(expected_credit.values()) + 1 == deposited == 1_357_651
    assert flow.participant(model_id, c) == {"role": ROLE["Trainer"], "stakeRemaining": 9_007, "earned": 50_835, "slashed": 1_000, "licensed": True}

    withdrawn = 0
    for who in expected_credit:
        receipt = tx(f.withdraw(), who)
        (w,) = events(receipt, "Withdrawal")
        assert w["amount"] == expected_credit[who]
        withdrawn += w["amount"]
    assert withdrawn + 1 == deposited
    assert w3.eth.get_balance(market.address) == 1 == f.totalCredit().call()  # the burned wei
