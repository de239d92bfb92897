// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IMarketplaceTypes} from "./IMarketplace.sol";

// The caps (docs/protocol.md), at file level so that ParamsCheck shares them.
uint256 constant CAP_MAX_TRAINERS = 64;
uint256 constant CAP_MAX_VALIDATORS = 32;
uint256 constant CAP_MAX_COMMITTEE = 9;
uint256 constant CAP_MAX_ELECTED_TRAINERS = 32; // an elected committee's map (RoundHeader.committee) has 32 bits
uint256 constant CAP_MAX_ROUNDS = 1000;
uint256 constant CAP_MIN_WINDOW = 1 seconds; // the floor; each deployment fixes its own minimum (ParamsCheck)
uint256 constant CAP_MAX_LATE_SLASH_BPS = 5000; // a late round costs at most half the stake
uint256 constant CAP_MAX_WINDOW = 30 days;
uint256 constant CAP_MAX_TOLERANCE_BPS = 20_000; // agreementToleranceBps: a member may be at most 2x the utilities' size away

/// @title MarketStorage — the Marketplace's constants, storage layout and packed records
/// @notice Storage is packed so that the per-trainer work of a round stays flat and small:
/// a round's who-did-what lives in one word (bitmaps), each trainer's address and earnings in one
/// word, scores eight to a word, reveal entries three to a word, and the per-update slots of a round
/// are reused two rounds later.
abstract contract MarketStorage is IMarketplaceTypes {
    // ---------------------------------------------------------------- caps (docs/protocol.md)

    /// @notice Most trainers per task: closing a round loops over them (and a round's bitmaps hold 64).
    uint256 public constant MAX_TRAINERS = CAP_MAX_TRAINERS;
    /// @notice Most validators per task: settlement loops over every participant.
    uint256 public constant MAX_VALIDATORS = CAP_MAX_VALIDATORS;
    /// @notice Largest committee: each utility is the median of at most this many scores.
    uint256 public constant MAX_COMMITTEE = CAP_MAX_COMMITTEE;
    /// @notice Most rounds per task (keeps the per-round budget meaningful).
    uint256 public constant MAX_ROUNDS = CAP_MAX_ROUNDS;
    /// @notice Shortest phase window.
    uint256 public constant MIN_WINDOW = CAP_MIN_WINDOW;
    /// @notice Longest phase window.
    uint256 public constant MAX_WINDOW = CAP_MAX_WINDOW;

    /// @notice Scores are clamped to -MAX_SCORE..MAX_SCORE micro-units (the agents' own limit, +-1000.0).
    int64 public constant MAX_SCORE = 1e9;

    /// @dev The stored stage of a round that has been settled (beyond IMarketplace.Phase).
    uint8 internal constant STAGE_CLOSED = 9;

    // ---------------------------------------------------------------- packing

    uint256 internal constant SCORES_PER_WORD = 8; // clamped scores (int32) per storage word
    uint256 internal constant ENTRIES_PER_WORD = 2; // reveal entries (8 + 64 + 36 bits, Bits.ENTRY_BITS) per storage word
    uint256 internal constant SCORE_WORDS = (MAX_TRAINERS + SCORES_PER_WORD - 1) / SCORES_PER_WORD;
    uint256 internal constant ORDER_WORDS = (MAX_TRAINERS + ENTRIES_PER_WORD - 1) / ENTRIES_PER_WORD;
    /// @dev A reveal-order word holds its entries in the low ENTRIES_PER_WORD * 108 = 216 bits and,
    /// above them, the XOR of MIX_BITS bits of each of its reveals' commitments: the entropy the
    /// next round's committee is drawn from (docs/protocol.md, "Committee").
    uint256 internal constant MIX_BITS = 40;
    uint256 internal constant MIX_SHIFT = 256 - MIX_BITS;
    /// @dev Written when a trainer joins into the slots its seat brings to a round (its commitment
    /// slots, the reveal-order and score words it starts), so that every round overwrites non-zero
    /// slots; never a valid commitment (no keccak256 output is 1).
    bytes32 internal constant ALLOCATED = bytes32(uint256(1));
    /// @dev Set above the 64 bits of a stored proposal's metric (UpdateBuffer.proposedMetric).
    uint256 internal constant PROPOSAL_MARK = 1 << 64;
    /// @dev Entries of the in-memory table that finds a round's duplicate digests by their
    /// fingerprints (MarketCore).
    uint256 internal constant DIGEST_SLOTS = 128;

    // ---------------------------------------------------------------- records

    /// @dev One participant of one task, one storage word. Amounts fit: a task never holds 2^128
    /// wei or more (every deposit checks it), so no stake, slash or earning of it reaches 2^128.
    struct Participant {
        Role role;
        bool licensed;
        uint16 index; // seat in the task's trainer or validator list
        uint128 slashed; // slashed over all rounds (stake remaining = stake - slashed)
        uint32 earnedHigh; // earnings above the seat's 96 bits, in units of 2^96 wei (0 in practice)
        // a trainer's copy of its task's params.maxSamples (fixed at newModel), written at join into
        // this word's spare bits: revealUpdate checks it without reading the params' slot (0 otherwise)
        uint64 maxSamples;
    }

    /// @dev A trainer's or validator's seat: its address and earnings in one word, so that paying
    /// it at the close of a round costs one storage read and one write.
    struct Seat {
        address account;
        uint96 earned; // rewards accrued over all rounds, below 2^96 (the rest: Participant.earnedHigh)
    }

    /// @dev Who sits and who did what in a round: one storage word, kept for every round.
    struct RoundHeader {
        uint8 stage; // a Phase value as last stored, or STAGE_CLOSED; the live phase is derived
        uint32 deadline; // end of the stored stage (0 for Due and Closed); seconds, fits until 2106
        uint64 committed; // bit i: trainer seat i committed
        uint64 revealed; // bit i: trainer seat i revealed
        uint32 committee; // bit i: validator seat i (an elected task: trainer seat i) sits on the round's committee
        uint16 scored; // bit j: committee position j (the j-th member in seat order) revealed its scores
        // bit j: position j's commitment is in and, from VoteCommit on, not an approval: until the
        // proposal (proposed false) its score commitment; publishing clears it, then its vote
        // commitment, cleared again by an ok reveal (so approved = ballot & ~sealedBits)
        uint16 sealedBits;
        uint16 ballot; // bit j: position j revealed its vote (ok: sealedBits bit clear; reject: set)
        bool proposed;
    }

    /// @dev A round's record, kept for every round. Its proposal lives in the round's UpdateBuffer.
    struct Round {
        RoundHeader header;
    }

    /// @dev Per-update data of a round, in one of two buffers chosen by the round's parity: round r
    /// reuses the slots of round r - 2, so a round writes non-zero over non-zero (~5k gas a slot
    /// instead of ~22k). The current and the previous round are always readable; older rounds'
    /// updates and scores remain in the UpdateRevealed and ScoresSubmitted events.
    struct UpdateBuffer {
        /// trainer seat -> the commitment, replaced by the update digest at reveal
        bytes32[MAX_TRAINERS] updates;
        /// reveal order, ENTRIES_PER_WORD entries (trainer seat, numSamples, digest fingerprint) per
        /// word, and the reveals' mix
        uint256[ORDER_WORDS] order;
        /// [committee position][word] -> SCORES_PER_WORD packed int32 scores (clamped), in reveal order
        uint256[SCORE_WORDS][MAX_COMMITTEE] scores;
        /// committee position -> its score commitment, replaced by its vote commitment in VoteCommit
        bytes32[MAX_COMMITTEE] seals;
        /// the aggregator's proposal (publishGlobalModel): the global model's digest, and its metric
        /// as PROPOSAL_MARK | uint64(metric) (never 0, so the next round writes non-zero over non-zero);
        /// both pre-allocated when the aggregator joins. Read only while the round's header says
        /// `proposed`: before that they hold round r - 2's proposal (or ALLOCATED).
        bytes32 proposedDigest;
        uint256 proposedMetric;
    }

    struct Task {
        ModelParams params;
        // one word: 160 + 8 + 32 + 32 + 8 + 8 + 8 bits
        address owner;
        Status status;
        uint32 currentRound;
        uint32 roundsClosed;
        uint8 trainerCount;
        uint8 validatorCount;
        // the committee is elected from the trainers (params.maxValidators == 0), set at the start:
        // RoundHeader.committee then maps trainer seats (docs/protocol.md, "Elected committees")
        bool elected;
        // money of this task (wei); taskBalance = escrow + stakesHeld + accrued + licenseHeld < 2^128.
        // Paired so that every word the close of a round writes is already non-zero before round 1
        // (reward and escrow from the start, stakesHeld from the joins, licenseIncome when there is
        // a licence fee): no round pays a zero-to-non-zero write (~17k gas) for its money.
        uint128 reward;
        uint128 aggregatorEarned;
        uint128 escrow;
        uint128 accrued; // participants' earnings + buyerAccrued, not yet credited
        uint128 stakesHeld;
        uint128 trainerCarry; // slashes and trainer pools no trainer earned yet, for later rounds (part of accrued)
        uint128 licenseIncome;
        uint128 buyerAccrued; // what returns to the buyer at settlement, escrow aside
        // one word: 128 + 64 + 8 bits
        uint128 licenseHeld; // licence fees held until startTraining (refundable before)
        uint64 startDeadline; // newModel's timestamp + startWindow
        bool endRequested; // the owner's early finalize: the task ends when the open round closes
        bytes32 globalModelDigest;
        Seat[] trainerSeats;
        Seat[] validatorSeats;
        mapping(address => Participant) participants;
        mapping(uint32 => Round) rounds;
        UpdateBuffer[2] buffers;
    }

    // ---------------------------------------------------------------- state

    uint256 internal _modelCount;
    mapping(uint256 => Task) internal _tasks;
    mapping(address => uint256) internal _credit;
    uint256 internal _totalCredit;
}
