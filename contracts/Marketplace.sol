// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IMarketplace} from "./IMarketplace.sol";
import {MarketCore} from "./MarketCore.sol";
import {Bits} from "./lib/Bits.sol";
import {Committee} from "./lib/Committee.sol";
import {ReentrancyGuard} from "./lib/ReentrancyGuard.sol";
import {ParamsCheck} from "./ParamsCheck.sol";
import {RoundSettlement} from "./RoundSettlement.sol";

/// @title Marketplace — the fedmarket state machine
/// @notice Implements IMarketplace exactly as docs/protocol.md fixes it: caps, lazy phases,
/// per-round committee draws, commit-reveal, median utilities and the settlement arithmetic to the wei.
/// @dev Checks run in one order everywhere: the task exists (UnknownModel), its status
/// (WrongStatus), the round (WrongRound), the caller's role, "already did it" errors, the phase
/// (WrongPhase), then the payload. Every function follows checks-effects-interactions; the only
/// function that sends ether is `withdraw` (pull payments, reentrancy-guarded). Each task's money
/// is tracked in its own record (escrow, stakesHeld, accrued) and only moves to credits at
/// settlement or cancellation, so one task's wei can never pay another task's participants.
contract Marketplace is MarketCore, IMarketplace, ReentrancyGuard {
    /// @notice The parameter checks of newModel, deployed with the market: their code lives
    /// outside this contract, which would otherwise pass the 24,576-byte code size limit (EIP-170).
    ParamsCheck public immutable PARAMS_CHECK;

    /// @notice The settlement of a round (RoundSettlement), deployed with the market and run by
    /// delegatecall on this contract's storage: its code lives apart for the same size limit.
    RoundSettlement public immutable SETTLEMENT;

    /// @param minWindow the shortest phase window newModel accepts, in seconds (1 on dev chains).
    constructor(uint256 minWindow) {
        PARAMS_CHECK = new ParamsCheck(minWindow);
        SETTLEMENT = new RoundSettlement();
    }

    // =====================================================================================
    // task set-up
    // =====================================================================================

    /// @inheritdoc IMarketplace
    function newModel(ModelParams calldata params) external payable returns (uint256 modelId) {
        if (msg.value == 0) revert ZeroEscrow();
        // Reverts with newModel's parameter errors (an external call re-throws them as they are).
        PARAMS_CHECK.check(params, msg.sender);
        modelId = ++_modelCount;
        Task storage t = _tasks[modelId];
        t.params = params;
        t.owner = msg.sender;
        t.status = Status.Open;
        t.escrow = _toU128(msg.value);
        t.globalModelDigest = params.initialModelDigest;
        t.startDeadline = uint64(block.timestamp) + params.startWindow;
        emit ModelCreated(modelId, msg.sender, params.aggregator, params.specDigest, params.rounds);
        emit ModelCreationPayment(modelId, msg.sender, msg.value);
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts UnknownModel, WrongStatus, NotOwner, ZeroEscrow.
    function payForModel(uint256 modelId) external payable {
        Task storage t = _task(modelId);
        _requireStatus(modelId, t, Status.Open);
        if (msg.sender != t.owner) revert NotOwner(modelId, msg.sender);
        if (msg.value == 0) revert ZeroEscrow();
        _requireHoldable(t, msg.value);
        t.escrow = _toU128(t.escrow + msg.value);
        emit ModelCreationPayment(modelId, msg.sender, msg.value);
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts UnknownModel, WrongStatus, OwnerCannotParticipate, AlreadyLicensed, WrongAmount.
    /// A licence bought during training could no longer be used to join, so sales stop at start.
    function buyLicense(uint256 modelId) external payable {
        Task storage t = _task(modelId);
        _requireStatus(modelId, t, Status.Open);
        if (msg.sender == t.owner) revert OwnerCannotParticipate(modelId);
        Participant storage me = t.participants[msg.sender];
        if (me.licensed) revert AlreadyLicensed(modelId, msg.sender);
        uint256 fee = t.params.licenseFee;
        if (msg.value != fee) revert WrongAmount(fee, msg.value);
        me.licensed = true;
        // Held by the task (not credited): an owner must not be able to sell licences and cancel.
        _requireHoldable(t, fee);
        t.licenseHeld = _toU128(t.licenseHeld + fee);
        emit LicensePurchased(modelId, msg.sender, fee);
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts UnknownModel, WrongStatus, OwnerCannotParticipate, AlreadyJoined, NoLicense,
    /// RoleFull, WrongAmount.
    function joinAsTrainer(uint256 modelId) external payable {
        Task storage t = _task(modelId);
        _requireStatus(modelId, t, Status.Open);
        if (msg.sender == t.owner) revert OwnerCannotParticipate(modelId);
        Participant storage me = t.participants[msg.sender];
        if (me.role != Role.None) revert AlreadyJoined(modelId, msg.sender, me.role);
        if (!me.licensed) revert NoLicense(modelId, msg.sender);
        uint256 cap = t.params.maxTrainers;
        if (t.trainerCount >= cap) revert RoleFull(modelId, Role.Trainer, cap);
        _join(modelId, t, me, Role.Trainer, t.params.trainerStake);
        uint256 seat = t.trainerCount;
        me.index = uint16(seat);
        me.maxSamples = t.params.maxSamples;
        t.trainerSeats.push(Seat({account: msg.sender, earned: 0}));
        _allocateSeat(t, seat);
        // seat < maxTrainers <= MAX_TRAINERS = 64 (checked above), so the count fits uint8.
        t.trainerCount = uint8(seat + 1);
    }

    /// @dev Creates, in both buffers (one per round parity), the storage trainer seat `seat` brings
    /// to a round: its commitment slot; for every third seat the reveal-order word it starts; for
    /// every eighth seat the score word it starts, for each committee position. Every round then
    /// overwrites non-zero slots (~5k gas each, not ~22k), from round 1 on: the first use of a
    /// round's storage is paid once, at join (docs/protocol.md, "Per-update data kept on chain").
    /// What these slots hold before their first real write is never read.
    function _allocateSeat(Task storage t, uint256 seat) private {
        uint256 size = t.params.committeeSize;
        // An elected task's committee positions are its trainers' (joinAsValidator's otherwise).
        bool seal = seat < size && t.params.maxValidators == 0;
        for (uint256 b = 0; b < 2; ++b) {
            UpdateBuffer storage buf = t.buffers[b];
            buf.updates[seat] = ALLOCATED;
            if (seal) buf.seals[seat] = ALLOCATED;
            if (seat % ENTRIES_PER_WORD == 0) buf.order[seat / ENTRIES_PER_WORD] = uint256(ALLOCATED);
            if (seat % SCORES_PER_WORD == 0) {
                for (uint256 j = 0; j < size; ++j) {
                    buf.scores[j][seat / SCORES_PER_WORD] = uint256(ALLOCATED);
                }
            }
        }
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts UnknownModel, WrongStatus, OwnerCannotParticipate, AlreadyJoined, RoleFull, WrongAmount.
    function joinAsValidator(uint256 modelId) external payable {
        Task storage t = _task(modelId);
        _requireStatus(modelId, t, Status.Open);
        if (msg.sender == t.owner) revert OwnerCannotParticipate(modelId);
        Participant storage me = t.participants[msg.sender];
        if (me.role != Role.None) revert AlreadyJoined(modelId, msg.sender, me.role);
        uint256 cap = t.params.maxValidators;
        if (t.validatorCount >= cap) revert RoleFull(modelId, Role.Validator, cap);
        _join(modelId, t, me, Role.Validator, t.params.validatorStake);
        uint256 seat = t.validatorCount;
        me.index = uint16(seat);
        t.validatorSeats.push(Seat({account: msg.sender, earned: 0}));
        // Committee position `seat` (< committeeSize) gets its commitment slot in both buffers, so
        // that every commitment overwrites a non-zero slot (the trainers' slots: _allocateSeat).
        if (seat < t.params.committeeSize) {
            t.buffers[0].seals[seat] = ALLOCATED;
            t.buffers[1].seals[seat] = ALLOCATED;
        }
        // seat < maxValidators <= MAX_VALIDATORS = 32 (checked above), so the count fits uint8.
        t.validatorCount = uint8(seat + 1);
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts UnknownModel, WrongStatus, NotAggregator, AlreadyJoined, WrongAmount.
    function joinAsAggregator(uint256 modelId) external payable {
        Task storage t = _task(modelId);
        _requireStatus(modelId, t, Status.Open);
        if (msg.sender != t.params.aggregator) revert NotAggregator(modelId, msg.sender);
        Participant storage me = t.participants[msg.sender];
        if (me.role != Role.None) revert AlreadyJoined(modelId, msg.sender, me.role);
        _join(modelId, t, me, Role.Aggregator, t.params.aggregatorStake);
        // The proposal's slots in both buffers, so that every publishGlobalModel overwrites non-zero slots.
        for (uint256 b = 0; b < 2; ++b) {
            t.buffers[b].proposedDigest = ALLOCATED;
            t.buffers[b].proposedMetric = uint256(ALLOCATED);
        }
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts UnknownModel, WrongStatus, NotOwnerOrAggregator, StartDeadlinePassed,
    /// NotEnoughParticipants. Round 1's committee is drawn from keccak256(abi.encode(block.prevrandao, modelId)).
    function startTraining(uint256 modelId) external {
        Task storage t = _task(modelId);
        _requireStatus(modelId, t, Status.Open);
        ModelParams storage p = t.params;
        if (msg.sender != t.owner && msg.sender != p.aggregator) revert NotOwnerOrAggregator(modelId, msg.sender);
        if (block.timestamp > t.startDeadline) revert StartDeadlinePassed(modelId, t.startDeadline);
        bool aggregatorJoined = t.participants[p.aggregator].role == Role.Aggregator;
        // An elected task (maxValidators 0) has no validators: minTrainers >= 2 * committeeSize (ParamsCheck).
        if (t.trainerCount < p.minTrainers || (p.maxValidators != 0 && t.validatorCount < p.committeeSize) || !aggregatorJoined) {
            revert NotEnoughParticipants(modelId, t.trainerCount, t.validatorCount, aggregatorJoined);
        }
        _delegate(abi.encodeCall(RoundSettlement.startTask, (modelId)));
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts UnknownModel, WrongStatus, NotOwner (anyone but the owner before the start
    /// deadline). Emits ContributionPayment / ValidationPayment / OrchestrationPayment (earned 0,
    /// the whole stake returned) per participant. The licence fees stay in the task until each
    /// licensee reclaims its own with leaveModel (a pull: the licensees are not bounded in number).
    function cancelModel(uint256 modelId) external {
        Task storage t = _task(modelId);
        _requireStatus(modelId, t, Status.Open);
        if (msg.sender != t.owner && block.timestamp <= t.startDeadline) revert NotOwner(modelId, msg.sender);
        _delegate(abi.encodeCall(RoundSettlement.cancelTask, (modelId)));
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts UnknownModel, WrongStatus (expected Open; Cancelled is accepted for a licence
    /// refund), NothingToLeave. A leaving trainer's or validator's seat is taken by the last one of
    /// its role (seats stay contiguous; join order changes only for that one).
    function leaveModel(uint256 modelId) external {
        Task storage t = _task(modelId);
        Status status = t.status;
        bool open = status == Status.Open;
        if (!open && status != Status.Cancelled) revert WrongStatus(modelId, Status.Open, status);
        Participant storage me = t.participants[msg.sender];
        Role role = open ? me.role : Role.None;
        bool licensed = me.licensed;
        if (role == Role.None && !licensed) revert NothingToLeave(modelId, msg.sender);

        uint256 stake = _stakeOf(t.params, role);
        if (role == Role.Trainer || role == Role.Validator) {
            Seat[] storage seats = role == Role.Trainer ? t.trainerSeats : t.validatorSeats;
            // The last seat moves into the leaver's (earnings are 0 before training).
            uint256 index = me.index;
            address moved = seats[seats.length - 1].account;
            seats[index].account = moved;
            t.participants[moved].index = uint16(index);
            seats.pop();
            if (role == Role.Trainer) --t.trainerCount;
            else --t.validatorCount;
        }
        uint256 fee = licensed ? t.params.licenseFee : 0;
        if (open) me.role = Role.None; // a cancelled task's records keep their roles
        me.licensed = false;
        // Both are part of what the task holds (stakesHeld, licenseHeld): the subtractions cannot underflow.
        unchecked {
            t.stakesHeld -= uint128(stake);
            t.licenseHeld -= uint128(fee);
        }
        _creditTo(msg.sender, stake + fee);
        emit ParticipantLeft(modelId, msg.sender, role, stake, fee);
    }

    // =====================================================================================
    // rounds
    // =====================================================================================

    /// @inheritdoc IMarketplace
    /// @dev Reverts UnknownModel, WrongStatus, WrongRound, NotTrainer, CommitteeMemberCannotTrain,
    /// AlreadyCommitted, WrongPhase. The last trainer to commit ends the Commit phase.
    function commitUpdate(uint256 modelId, uint32 round, bytes32 commitment) external {
        Task storage t = _task(modelId);
        _requireRound(modelId, t, round);
        uint256 seat = _trainer(modelId, t).index;
        Round storage rd = t.rounds[round];
        RoundHeader memory h = rd.header;
        // An elected task's members do not train the round they score (the task's word is warm).
        uint64 sitting = t.elected ? h.committee : 0;
        if (Bits.has(sitting, seat)) revert CommitteeMemberCannotTrain(modelId, round, msg.sender);
        if (Bits.has(h.committed, seat)) revert AlreadyCommitted(modelId, round, msg.sender);
        _requirePhase(modelId, round, t, h, Phase.Commit);

        h.committed |= uint64(1 << seat);
        _buffer(t, round).updates[seat] = commitment;
        if (Bits.popcount(h.committed | sitting) == t.trainerCount) _endPhase(t, round, h);
        rd.header = h;
        emit UpdateCommitted(modelId, round, msg.sender, commitment);
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts UnknownModel, WrongStatus, WrongRound, NotTrainer, AlreadyRevealed, WrongPhase,
    /// NotCommitted, ZeroSamples, CommitmentMismatch. The last committed trainer to reveal ends
    /// the Reveal phase.
    function revealUpdate(uint256 modelId, uint32 round, bytes32 updateDigest, uint64 numSamples, bytes32 salt) external {
        Task storage t = _task(modelId);
        _requireRound(modelId, t, round);
        Participant storage me = _trainer(modelId, t);
        uint256 seat = me.index;
        Round storage rd = t.rounds[round];
        RoundHeader memory h = rd.header;
        if (Bits.has(h.revealed, seat)) revert AlreadyRevealed(modelId, round, msg.sender);
        _requirePhase(modelId, round, t, h, Phase.Reveal);
        if (!Bits.has(h.committed, seat)) revert NotCommitted(modelId, round, msg.sender);
        if (numSamples == 0) revert ZeroSamples();
        // The trainer's record holds a copy of params.maxSamples (warm: read just above).
        uint64 maxSamples = me.maxSamples;
        if (numSamples > maxSamples) revert TooManySamples(numSamples, maxSamples);
        UpdateBuffer storage buf = _buffer(t, round);
        bytes32 commitment = buf.updates[seat];
        if (commitment != _commitment(modelId, round, updateDigest, numSamples, salt, msg.sender)) {
            revert CommitmentMismatch(modelId, round, msg.sender);
        }

        uint256 position = Bits.popcount(h.revealed);
        h.revealed |= uint64(1 << seat);
        buf.updates[seat] = updateDigest;
        _recordReveal(buf, position, seat, numSamples, updateDigest, commitment);
        if (position + 1 == Bits.popcount(h.committed)) _endPhase(t, round, h);
        rd.header = h;
        // position < MAX_TRAINERS = 64: fits uint16.
        emit UpdateRevealed(modelId, round, msg.sender, updateDigest, numSamples, uint16(position));
    }

    /// @dev Writes reveal number `position`'s entry (seat, numSamples, the digest's fingerprint, which
    /// lets the settlement find duplicate digests without reading every digest) into the
    /// reveal-order words, with the next committee's entropy (docs/protocol.md, "Committee"):
    /// MIX_BITS of the commitment, which hid the trainer's salt until now; the round's first reveal
    /// also mixes in prevrandao, which nobody knew when the salts were committed.
    function _recordReveal(
        UpdateBuffer storage buf,
        uint256 position,
        uint256 seat,
        uint64 numSamples,
        bytes32 updateDigest,
        bytes32 commitment
    ) private {
        uint256 word = position / ENTRIES_PER_WORD;
        uint256 slot = position % ENTRIES_PER_WORD;
        uint256 mix = position == 0 ? uint256(keccak256(abi.encode(commitment, block.prevrandao))) : uint256(commitment);
        uint256 entry = (Bits.entry(seat, numSamples, updateDigest) << (Bits.ENTRY_BITS * slot)) ^ ((mix >> MIX_SHIFT) << MIX_SHIFT);
        // The first entry of a word overwrites what the round two before left there; the later
        // ones fill their (zero) slots and XOR their mix in.
        buf.order[word] = slot == 0 ? entry : buf.order[word] ^ entry;
    }

    /// @inheritdoc IMarketplace
    function commitScores(uint256 modelId, uint32 round, bytes32 commitment) external {
        _commitCommittee(modelId, round, commitment, Phase.ScoreCommit);
        emit ScoresCommitted(modelId, round, msg.sender, commitment);
    }

    /// @inheritdoc IMarketplace
    function revealScores(uint256 modelId, uint32 round, int64[] calldata scores, bytes32 salt) external {
        (Task storage t, Round storage rd, RoundHeader memory h, uint256 position) =
            _committeeAction(modelId, round, Phase.ScoreReveal);
        if (Bits.has(h.scored, position)) revert AlreadyScored(modelId, round, msg.sender);
        if (!Bits.has(h.sealedBits, position)) revert ScoresNotCommitted(modelId, round, msg.sender);
        uint256 n = Bits.popcount(h.revealed);
        if (scores.length != n) revert WrongScoreCount(n, scores.length);
        UpdateBuffer storage buf = _buffer(t, round);
        if (buf.seals[position] != keccak256(abi.encode(modelId, round, msg.sender, scores, salt))) {
            revert ScoreCommitmentMismatch(modelId, round, msg.sender);
        }

        uint256[SCORE_WORDS] storage words = buf.scores[position];
        for (uint256 first = 0; first < n; first += SCORES_PER_WORD) {
            uint256 end = first + SCORES_PER_WORD < n ? first + SCORES_PER_WORD : n;
            uint256 word = 0;
            for (uint256 k = first; k < end; ++k) {
                int64 score = scores[k];
                // Clamped: no member can move a median further than the utilities' range.
                if (score > MAX_SCORE) score = MAX_SCORE;
                else if (score < -MAX_SCORE) score = -MAX_SCORE;
                word = Bits.withScore(word, k - first, score);
            }
            words[first / SCORES_PER_WORD] = word;
        }
        h.scored |= uint16(1 << position);
        // Every member that committed has revealed: nobody is left to wait for.
        if (h.scored == h.sealedBits) _endPhase(t, round, h);
        rd.header = h;
        emit ScoresRevealed(modelId, round, msg.sender, scores);
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts UnknownModel, WrongStatus, WrongRound, NotAggregator, AlreadyPublished, WrongPhase.
    /// Publishing ends the Publish phase.
    function publishGlobalModel(uint256 modelId, uint32 round, bytes32 modelDigest, int64 metric) external {
        Task storage t = _task(modelId);
        _requireRound(modelId, t, round);
        if (msg.sender != t.params.aggregator) revert NotAggregator(modelId, msg.sender);
        Round storage rd = t.rounds[round];
        RoundHeader memory h = rd.header;
        if (h.proposed) revert AlreadyPublished(modelId, round);
        _requirePhase(modelId, round, t, h, Phase.Publish);

        h.proposed = true;
        // From now on `sealedBits` marks vote commitments (the score commitments are done with).
        h.sealedBits = 0;
        UpdateBuffer storage buf = _buffer(t, round);
        buf.proposedDigest = modelDigest;
        buf.proposedMetric = PROPOSAL_MARK | uint64(metric);
        _endPhase(t, round, h);
        rd.header = h;
        emit GlobalModelProposed(modelId, round, modelDigest, metric);
    }

    /// @inheritdoc IMarketplace
    function commitVote(uint256 modelId, uint32 round, bytes32 commitment) external {
        _commitCommittee(modelId, round, commitment, Phase.VoteCommit);
        emit VoteCommitted(modelId, round, msg.sender, commitment);
    }

    /// @dev A committee member's commitment in `phase` (ScoreCommit or VoteCommit): the checks run
    /// after the phase's; the commitment is stored per committee position (pre-allocated at join,
    /// reused two rounds later; a vote commitment takes the slot of the score commitment it no
    /// longer needs) and the header's `sealedBits` bit marks it. The last member ends the phase.
    function _commitCommittee(uint256 modelId, uint32 round, bytes32 commitment, Phase phase) private {
        (Task storage t, Round storage rd, RoundHeader memory h, uint256 position) = _committeeAction(modelId, round, phase);
        if (Bits.has(h.sealedBits, position)) {
            if (phase == Phase.ScoreCommit) revert ScoresAlreadyCommitted(modelId, round, msg.sender);
            revert VoteAlreadyCommitted(modelId, round, msg.sender);
        }
        h.sealedBits |= uint16(1 << position);
        _buffer(t, round).seals[position] = commitment;
        // Every member is in (the committee map holds committeeSize seats; no params read).
        if (Bits.popcount(h.sealedBits) == Bits.popcount(h.committee)) _endPhase(t, round, h);
        rd.header = h;
    }

    /// @inheritdoc IMarketplace
    /// @dev An ok reveal clears the member's `sealedBits` bit (approved = ballot & ~sealedBits); the last
    /// committed member to reveal settles the round in the same transaction.
    function revealVote(uint256 modelId, uint32 round, bool ok, bytes32 salt) external {
        (Task storage t, Round storage rd, RoundHeader memory h, uint256 position) =
            _committeeAction(modelId, round, Phase.VoteReveal);
        if (Bits.has(h.ballot, position)) revert AlreadyConfirmed(modelId, round, msg.sender);
        if (!Bits.has(h.sealedBits, position)) revert VoteNotCommitted(modelId, round, msg.sender);
        if (_buffer(t, round).seals[position] != keccak256(abi.encode(modelId, round, msg.sender, ok, salt))) {
            revert VoteCommitmentMismatch(modelId, round, msg.sender);
        }

        h.ballot |= uint16(1 << position);
        if (ok) h.sealedBits &= ~uint16(1 << position);
        emit GlobalModelConfirmed(modelId, round, msg.sender, ok);
        rd.header = h;
        if (h.sealedBits & ~h.ballot == 0) _settle(modelId);
    }

    /// @dev The common checks of the four committee actions: the task, its round, the caller's
    /// committee position and the phase `expected` (on the header brought up to date).
    function _committeeAction(uint256 modelId, uint32 round, Phase expected)
        private
        view
        returns (Task storage t, Round storage rd, RoundHeader memory h, uint256 position)
    {
        t = _task(modelId);
        _requireRound(modelId, t, round);
        rd = t.rounds[round];
        h = rd.header;
        position = _committeePosition(modelId, t, round, h.committee, msg.sender);
        _requirePhase(modelId, round, t, h, expected);
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts UnknownModel, WrongStatus, RoundNotDue (phase None once the last round closed).
    function closeRound(uint256 modelId) external {
        Task storage t = _task(modelId);
        _requireStatus(modelId, t, Status.Training);
        uint32 round = t.currentRound;
        Round storage rd = t.rounds[round];
        RoundHeader memory h = rd.header;
        _sync(t, round, h);
        if (h.stage != uint8(Phase.Due)) revert RoundNotDue(modelId, round, _phaseOf(t, h), h.deadline);
        rd.header = h;
        _settle(modelId);
    }

    /// @dev Runs RoundSettlement.settleRound on this contract's storage (the round's header is
    /// stored first); a revert inside it is re-thrown as it is. Its code reverts only with data
    /// (custom errors, panics), so a failure without data is the delegatecall running out of gas:
    /// the transaction then runs out of gas too (INVALID spends the 1/64 left), so that a client
    /// sees an out-of-gas transaction, not an unexplained revert.
    function _settle(uint256 modelId) private {
        _delegate(abi.encodeCall(RoundSettlement.settleRound, (modelId)));
    }

    /// @dev Runs `data` (a call of RoundSettlement) by delegatecall on this contract's storage.
    function _delegate(bytes memory data) private {
        (bool ok, bytes memory reason) = address(SETTLEMENT).delegatecall(data);
        if (!ok) {
            assembly ("memory-safe") {
                if iszero(mload(reason)) { invalid() }
                revert(add(reason, 32), mload(reason))
            }
        }
    }

    // =====================================================================================
    // the end
    // =====================================================================================

    /// @inheritdoc IMarketplace
    /// @dev Reverts UnknownModel, WrongStatus, NotOwner (anyone but the owner before the last round
    /// closed). Once the open round has a commit, its budget belongs to that
    /// round: the owner's early finalize only stops the next round from opening.
    function finalizeContract(uint256 modelId) external {
        Task storage t = _task(modelId);
        _requireStatus(modelId, t, Status.Training);
        uint32 round = t.currentRound;
        if (t.roundsClosed < t.params.rounds) {
            if (msg.sender != t.owner) revert NotOwner(modelId, msg.sender);
            if (t.rounds[round].header.committed != 0) {
                // A repeated request changes nothing (the task ends when the round settles).
                t.endRequested = true;
                emit EndRequested(modelId, round);
                return;
            }
        }
        t.status = Status.Finalized;
        emit ModelFinalized(modelId, t.roundsClosed, t.escrow);
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts UnknownModel, WrongStatus. Loops over at most MAX_TRAINERS + MAX_VALIDATORS + 1
    /// participants. Credits per participant earned + (stake - slashed), and to the owner the
    /// unspent escrow plus everything accrued to the buyer; afterwards taskBalance == 0.
    function generateTrainingPayments(uint256 modelId) external {
        Task storage t = _task(modelId);
        _requireStatus(modelId, t, Status.Finalized);
        _delegate(abi.encodeCall(RoundSettlement.settleTask, (modelId)));
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts NothingToWithdraw, TransferFailed (the credit is then kept), ReentrantCall.
    function withdraw() external nonReentrant {
        uint256 amount = _credit[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        _credit[msg.sender] = 0;
        _totalCredit -= amount;
        emit Withdrawal(msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    // =====================================================================================
    // views
    // =====================================================================================

    /// @inheritdoc IMarketplace
    function modelCount() external view returns (uint256) {
        return _modelCount;
    }

    /// @inheritdoc IMarketplace
    function getModel(uint256 modelId) external view returns (ModelData memory) {
        Task storage t = _task(modelId);
        ModelParams memory params = t.params;
        ModelState memory state = ModelState({
            owner: t.owner,
            status: t.status,
            currentRound: t.currentRound,
            roundsClosed: t.roundsClosed,
            reward: t.reward,
            escrow: t.escrow,
            stakesHeld: t.stakesHeld,
            accrued: t.accrued,
            licenseIncome: t.licenseIncome,
            globalModelDigest: t.globalModelDigest,
            trainerCount: t.trainerCount,
            validatorCount: t.validatorCount,
            aggregatorJoined: t.participants[params.aggregator].role == Role.Aggregator,
            licenseHeld: t.licenseHeld,
            startDeadline: t.startDeadline,
            endRequested: t.endRequested
        });
        return ModelData({params: params, state: state});
    }

    /// @inheritdoc IMarketplace
    /// @dev Rounds not opened yet (or out of range) report phase None; a closed round reports
    /// phase None and closed = true. The committee is known for every round once training started.
    function getRound(uint256 modelId, uint32 round) external view returns (RoundView memory v) {
        Task storage t = _task(modelId);
        v.round = round;
        if (round == 0 || round > t.params.rounds) return v;
        RoundHeader memory h;
        (h, v.phase, v.phaseDeadline) = _roundNow(t, round);
        v.committee = _committee(t, h.committee);
        // Counts are popcounts of maps of at most 64 bits: they fit uint16.
        v.commits = uint16(Bits.popcount(h.committed));
        v.reveals = uint16(Bits.popcount(h.revealed));
        // Until the proposal `sealedBits` marks score commitments, afterwards vote ones (MarketStorage).
        v.scoreCommits = uint16(Bits.popcount(h.proposed ? h.scored : h.sealedBits));
        v.scoresSubmitted = uint16(Bits.popcount(h.scored));
        v.voteCommits = h.proposed ? uint16(Bits.popcount(h.sealedBits | h.ballot)) : 0;
        v.proposed = h.proposed;
        // The proposal is kept for the current and the previous round (older: in GlobalModelProposed).
        if (h.proposed && _retained(t, round)) (v.proposedDigest, v.proposedMetric) = _proposal(t, round);
        v.confirmations = uint16(Bits.popcount(h.ballot));
        v.rejections = uint16(Bits.popcount(h.ballot & h.sealedBits));
        v.closed = h.stage == STAGE_CLOSED;
    }

    /// @inheritdoc IMarketplace
    function agentView(uint256 modelId, address account) external view returns (AgentView memory v) {
        Task storage t = _task(modelId);
        uint32 round = t.currentRound;
        v.status = t.status;
        v.currentRound = round;
        v.roundsClosed = t.roundsClosed;
        v.trainerCount = t.trainerCount;
        v.validatorCount = t.validatorCount;
        v.globalModelDigest = t.globalModelDigest;
        Participant storage pp = t.participants[account];
        v.role = pp.role;
        v.licensed = pp.licensed;
        if (round == 0) return v;
        RoundHeader memory h;
        (h, v.phase, v.phaseDeadline) = _roundNow(t, round);
        v.closed = h.stage == STAGE_CLOSED;
        v.proposed = h.proposed;
        if (h.proposed) (v.proposedDigest, v.proposedMetric) = _proposal(t, round);
        if (pp.role == Role.Trainer) {
            v.committed = Bits.has(h.committed, pp.index);
            v.revealed = Bits.has(h.revealed, pp.index);
        }
        if (pp.role == _memberRole(t)) {
            uint256 position;
            (v.onCommittee, position) = Committee.positionOf(h.committee, pp.index);
            if (v.onCommittee) {
                v.scored = Bits.has(h.scored, position);
                v.scoreCommitted = h.proposed ? v.scored : Bits.has(h.sealedBits, position);
                v.voteCommitted = h.proposed && Bits.has(h.sealedBits | h.ballot, position);
                v.voted = Bits.has(h.ballot, position);
            }
        }
    }

    /// @dev The proposal of round `round`, which must be retained and proposed (UpdateBuffer).
    function _proposal(Task storage t, uint32 round) private view returns (bytes32 digest, int64 metric) {
        UpdateBuffer storage buf = _buffer(t, round);
        return (buf.proposedDigest, int64(uint64(buf.proposedMetric)));
    }

    /// @dev Round `round`'s header brought up to date (when it is the current round of a training
    /// task), its derived phase and that phase's deadline (0 for None and Due).
    function _roundNow(Task storage t, uint32 round) private view returns (RoundHeader memory h, Phase phase, uint64 deadline) {
        h = t.rounds[round].header;
        if (t.status == Status.Training && round == t.currentRound) _sync(t, round, h);
        phase = _phaseOf(t, h);
        deadline = (phase == Phase.None || phase == Phase.Due) ? 0 : h.deadline;
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts RoundDataPruned for rounds before the previous one.
    function revealedUpdates(uint256 modelId, uint32 round)
        external
        view
        returns (address[] memory trainerAddresses, bytes32[] memory updateDigests, uint64[] memory numSamples)
    {
        Task storage t = _task(modelId);
        _requireRetained(modelId, t, round);
        UpdateBuffer storage buf = _buffer(t, round);
        uint256 n = Bits.popcount(t.rounds[round].header.revealed);
        trainerAddresses = new address[](n);
        updateDigests = new bytes32[](n);
        numSamples = new uint64[](n);
        for (uint256 k = 0; k < n; ++k) {
            (uint256 seat, uint64 samples) = _revealEntry(buf, k);
            trainerAddresses[k] = t.trainerSeats[seat].account;
            updateDigests[k] = buf.updates[seat];
            numSamples[k] = samples;
        }
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts RoundDataPruned for rounds before the previous one.
    function utilities(uint256 modelId, uint32 round) external view returns (int64[] memory result) {
        Task storage t = _task(modelId);
        _requireRetained(modelId, t, round);
        RoundHeader memory h = t.rounds[round].header;
        uint256 n = Bits.popcount(h.revealed);
        (int256[] memory u,) = _utilities(t, round, h, n, false);
        (, uint64 refused) = _revealedSeats(_buffer(t, round), n);
        result = new int64[](n);
        for (uint256 k = 0; k < n; ++k) {
            // A median of int64 scores lies between two int64 values, so it fits int64.
            if (!Bits.has(refused, k)) result[k] = int64(u[k]);
        }
    }

    /// @inheritdoc IMarketplace
    /// @dev Reverts RoundDataPruned for rounds before the previous one.
    function scoresOf(uint256 modelId, uint32 round, address validator)
        external
        view
        returns (bool submitted, int64[] memory scores)
    {
        Task storage t = _task(modelId);
        _requireRetained(modelId, t, round);
        RoundHeader storage h = t.rounds[round].header;
        (bool member, uint256 position) = _positionOf(t, h.committee, validator);
        if (!member || !Bits.has(h.scored, position)) return (false, scores);
        uint256 n = Bits.popcount(h.revealed);
        uint256[SCORE_WORDS] storage words = _buffer(t, round).scores[position];
        scores = new int64[](n);
        for (uint256 k = 0; k < n; ++k) {
            scores[k] = Bits.scoreAt(words[k / SCORES_PER_WORD], k % SCORES_PER_WORD);
        }
        submitted = true;
    }

    /// @inheritdoc IMarketplace
    function hasConfirmed(uint256 modelId, uint32 round, address validator) external view returns (bool voted, bool ok) {
        Task storage t = _task(modelId);
        RoundHeader storage h = t.rounds[round].header;
        (bool member, uint256 position) = _positionOf(t, h.committee, validator);
        if (!member) return (false, false);
        voted = Bits.has(h.ballot, position);
        ok = voted && !Bits.has(h.sealedBits, position);
    }

    /// @inheritdoc IMarketplace
    function commitmentOf(
        uint256 modelId,
        uint32 round,
        bytes32 updateDigest,
        uint64 numSamples,
        bytes32 salt,
        address trainer
    ) external pure returns (bytes32) {
        return _commitment(modelId, round, updateDigest, numSamples, salt, trainer);
    }

    /// @inheritdoc IMarketplace
    function hasCommitted(uint256 modelId, uint32 round, address trainer) external view returns (bool) {
        return _trainerDid(modelId, round, trainer, false);
    }

    /// @inheritdoc IMarketplace
    function hasRevealed(uint256 modelId, uint32 round, address trainer) external view returns (bool) {
        return _trainerDid(modelId, round, trainer, true);
    }

    /// @dev Whether `trainer` is a trainer of the task and committed (or, `revealed`, revealed) in `round`.
    function _trainerDid(uint256 modelId, uint32 round, address trainer, bool revealed) private view returns (bool) {
        Task storage t = _task(modelId);
        Participant storage pp = t.participants[trainer];
        RoundHeader storage h = t.rounds[round].header;
        return pp.role == Role.Trainer && Bits.has(revealed ? h.revealed : h.committed, pp.index);
    }

    /// @inheritdoc IMarketplace
    function trainers(uint256 modelId) external view returns (address[] memory) {
        return _accounts(_task(modelId).trainerSeats);
    }

    /// @inheritdoc IMarketplace
    function validators(uint256 modelId) external view returns (address[] memory) {
        return _accounts(_task(modelId).validatorSeats);
    }

    /// @inheritdoc IMarketplace
    /// @dev `stakeRemaining`, `earned` and `slashed` are the task's record: they keep their values
    /// after settlement (when the stake and earnings have been credited).
    function participant(uint256 modelId, address account) external view returns (ParticipantView memory v) {
        Task storage t = _task(modelId);
        Participant storage pp = t.participants[account];
        v.role = pp.role;
        v.licensed = pp.licensed;
        v.slashed = pp.slashed;
        if (pp.role == Role.None) return v;
        v.stakeRemaining = _stakeOf(t.params, pp.role) - pp.slashed;
        if (pp.role == Role.Trainer) {
            v.earned = _earned(t.trainerSeats[pp.index], pp);
        } else if (pp.role == Role.Validator) {
            v.earned = _earned(t.validatorSeats[pp.index], pp);
        } else {
            v.earned = t.aggregatorEarned;
        }
    }

    /// @inheritdoc IMarketplace
    function trainerCarry(uint256 modelId) external view returns (uint256) {
        return _task(modelId).trainerCarry;
    }

    /// @inheritdoc IMarketplace
    function taskBalance(uint256 modelId) external view returns (uint256) {
        Task storage t = _task(modelId);
        return uint256(t.escrow) + t.stakesHeld + t.accrued + t.licenseHeld;
    }

    /// @inheritdoc IMarketplace
    function credit(address account) external view returns (uint256) {
        return _credit[account];
    }

    /// @inheritdoc IMarketplace
    function totalCredit() external view returns (uint256) {
        return _totalCredit;
    }

    // =====================================================================================
    // internal: checks
    // =====================================================================================

    function _task(uint256 modelId) private view returns (Task storage t) {
        t = _tasks[modelId];
        if (t.status == Status.None) revert UnknownModel(modelId);
    }

    function _requireStatus(uint256 modelId, Task storage t, Status expected) private view {
        if (t.status != expected) revert WrongStatus(modelId, expected, t.status);
    }

    function _requireRound(uint256 modelId, Task storage t, uint32 round) private view {
        _requireStatus(modelId, t, Status.Training);
        if (round != t.currentRound) revert WrongRound(modelId, t.currentRound, round);
    }

    function _requirePhase(uint256 modelId, uint32 round, Task storage t, RoundHeader memory h, Phase expected)
        private
        view
    {
        _sync(t, round, h);
        if (h.stage != uint8(expected)) revert WrongPhase(modelId, round, expected, _phaseOf(t, h));
    }

    /// @dev Per-update data is kept for the current and the previous round (UpdateBuffer).
    function _requireRetained(uint256 modelId, Task storage t, uint32 round) private view {
        if (!_retained(t, round)) revert RoundDataPruned(modelId, round, t.currentRound);
    }

    function _retained(Task storage t, uint32 round) private view returns (bool) {
        return round == 0 || uint256(round) + 1 >= t.currentRound;
    }

    /// @dev The caller's record, which must be a trainer's (its seat: `.index`).
    function _trainer(uint256 modelId, Task storage t) private view returns (Participant storage me) {
        me = t.participants[msg.sender];
        if (me.role != Role.Trainer) revert NotTrainer(modelId, msg.sender);
    }

    function _committeePosition(uint256 modelId, Task storage t, uint32 round, uint32 committee, address account)
        private
        view
        returns (uint256 position)
    {
        bool member;
        (member, position) = _positionOf(t, committee, account);
        if (!member) revert NotCommitteeMember(modelId, round, account);
    }

    /// @dev Whether `account` sits on the committee `committee` (a round's bitmap of validator
    /// seats, or an elected task's trainer seats; 0 before the round opens) and at which position
    /// (its rank among the members' seats).
    function _positionOf(Task storage t, uint32 committee, address account) private view returns (bool, uint256) {
        Participant storage pp = t.participants[account];
        if (pp.role != _memberRole(t)) return (false, 0);
        return Committee.positionOf(committee, pp.index);
    }

    /// @dev Who sits on committees: validators, or an elected task's trainers.
    function _memberRole(Task storage t) private view returns (Role) {
        return t.elected ? Role.Trainer : Role.Validator;
    }

    function _accounts(Seat[] storage seats) private view returns (address[] memory list) {
        uint256 n = seats.length;
        list = new address[](n);
        for (uint256 i = 0; i < n; ++i) {
            list[i] = seats[i].account;
        }
    }

    // =====================================================================================
    // internal: phases
    // =====================================================================================

    /// @dev Brings `h` up to date with block.timestamp: a stage accepts actions while
    /// block.timestamp <= deadline; once the deadline has passed the next stage runs from that
    /// deadline for its full window; stages with nothing to do are skipped to Due. At most seven
    /// iterations (Commit .. VoteReveal).
    function _sync(Task storage t, uint32 round, RoundHeader memory h) private view {
        while (h.stage >= uint8(Phase.Commit) && h.stage < uint8(Phase.Due) && block.timestamp > h.deadline) {
            uint8 next = _nextStage(t, round, h);
            h.stage = next;
            h.deadline = next == uint8(Phase.Due) ? 0 : _deadlineAfter(h.deadline, _window(t.params, next));
        }
    }

    /// @dev Ends the current stage early (everyone it waited for acted): the next stage runs for its
    /// full window from now.
    function _endPhase(Task storage t, uint32 round, RoundHeader memory h) private view {
        uint8 next = _nextStage(t, round, h);
        h.stage = next;
        h.deadline = next == uint8(Phase.Due) ? 0 : _deadlineAfter(block.timestamp, _window(t.params, next));
    }

    function _nextStage(Task storage t, uint32 round, RoundHeader memory h) private view returns (uint8) {
        uint8 stage = h.stage;
        if (stage == uint8(Phase.Commit)) return h.committed != 0 ? uint8(Phase.Reveal) : uint8(Phase.Due);
        if (stage == uint8(Phase.Reveal)) return h.revealed != 0 ? uint8(Phase.ScoreCommit) : uint8(Phase.Due);
        if (stage == uint8(Phase.ScoreCommit)) return h.sealedBits != 0 ? uint8(Phase.ScoreReveal) : uint8(Phase.Due);
        if (stage == uint8(Phase.ScoreReveal)) {
            (, bool anyPositive) = _utilities(t, round, h, Bits.popcount(h.revealed), true);
            return anyPositive ? uint8(Phase.Publish) : uint8(Phase.Due);
        }
        if (stage == uint8(Phase.Publish)) return h.proposed ? uint8(Phase.VoteCommit) : uint8(Phase.Due);
        if (stage == uint8(Phase.VoteCommit)) return h.sealedBits != 0 ? uint8(Phase.VoteReveal) : uint8(Phase.Due);
        return uint8(Phase.Due);
    }

    /// @dev Both reveal phases take the trainers' revealWindow.
    function _window(ModelParams storage p, uint8 stage) private view returns (uint64) {
        if (stage == uint8(Phase.Commit)) return p.commitWindow;
        if (stage == uint8(Phase.ScoreCommit)) return p.scoreWindow;
        if (stage == uint8(Phase.Publish)) return p.publishWindow;
        if (stage == uint8(Phase.VoteCommit)) return p.confirmWindow;
        return p.revealWindow;
    }

    function _phaseOf(Task storage t, RoundHeader memory h) private view returns (Phase) {
        if (t.status != Status.Training || h.stage == STAGE_CLOSED) return Phase.None;
        return Phase(h.stage);
    }

    // =====================================================================================
    // internal: utilities
    // =====================================================================================

    // =====================================================================================
    // internal: money
    // =====================================================================================

    function _join(uint256 modelId, Task storage t, Participant storage me, Role role, uint256 stake) private {
        if (msg.value != stake) revert WrongAmount(stake, msg.value);
        me.role = role;
        _requireHoldable(t, stake);
        t.stakesHeld = _toU128(t.stakesHeld + stake);
        emit ParticipantJoined(modelId, msg.sender, role, stake);
    }

    /// @dev Every deposit keeps what the task holds (escrow + stakes + licence fees, and after the
    /// start what they became) below 2^128 wei, so no sum or product of its amounts can overflow.
    function _requireHoldable(Task storage t, uint256 amount) private view {
        uint256 held = uint256(t.escrow) + t.stakesHeld + t.licenseHeld + amount;
        if (held > type(uint128).max) revert AmountTooLarge(held);
    }

    function _commitment(
        uint256 modelId,
        uint32 round,
        bytes32 updateDigest,
        uint64 numSamples,
        bytes32 salt,
        address trainer
    ) private pure returns (bytes32) {
        return keccak256(abi.encode(modelId, round, updateDigest, numSamples, salt, trainer));
    }

}
