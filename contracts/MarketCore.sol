// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MarketStorage} from "./MarketStorage.sol";
import {Bits} from "./lib/Bits.sol";
import {Committee} from "./lib/Committee.sol";
import {Median} from "./lib/Median.sol";

/// @title MarketCore — what the Marketplace and its RoundSettlement share
/// @notice The storage layout (MarketStorage) and the internal rules both halves of the market
/// use: the per-round buffers, the utilities (lower median of a quorum), the committee, opening a
/// round, credits and the packed-amount conversions. The Marketplace holds the entry points; the
/// settlement of a round runs in RoundSettlement's code on the Marketplace's storage (delegatecall).
abstract contract MarketCore is MarketStorage {
    /// @notice A deposit would take what a task holds to `amount` >= 2^128 wei (or an amount does not
    /// fit the packed accounting, which that bound rules out).
    error AmountTooLarge(uint256 amount);

    /// @dev The stake a participant of `role` put in (0 for Role.None).
    function _stakeOf(ModelParams storage p, Role role) internal view returns (uint256) {
        if (role == Role.Trainer) return p.trainerStake;
        if (role == Role.Validator) return p.validatorStake;
        if (role == Role.Aggregator) return p.aggregatorStake;
        return 0;
    }


    /// @dev The seats a committee map indexes: the validators', or an elected task's trainers'.
    function _memberSeats(Task storage t) internal view returns (Seat[] storage) {
        return t.elected ? t.trainerSeats : t.validatorSeats;
    }

    /// @dev The committee of a round: its members' addresses, in seat order (committee positions).
    function _committee(Task storage t, uint32 map) internal view returns (address[] memory members) {
        uint256[] memory seats = Committee.seats(map);
        Seat[] storage from = _memberSeats(t);
        members = new address[](seats.length);
        for (uint256 j = 0; j < seats.length; ++j) {
            members[j] = from[seats[j]].account;
        }
    }

    function _buffer(Task storage t, uint32 round) internal view returns (UpdateBuffer storage) {
        return t.buffers[round % 2];
    }

    /// @dev Opens round `round`: Commit phase until now + commitWindow, its committee `map`.
    function _openRound(uint256 modelId, Task storage t, uint32 round, uint32 map) internal {
        t.currentRound = round;
        uint32 deadline = _deadlineAfter(block.timestamp, t.params.commitWindow);
        // The round's header is written whole, once: one fresh storage word.
        t.rounds[round].header = RoundHeader({
            stage: uint8(Phase.Commit),
            deadline: deadline,
            committed: 0,
            revealed: 0,
            committee: map,
            scored: 0,
            sealedBits: 0,
            ballot: 0,
            proposed: false
        });
        emit RoundStarted(modelId, round, _committee(t, map), deadline);
    }

    /// @dev `from + window` as a stored deadline (uint32 seconds): reverts DeadlineOutOfRange past 2106.
    function _deadlineAfter(uint256 from, uint256 window) internal pure returns (uint32) {
        uint256 deadline = from + window;
        if (deadline > type(uint32).max) revert DeadlineOutOfRange(deadline);
        return uint32(deadline);
    }

    function _revealEntry(UpdateBuffer storage buf, uint256 position) internal view returns (uint256 seat, uint64 samples) {
        return Bits.entryAt(buf.order[position / ENTRIES_PER_WORD], position % ENTRIES_PER_WORD);
    }

    /// @dev The round's first `n` reveals: each one's trainer seat, in reveal order, and the map
    /// (bit k: reveal position k) of the refused ones, whose digest an earlier reveal of the round
    /// revealed (docs/protocol.md, "Duplicate updates"). Duplicates are found in memory with an
    /// open-addressing table of DIGEST_SLOTS entries (reveal position + 1) keyed by the digests'
    /// fingerprints, which the reveal-order words hold: a digest is read from storage only when its
    /// fingerprint equals an earlier one's, and then both digests are compared, so a refusal is
    /// always of an equal digest. n <= MAX_TRAINERS = 64 < DIGEST_SLOTS, so a probe always ends.
    function _revealedSeats(UpdateBuffer storage buf, uint256 n) internal view returns (uint256[] memory seats, uint64 refused) {
        seats = new uint256[](n);
        uint256[] memory prints = new uint256[](n);
        // A memory array starts zeroed (0: an empty slot), which slither does not know.
        // slither-disable-next-line uninitialized-local
        uint256[DIGEST_SLOTS] memory table;
        // k < 64 and i < DIGEST_SLOTS: no counter can overflow.
        unchecked {
            uint256 word = 0;
            for (uint256 k = 0; k < n; ++k) {
                uint256 slot = k % ENTRIES_PER_WORD;
                if (slot == 0) word = buf.order[k / ENTRIES_PER_WORD];
                uint256 seat = Bits.seatAt(word, slot);
                uint256 fp = Bits.fingerprintAt(word, slot);
                seats[k] = seat;
                prints[k] = fp;
                uint256 i = fp % DIGEST_SLOTS;
                while (true) {
                    uint256 at = table[i];
                    if (at == 0) {
                        table[i] = k + 1;
                        break;
                    }
                    if (prints[at - 1] == fp && buf.updates[seats[at - 1]] == buf.updates[seat]) {
                        refused |= uint64(1 << k);
                        break;
                    }
                    i = (i + 1) % DIGEST_SLOTS;
                }
            }
        }
    }

    /// @dev Median committee score of every revealed update, in reveal order (docs/protocol.md,
    /// "Utility"). With `stopAtPositive`, stops at the first positive one (the rest stay 0).
    function _utilities(Task storage t, uint32 round, RoundHeader memory h, uint256 n, bool stopAtPositive)
        internal
        view
        returns (int256[] memory u, bool anyPositive)
    {
        u = new int256[](n);
        if (n == 0) return (u, false);
        uint256[SCORE_WORDS][MAX_COMMITTEE] storage scores = _buffer(t, round).scores;
        uint256 size = t.params.committeeSize;
        // Quorum: a majority of the committee scored, or no update has a utility (none is paid or slashed).
        if (Bits.popcount(h.scored) * 2 <= size) return (u, false);
        uint256[] memory words = new uint256[](size);
        int256[] memory column = new int256[](size);
        // Loop bounds: n <= MAX_TRAINERS = 64, size <= MAX_COMMITTEE = 9; no counter can overflow.
        unchecked {
            for (uint256 first = 0; first < n; first += SCORES_PER_WORD) {
                // Each packed word of scores is read once, for the eight updates it holds.
                uint256 w = first / SCORES_PER_WORD;
                uint256 m = 0;
                for (uint256 j = 0; j < size; ++j) {
                    if (Bits.has(h.scored, j)) {
                        words[m] = scores[j][w];
                        ++m;
                    }
                }
                uint256 end = first + SCORES_PER_WORD < n ? first + SCORES_PER_WORD : n;
                for (uint256 k = first; k < end; ++k) {
                    for (uint256 i = 0; i < m; ++i) {
                        column[i] = Bits.scoreAt(words[i], k - first);
                    }
                    int256 median = Median.medianOf(column, m);
                    u[k] = median;
                    if (median > 0) {
                        anyPositive = true;
                        if (stopAtPositive) return (u, true);
                    }
                }
            }
        }
    }


    /// @dev A seat's earnings: its 96 bits plus the high part kept in the participant's record.
    function _earned(Seat storage seat, Participant storage pp) internal view returns (uint256) {
        return uint256(seat.earned) + (uint256(pp.earnedHigh) << 96);
    }

    function _creditTo(address account, uint256 amount) internal {
        if (amount == 0) return;
        _credit[account] += amount;
        _totalCredit += amount;
    }


    function _toU128(uint256 amount) internal pure returns (uint128) {
        if (amount > type(uint128).max) revert AmountTooLarge(amount);
        return uint128(amount);
    }
}
