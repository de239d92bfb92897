// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MarketCore} from "./MarketCore.sol";
import {Bits} from "./lib/Bits.sol";
import {Committee} from "./lib/Committee.sol";
import {Agreement} from "./lib/Agreement.sol";
import {Shares} from "./lib/Shares.sol";

/// @title RoundSettlement — the settlement of a round (docs/protocol.md, "Settlement of round r")
/// @notice Deployed by the Marketplace's constructor and run only by the Marketplace's
/// delegatecall, on the Marketplace's storage (both inherit MarketCore, so the layout is one):
/// utilities, trainer / committee / aggregator pay, slashes and their redistribution, the next
/// round's opening with its committee draw. It lives apart to keep the Marketplace under the 24,576-byte code size limit
/// (EIP-170); its events are the Marketplace's (a delegatecall's logs are the caller's).
contract RoundSettlement is MarketCore {
    /// @notice settleRound was called directly, not by the Marketplace's delegatecall.
    error NotDelegated();

    /// @dev This contract's own address: a delegatecall runs with the Marketplace's.
    address private immutable SELF = address(this);

    /// @notice Settle the current round of task `modelId`, whose header the Marketplace has just
    /// stored (its phase Due, or the last vote in); opens the next round or finalizes the task.
    /// @dev Only through the Marketplace's delegatecall (NotDelegated otherwise); the Marketplace
    /// has run every status, round and phase check.
    function settleRound(uint256 modelId) external {
        if (address(this) == SELF) revert NotDelegated();
        Task storage t = _tasks[modelId];
        uint32 round = t.currentRound;
        Round storage rd = t.rounds[round];
        _closeRound(modelId, t, rd, rd.header, round);
    }

    /// @notice Start task `modelId` (Marketplace.startTraining, which has run its checks): fix the
    /// reward, credit the held licence fees to the owner and open round 1, its committee drawn from
    /// keccak256(abi.encode(block.prevrandao, modelId)) among the validators (an elected task,
    /// maxValidators 0: among the trainers).
    /// @dev Only through the Marketplace's delegatecall (NotDelegated otherwise).
    function startTask(uint256 modelId) external {
        if (address(this) == SELF) revert NotDelegated();
        Task storage t = _tasks[modelId];
        t.status = Status.Training;
        bool elected = t.params.maxValidators == 0;
        t.elected = elected;
        t.reward = t.escrow;
        // The licences are used now (no one can join any more): their fees become the owner's.
        uint256 fees = t.licenseHeld;
        t.licenseHeld = 0;
        t.licenseIncome = _toU128(fees);
        _creditTo(t.owner, fees);
        emit TrainingStarted(modelId, t.reward);
        emit LicenseIncomeCredited(modelId, t.owner, fees);
        uint256 seed = uint256(keccak256(abi.encode(block.prevrandao, modelId)));
        _openRound(modelId, t, 1, Committee.draw(seed, elected ? t.trainerCount : t.validatorCount, t.params.committeeSize, 0));
    }

    /// @notice Cancel task `modelId` (Marketplace.cancelModel, which has run its checks): the
    /// escrow back to the owner and every stake back to its participant.
    /// @dev Only through the Marketplace's delegatecall (NotDelegated otherwise).
    function cancelTask(uint256 modelId) external {
        if (address(this) == SELF) revert NotDelegated();
        Task storage t = _tasks[modelId];
        t.status = Status.Cancelled;
        emit ModelCancelled(modelId);
        uint256 refund = t.escrow;
        t.escrow = 0;
        t.stakesHeld = 0;
        _creditTo(t.owner, refund);
        emit ModelBuyerReturnPayment(modelId, t.owner, refund);
        // Nothing earned or slashed before training: each gets its whole stake back.
        _settleSeats(modelId, t, t.trainerSeats, Role.Trainer);
        _settleSeats(modelId, t, t.validatorSeats, Role.Validator);
        if (t.participants[t.params.aggregator].role == Role.Aggregator) _settleAggregator(modelId, t);
    }

    /// @notice Credit everything task `modelId` holds (Marketplace.generateTrainingPayments, which
    /// has run its checks): earnings and remaining stakes, the buyer's return; the carry is burned.
    /// @dev Only through the Marketplace's delegatecall (NotDelegated otherwise).
    function settleTask(uint256 modelId) external {
        if (address(this) == SELF) revert NotDelegated();
        Task storage t = _tasks[modelId];
        t.status = Status.Settled;
        _settleSeats(modelId, t, t.trainerSeats, Role.Trainer);
        _settleSeats(modelId, t, t.validatorSeats, Role.Validator);
        _settleAggregator(modelId, t);
        uint256 buyerReturn = uint256(t.escrow) + t.buyerAccrued;
        uint256 burned = t.trainerCarry;
        t.escrow = 0;
        t.stakesHeld = 0;
        t.accrued = 0;
        t.buyerAccrued = 0;
        t.trainerCarry = 0;
        _creditTo(t.owner, buyerReturn);
        emit ModelBuyerReturnPayment(modelId, t.owner, buyerReturn);
        if (burned > 0) {
            // Credited to the zero address, which can never withdraw: nobody gains it.
            _creditTo(address(0), burned);
            emit CarryBurned(modelId, burned);
        }
    }

    /// @dev Credits every seat of `role` its earnings and the stake remaining (ContributionPayment
    /// or ValidationPayment each). At most MAX_TRAINERS (or MAX_VALIDATORS) seats.
    function _settleSeats(uint256 modelId, Task storage t, Seat[] storage seats, Role role) private {
        uint256 stake = _stakeOf(t.params, role);
        uint256 n = seats.length;
        for (uint256 i = 0; i < n; ++i) {
            Seat storage seat = seats[i];
            address account = seat.account;
            Participant storage pp = t.participants[account];
            uint256 earned = _earned(seat, pp);
            uint256 stakeBack = stake - pp.slashed;
            _creditTo(account, earned + stakeBack);
            if (role == Role.Trainer) emit ContributionPayment(modelId, account, earned, stakeBack);
            else emit ValidationPayment(modelId, account, earned, stakeBack);
        }
    }

    /// @dev Credits the aggregator its earnings and the stake remaining (OrchestrationPayment).
    function _settleAggregator(uint256 modelId, Task storage t) private {
        address aggregator = t.params.aggregator;
        uint256 earned = t.aggregatorEarned;
        uint256 stakeBack = t.params.aggregatorStake - t.participants[aggregator].slashed;
        _creditTo(aggregator, earned + stakeBack);
        emit OrchestrationPayment(modelId, aggregator, earned, stakeBack);
    }

    // =====================================================================================
    // internal: settlement of a round (docs/protocol.md, "Settlement of round r")
    // =====================================================================================

    struct Settlement {
        uint256 budget;
        uint256 trainerPool; // T
        uint256 validatorPool; // V
        uint256 aggregatorPool; // A
        uint256 slashed; // S: slashed in this round for lateness (the trainers' to share)
        uint256 burned; // slashed in this round by the committee's verdict (Poison, Disagreed, Rejected): burned
        uint256 carried; // C: the trainer carry of earlier rounds (slashes and pools nobody earned)
        uint256 positiveSum; // P = sum of max(u_i, 0)
        uint256 toBuyer;
        uint256 reveals;
        uint256[] committee; // validator seat of each committee position
        uint256[] weights; // each committee position's agreement weight (docs/protocol.md, "Validator pay")
        bool rejected;
    }

    function _closeRound(uint256 modelId, Task storage t, Round storage rd, RoundHeader memory h, uint32 round) private {
        h.stage = STAGE_CLOSED;
        h.deadline = 0;
        rd.header = h;
        t.roundsClosed = round;

        ModelParams storage p = t.params;
        Settlement memory s = _pools(t, h, round);
        (int256[] memory u,) = _utilities(t, round, h, s.reveals, false);
        // The committee's agreement is measured against the medians as scored (a refused duplicate
        // was scored like any update), before the refusals below.
        _agreement(t, round, h, u, s);
        UpdateBuffer storage buf = _buffer(t, round);
        (uint256[] memory seats, uint64 refused) = _revealedSeats(buf, s.reveals);
        for (uint256 k = 0; k < s.reveals; ++k) {
            if (Bits.has(refused, k)) {
                u[k] = 0;
                emit UpdateRefused(modelId, round, t.trainerSeats[seats[k]].account, buf.updates[seats[k]]);
            } else if (u[k] > 0) {
                s.positiveSum += uint256(u[k]);
            }
        }

        _slashTrainers(modelId, t, h, round, u, seats, refused, s);
        _slashCommitteeAndAggregator(modelId, t, h, round, s);
        _payTrainers(modelId, t, round, u, seats, s);
        _payCommittee(modelId, t, h, round, s);

        // Only a positive majority of the whole committee accepts: silence approves nothing.
        bool accepted = h.proposed && Bits.popcount(h.ballot & ~h.sealedBits) * 2 > p.committeeSize;
        if (accepted && s.aggregatorPool > 0) {
            t.aggregatorEarned = _toU128(uint256(t.aggregatorEarned) + s.aggregatorPool);
            emit RewardAccrued(modelId, round, p.aggregator, Role.Aggregator, s.aggregatorPool);
        } else if (!accepted) {
            s.toBuyer += s.aggregatorPool;
        }
        if (accepted) t.globalModelDigest = _buffer(t, round).proposedDigest;
        if (s.burned > 0) {
            // The committee's verdict slashed these stakes, and a colluding majority picks which
            // trainers are positive: nobody may gain them (docs/protocol.md, "Slashes and the
            // trainer carry"). Credited to the zero address, which can never withdraw.
            _creditTo(address(0), s.burned);
            emit CarryBurned(modelId, s.burned);
        }
        // The whole budget and every late slash went to participants, to the buyer or to the
        // carry (all of them part of `accrued`); the carry of earlier rounds was already in it;
        // the verdict slashes left the task above.
        t.accrued = _toU128(uint256(t.accrued) + s.budget + s.slashed);
        t.buyerAccrued = _toU128(uint256(t.buyerAccrued) + s.toBuyer);
        emit RoundClosed(modelId, round, t.globalModelDigest, accepted, s.budget, s.toBuyer);

        if (t.endRequested) {
            t.status = Status.Finalized;
            emit ModelFinalized(modelId, round, t.escrow);
        } else if (round < p.rounds) {
            uint32 next = t.elected
                ? _elect(t, h, u, seats, s.reveals)
                : Committee.draw(_nextSeed(modelId, t, round, h, s.reveals), t.validatorCount, p.committeeSize, h.committee);
            _openRound(modelId, t, round + 1, next);
        }
    }

    /// @dev The round's budget leaves the escrow and splits into the three pools.
    function _pools(Task storage t, RoundHeader memory h, uint32 round) private returns (Settlement memory s) {
        ModelParams storage p = t.params;
        uint256 budget = Shares.roundBudget(t.reward, p.rounds, round);
        t.escrow = _toU128(t.escrow - budget);
        uint256 trainerPool = Shares.ofBps(budget, p.trainerShareBps);
        uint256 validatorPool = Shares.ofBps(budget, p.validatorShareBps);
        s = Settlement({
            budget: budget,
            trainerPool: trainerPool,
            validatorPool: validatorPool,
            aggregatorPool: budget - trainerPool - validatorPool,
            slashed: 0,
            burned: 0,
            carried: t.trainerCarry,
            positiveSum: 0,
            toBuyer: 0,
            reveals: Bits.popcount(h.revealed),
            committee: Committee.seats(h.committee),
            weights: new uint256[](p.committeeSize),
            // From the proposal on, a revealed vote with its sealedBits bit still set is a rejection.
            rejected: h.proposed && Bits.popcount(h.ballot & h.sealedBits) * 2 > p.committeeSize
        });
    }

    /// @dev An elected task's next committee (docs/protocol.md, "Elected committees"; fl.committee.elect
    /// is its reference): the committeeSize best utilities `u` of this round's revealed updates (a
    /// refused duplicate's is 0), ties to the lower trainer seat; then, while seats are left, the
    /// trainers that did not reveal and do not sit, by seat. At least committeeSize trainers sit
    /// outside the committee (ParamsCheck: minTrainers >= 2 * committeeSize; nobody leaves during
    /// training), so the seats are always filled and no sitting member is re-elected. Loops:
    /// committeeSize <= 9 picks over reveals <= 32 updates, then one pass over <= 32 seats.
    function _elect(Task storage t, RoundHeader memory h, int256[] memory u, uint256[] memory seats, uint256 reveals)
        private
        view
        returns (uint32 map)
    {
        uint256 size = t.params.committeeSize;
        uint256 picked = 0;
        for (; picked < size; ++picked) {
            uint256 best = reveals;
            for (uint256 k = 0; k < reveals; ++k) {
                if (Bits.has(map, seats[k])) continue;
                if (best == reveals || u[k] > u[best] || (u[k] == u[best] && seats[k] < seats[best])) best = k;
            }
            if (best == reveals) break;
            map |= uint32(1 << seats[best]);
        }
        uint256 count = t.trainerCount;
        for (uint256 i = 0; i < count && picked < size; ++i) {
            if (Bits.has(h.revealed | uint64(h.committee), i)) continue;
            map |= uint32(1 << i);
            ++picked;
        }
    }

    /// @dev The seed of round `round + 1`'s committee (docs/protocol.md, "Committee"): the round's
    /// reveal-order words, which hold every reveal's commitment mix (and the first reveal's
    /// prevrandao), fixed by the last reveal; with no reveal, the prevrandao of the closing block.
    /// The order words are warm (the settlement read them).
    function _nextSeed(uint256 modelId, Task storage t, uint32 round, RoundHeader memory h, uint256 reveals)
        private
        view
        returns (uint256)
    {
        if (reveals == 0) return uint256(keccak256(abi.encode(modelId, round + 1, h.committee, block.prevrandao)));
        UpdateBuffer storage buf = _buffer(t, round);
        uint256[] memory words = new uint256[]((reveals + ENTRIES_PER_WORD - 1) / ENTRIES_PER_WORD);
        for (uint256 w = 0; w < words.length; ++w) {
            words[w] = buf.order[w];
        }
        return uint256(keccak256(abi.encode(modelId, round + 1, h.committee, words)));
    }

    /// @dev Late: every trainer that did not reveal (did not commit, or committed and did not
    /// reveal), unless fewer than half of the task's trainers committed (2 * committed < trainers:
    /// the round's parent model was likely not retrievable, nobody is late-slashed). Poison: every revealed trainer with u_i <
    /// poisonThreshold for which a qualified majority of the whole committee (3 * below >= 2 * size)
    /// scored below the threshold. A refused duplicate (`refused`, by reveal position) delivered no
    /// update of its own: late, always (its utility is 0, so never poison).
    function _slashTrainers(
        uint256 modelId,
        Task storage t,
        RoundHeader memory h,
        uint32 round,
        int256[] memory u,
        uint256[] memory seats,
        uint64 refused,
        Settlement memory s
    ) private {
        ModelParams storage p = t.params;
        for (uint256 k = 0; refused >> k != 0; ++k) {
            if (Bits.has(refused, k)) {
                s.slashed += _slash(
                    modelId, t, round, t.trainerSeats[seats[k]].account, p.trainerStake, p.lateSlashBps, SlashReason.Late
                );
            }
        }
        // An elected task's members did not train this round: neither due nor late.
        uint64 sitting = t.elected ? h.committee : 0;
        uint256 count = Bits.popcount(h.committed) * 2 < t.trainerCount - Bits.popcount(sitting) ? 0 : t.trainerCount;
        for (uint256 i = 0; i < count; ++i) {
            if (!Bits.has(h.revealed | sitting, i)) {
                s.slashed += _slash(
                    modelId, t, round, t.trainerSeats[i].account, p.trainerStake, p.lateSlashBps, SlashReason.Late
                );
            }
        }
        int256 threshold = p.poisonThreshold;
        for (uint256 k = 0; k < s.reveals; ++k) {
            if (u[k] < threshold && _qualifiedBelow(t, round, h, k, threshold)) {
                s.burned += _slash(
                    modelId, t, round, t.trainerSeats[seats[k]].account, p.trainerStake, p.badSlashBps, SlashReason.Poison
                );
            }
        }
    }

    /// @dev Whether at least two thirds of the committee's seats (not of those that scored) gave the
    /// update in reveal position k a score below `threshold`: the score words are warm (the
    /// utilities read them), and this runs only for an update whose utility is below it.
    function _qualifiedBelow(Task storage t, uint32 round, RoundHeader memory h, uint256 k, int256 threshold)
        private
        view
        returns (bool)
    {
        uint256[SCORE_WORDS][MAX_COMMITTEE] storage scores = _buffer(t, round).scores;
        uint256 size = t.params.committeeSize;
        uint256 below = 0;
        for (uint256 j = 0; j < size; ++j) {
            if (Bits.has(h.scored, j) && Bits.scoreAt(scores[j][k / SCORES_PER_WORD], k % SCORES_PER_WORD) < threshold) {
                ++below;
            }
        }
        return below * 3 >= size * 2;
    }

    /// @dev A committee member is late once per round if it did not reveal scores (when someone
    /// revealed an update) or did not reveal a vote (when a proposal was published); it is slashed
    /// Disagreed when its revealed scores are too far from the utilities (zero agreement weight
    /// while the utilities are not all 0, _agreement). The aggregator is late when there was
    /// something to aggregate (P > 0) and it did not publish; rejected when the committee rejected
    /// its proposal.
    function _slashCommitteeAndAggregator(
        uint256 modelId,
        Task storage t,
        RoundHeader memory h,
        uint32 round,
        Settlement memory s
    ) private {
        ModelParams storage p = t.params;
        uint256 size = p.committeeSize;
        // An elected task's members are trainers: their trainer stakes answer for their service.
        Seat[] storage members = _memberSeats(t);
        uint256 stake = t.elected ? p.trainerStake : p.validatorStake;
        for (uint256 j = 0; j < size; ++j) {
            bool missedScore = s.reveals > 0 && !Bits.has(h.scored, j);
            bool missedVote = h.proposed && !Bits.has(h.ballot, j);
            address member = members[s.committee[j]].account;
            if (missedScore || missedVote) {
                s.slashed += _slash(modelId, t, round, member, stake, p.lateSlashBps, SlashReason.Late);
            }
            if (Bits.has(h.scored, j) && s.weights[j] == 0) {
                s.burned += _slash(modelId, t, round, member, stake, p.lateSlashBps, SlashReason.Disagreed);
            }
        }
        if (!h.proposed && s.positiveSum > 0) {
            s.slashed += _slash(modelId, t, round, p.aggregator, p.aggregatorStake, p.lateSlashBps, SlashReason.Late);
        } else if (s.rejected) {
            s.burned += _slash(modelId, t, round, p.aggregator, p.aggregatorStake, p.badSlashBps, SlashReason.Rejected);
        }
    }

    /// @dev Trainer i earns T * u_i / P + (S + C) * u_i / P (u_i > 0), C the carry of earlier
    /// rounds. The dust of T returns to the buyer; the dust of S + C stays in the carry. With P == 0
    /// all of S + C is carried to the next round's trainers, and so is T when someone revealed (a
    /// committee that scores every update down must not hand the trainer pool back to the buyer);
    /// T returns to the buyer only when nobody revealed. Slashed wei never reaches the buyer, the
    /// aggregator or the committee (docs/protocol.md, "Slashes and the trainer carry").
    function _payTrainers(
        uint256 modelId,
        Task storage t,
        uint32 round,
        int256[] memory u,
        uint256[] memory seats,
        Settlement memory s
    ) private {
        uint256 pool = s.slashed + s.carried;
        if (s.positiveSum == 0) {
            if (s.reveals == 0) s.toBuyer += s.trainerPool;
            else pool += s.trainerPool;
            t.trainerCarry = _toU128(pool);
            return;
        }
        uint256 paidPool = 0;
        uint256 paidSlashes = 0;
        for (uint256 k = 0; k < s.reveals; ++k) {
            if (u[k] <= 0) continue;
            uint256 utility = uint256(u[k]);
            uint256 fromPool = Shares.proRata(s.trainerPool, utility, s.positiveSum);
            uint256 fromSlashes = Shares.proRata(pool, utility, s.positiveSum);
            if (fromPool + fromSlashes == 0) continue;
            paidPool += fromPool;
            paidSlashes += fromSlashes;
            _accrue(modelId, t, t.trainerSeats[seats[k]], round, Role.Trainer, fromPool + fromSlashes);
        }
        s.toBuyer += s.trainerPool - paidPool;
        t.trainerCarry = _toU128(pool - paidSlashes);
    }

    /// @dev Each committee position's agreement weight (docs/protocol.md, "Validator pay"): for a
    /// member that revealed scores, with D its distance sum_k |s_k - u_k| from the medians and M =
    /// sum_k |u_k| their size, tolerance = M * agreementToleranceBps / 10000 and weight tolerance - D
    /// when D < tolerance, else 0 (slashed Disagreed). When M == 0 (no quorum, or every median 0)
    /// every member that revealed weighs 1. The score words are warm (the utilities read them).
    function _agreement(Task storage t, uint32 round, RoundHeader memory h, int256[] memory u, Settlement memory s)
        private
        view
    {
        uint256 magnitude = Agreement.magnitude(u);
        uint256 tolerance = Shares.ofBps(magnitude, t.params.agreementToleranceBps);
        uint256[SCORE_WORDS][MAX_COMMITTEE] storage scores = _buffer(t, round).scores;
        uint256 size = s.weights.length;
        uint256 n = s.reveals;
        // Bounds: n <= 64 updates, size <= 9 members, each gap below 2^32: nothing can overflow.
        unchecked {
            for (uint256 j = 0; j < size; ++j) {
                if (!Bits.has(h.scored, j)) continue;
                if (magnitude == 0) {
                    s.weights[j] = 1;
                    continue;
                }
                uint256[SCORE_WORDS] storage words = scores[j];
                uint256 distance = 0;
                for (uint256 first = 0; first < n; first += SCORES_PER_WORD) {
                    // Each packed word is read once (warm: the utilities read it).
                    uint256 word = words[first / SCORES_PER_WORD];
                    uint256 end = first + SCORES_PER_WORD < n ? first + SCORES_PER_WORD : n;
                    for (uint256 k = first; k < end; ++k) {
                        distance += Agreement.gap(Bits.scoreAt(word, k - first), u[k]);
                    }
                }
                s.weights[j] = Agreement.weight(distance, tolerance);
            }
        }
    }

    /// @dev V split equally among the eligible members (revealed scores, and a vote if a proposal
    /// was published). An eligible member with zero agreement weight (Disagreed) forfeits its equal
    /// share to the trainer carry: never to the other members nor to the buyer, so a colluding
    /// majority that pushes an honest member out of the tolerance gains nothing by it
    /// (docs/protocol.md, "Validator pay by agreement"). The dust, and all of V when nobody revealed
    /// an update or nobody is eligible, returns to the buyer (V is the buyer's money).
    function _payCommittee(uint256 modelId, Task storage t, RoundHeader memory h, uint32 round, Settlement memory s)
        private
    {
        uint16 eligible = 0;
        if (s.reveals > 0) {
            eligible = h.scored;
            if (h.proposed) eligible &= h.ballot;
        }
        uint256 members = Bits.popcount(eligible);
        if (members == 0) {
            s.toBuyer += s.validatorPool;
            return;
        }
        uint256 share = s.validatorPool / members;
        uint256 size = s.weights.length;
        Seat[] storage seats = _memberSeats(t);
        uint256 paid = 0;
        uint256 forfeited = 0;
        for (uint256 j = 0; j < size; ++j) {
            if (!Bits.has(eligible, j)) continue;
            if (s.weights[j] == 0) {
                forfeited += share;
                continue;
            }
            paid += share;
            if (share > 0) _accrue(modelId, t, seats[s.committee[j]], round, Role.Validator, share);
        }
        if (forfeited > 0) t.trainerCarry = _toU128(uint256(t.trainerCarry) + forfeited);
        s.toBuyer += s.validatorPool - paid - forfeited;
    }

    /// @dev Slashes `bps` of the original `stake`, capped at the stake remaining; returns the amount.
    function _slash(
        uint256 modelId,
        Task storage t,
        uint32 round,
        address account,
        uint256 stake,
        uint256 bps,
        SlashReason reason
    ) private returns (uint256 amount) {
        Participant storage pp = t.participants[account];
        amount = Shares.slashAmount(stake, pp.slashed, bps);
        if (amount == 0) return 0;
        // At most the stake, itself below 2^128 (StakeTooLarge): fits uint128.
        pp.slashed = uint128(uint256(pp.slashed) + amount);
        t.stakesHeld = _toU128(t.stakesHeld - amount);
        emit Slashed(modelId, round, account, reason, amount);
    }

    /// @dev One read and one write of the seat: its address and earnings share a word. Earnings
    /// above 2^96 - 1 wei keep their high part in the participant's record (`earnedHigh`), so no
    /// amount a task can hold (below 2^128) overflows.
    function _accrue(uint256 modelId, Task storage t, Seat storage seat, uint32 round, Role role, uint256 amount) private {
        (address account, uint256 earned) = (seat.account, seat.earned);
        earned += amount;
        if (earned > type(uint96).max) {
            Participant storage pp = t.participants[account];
            // earned < 2^128 (the task's holdings bound), so the high part is below 2^32.
            pp.earnedHigh = uint32(pp.earnedHigh + (earned >> 96));
            earned &= type(uint96).max;
        }
        seat.earned = uint96(earned);
        emit RewardAccrued(modelId, round, account, role, amount);
    }
}
