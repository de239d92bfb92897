// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IMarketplaceTypes — the market's types, events and custom errors
/// @notice Everything IMarketplace declares but its functions, apart so that contracts sharing the
/// market's storage layout (MarketStorage, and RoundSettlement, which the Marketplace reaches by
/// delegatecall) can use them without implementing the whole interface.
interface IMarketplaceTypes {
    // ------------------------------------------------------------------ types

    /// @notice Life of a task.
    enum Status {
        None, // no such task
        Open, // accepting escrow top-ups, licences and stakes
        Training, // rounds running
        Finalized, // no more rounds; payments not yet generated
        Settled, // payments credited; nothing of the task left in the contract but credits
        Cancelled // cancelled before training; everything credited back
    }

    /// @notice Phase of the current round, as derived from stored state and block.timestamp.
    enum Phase {
        None, // task not training
        Commit, // trainers commit
        Reveal, // committed trainers reveal
        ScoreCommit, // committee members commit to their scores of every revealed update (scoreWindow)
        ScoreReveal, // members that committed reveal their scores (revealWindow)
        Publish, // the aggregator proposes the global model
        VoteCommit, // committee members commit to a vote on the proposal (confirmWindow)
        VoteReveal, // members that committed reveal their votes (revealWindow); the last reveal settles
        Due // every window has passed: anyone may closeRound
    }

    /// @notice What a participant joined a task as (one role per address per task).
    enum Role {
        None,
        Trainer,
        Validator,
        Aggregator
    }

    /// @notice Why a participant was slashed (`Slashed` event).
    enum SlashReason {
        Late, // did not act within its window
        Poison, // trainer whose median utility is below the poison threshold
        Rejected, // aggregator whose proposal the committee rejected
        Disagreed // committee member whose revealed scores are too far from the round's utilities
    }

    /// @notice What a buyer sets when posting a task (`newModel`).
    struct ModelParams {
        bytes32 specDigest; // CIDv0 digest of the task spec JSON (model, dataset, hyper-parameters, rules)
        bytes32 initialModelDigest; // CIDv0 digest of the round-0 global model (safetensors)
        address aggregator; // the only address that may join as aggregator
        uint32 rounds; // 1..MAX_ROUNDS
        uint16 minTrainers; // >= 1, needed to start
        uint16 maxTrainers; // minTrainers..MAX_TRAINERS
        uint16 committeeSize; // 1..MAX_COMMITTEE; also the number of validators needed to start
        uint16 maxValidators; // committeeSize..MAX_VALIDATORS
        uint32 commitWindow; // seconds, each window in MIN_WINDOW..MAX_WINDOW
        uint32 revealWindow;
        uint32 scoreWindow;
        uint32 publishWindow;
        uint32 confirmWindow;
        uint256 licenseFee; // wei, exact; may be 0
        uint256 trainerStake; // wei, exact
        uint256 validatorStake;
        uint256 aggregatorStake;
        uint16 lateSlashBps; // fraction of the original stake lost per late round, 0..10000
        uint16 badSlashBps; // fraction lost for poison / a rejected proposal, 0..10000
        uint16 trainerShareBps; // the three shares sum to 10000 (default 7000/2000/1000)
        uint16 validatorShareBps;
        uint16 aggregatorShareBps;
        int64 poisonThreshold; // median utility strictly below this is bad-slashed (micro-units)
        uint32 startWindow; // seconds after newModel by which training must start (MIN_WINDOW..MAX_WINDOW);
        // past it anyone may cancelModel and startTraining reverts StartDeadlinePassed
        uint64 maxSamples; // the largest sample count a reveal may claim (>= 1): bounds an update's FedAvg weight
        uint16 agreementToleranceBps; // 1..MAX_TOLERANCE_BPS (20000): a member's distance from the utilities
        // must stay below this fraction of their size to be paid (docs/protocol.md, "Validator pay"); agents use 10000
    }

    /// @notice What the market keeps of a task as it runs: the mutable half of its `ModelData`.
    struct ModelState {
        address owner;
        Status status;
        uint32 currentRound; // 0 before training; then 1..rounds
        uint32 roundsClosed;
        uint256 reward; // escrow at startTraining (fixed from then on; 0 before)
        uint256 escrow; // unspent escrow (before start: everything deposited)
        uint256 stakesHeld; // stakes not yet slashed nor returned
        uint256 accrued; // earned by participants and the buyer, not yet credited
        uint256 licenseIncome; // licence fees credited to the owner (all of them, at startTraining)
        bytes32 globalModelDigest; // latest accepted global model (initial model before round 1 closes)
        uint16 trainerCount;
        uint16 validatorCount;
        bool aggregatorJoined;
        uint256 licenseHeld; // licence fees the task holds (until startTraining; refundable before)
        uint64 startDeadline; // newModel's timestamp + startWindow
        bool endRequested; // the owner's early finalizeContract waits for the open round to settle
    }

    /// @notice A task's record, the seed's `ModelData`: the parameters its buyer set (`newModel`,
    /// fixed from then on) and its state. `getModel` returns it.
    struct ModelData {
        ModelParams params;
        ModelState state;
    }

    /// @notice One round as seen now (phase and deadlines derived from block.timestamp).
    struct RoundView {
        uint32 round;
        Phase phase;
        uint64 phaseDeadline; // end of the current phase (0 when Due / not training)
        address[] committee;
        uint16 commits;
        uint16 reveals;
        uint16 scoreCommits; // members whose score commitment is in (ScoreCommit/ScoreReveal; later: scoresSubmitted)
        uint16 scoresSubmitted; // members that revealed their scores
        uint16 voteCommits; // members whose vote commitment is in (0 before VoteCommit)
        bool proposed;
        bytes32 proposedDigest; // 0 unless proposed, and for rounds before the previous one
        int64 proposedMetric; // likewise
        uint16 confirmations; // ok + reject votes revealed
        uint16 rejections;
        bool closed;
    }

    /// @notice What an agent's step reads, in one call (`agentView`): the task's state, its current
    /// round as seen now and what `account` has done in that round.
    struct AgentView {
        Status status;
        uint32 currentRound; // 0 before training
        uint32 roundsClosed;
        uint16 trainerCount;
        uint16 validatorCount;
        bytes32 globalModelDigest;
        Phase phase; // the current round's, derived from block.timestamp (None when not training)
        uint64 phaseDeadline; // 0 when Due / not training
        bool closed; // the current round has been settled
        bool proposed;
        bytes32 proposedDigest;
        int64 proposedMetric;
        Role role; // the account's role in the task
        bool licensed;
        bool onCommittee; // the account sits on the current round's committee
        bool committed; // a trainer's commit of the current round is in
        bool revealed; // ... and its reveal
        bool scoreCommitted; // a committee member's score commitment of the current round is in
        // (reported during ScoreCommit/ScoreReveal; afterwards equal to `scored`)
        bool scored; // ... and its scores are revealed
        bool voteCommitted; // its vote commitment on the proposal is in
        bool voted; // ... and its vote is revealed
    }

    /// @notice A participant's standing in one task.
    struct ParticipantView {
        Role role;
        uint256 stakeRemaining; // original stake minus slashes (returned at settlement)
        uint256 earned; // rewards accrued so far (credited at settlement)
        uint256 slashed; // total slashed so far
        bool licensed;
    }

    // ----------------------------------------------------------------- events

    /// @notice Escrow deposited by the buyer (newModel and payForModel); the seed's event.
    event ModelCreationPayment(uint256 indexed modelId, address indexed owner, uint256 amount);
    event ModelCreated(uint256 indexed modelId, address indexed owner, address indexed aggregator, bytes32 specDigest, uint32 rounds);
    event LicensePurchased(uint256 indexed modelId, address indexed licensee, uint256 fee);
    event ParticipantJoined(uint256 indexed modelId, address indexed participant, Role role, uint256 stake);
    event TrainingStarted(uint256 indexed modelId, uint256 reward);
    event ModelCancelled(uint256 indexed modelId);
    event RoundStarted(uint256 indexed modelId, uint32 indexed round, address[] committee, uint64 commitDeadline);
    event UpdateCommitted(uint256 indexed modelId, uint32 indexed round, address indexed trainer, bytes32 commitment);
    event UpdateRevealed(uint256 indexed modelId, uint32 indexed round, address indexed trainer, bytes32 updateDigest, uint64 numSamples, uint16 index);
    /// @notice commitScores: a member's commitment to its scores (hides them until ScoreReveal).
    event ScoresCommitted(uint256 indexed modelId, uint32 indexed round, address indexed validator, bytes32 commitment);
    /// @notice revealScores: a member's scores, one per revealed update in reveal order, as sent (stored clamped).
    event ScoresRevealed(uint256 indexed modelId, uint32 indexed round, address indexed validator, int64[] scores);
    /// @notice commitVote: a member's commitment to its vote on the proposal (hides it until VoteReveal).
    event VoteCommitted(uint256 indexed modelId, uint32 indexed round, address indexed validator, bytes32 commitment);
    event GlobalModelProposed(uint256 indexed modelId, uint32 indexed round, bytes32 modelDigest, int64 metric);
    /// @notice revealVote: a member's revealed vote on the proposal.
    event GlobalModelConfirmed(uint256 indexed modelId, uint32 indexed round, address indexed validator, bool ok);
    /// @notice Settlement refused an update whose digest an earlier reveal of the round already
    /// revealed: utility 0 (neither paid nor poison-slashed), its trainer late-slashed.
    event UpdateRefused(uint256 indexed modelId, uint32 indexed round, address indexed trainer, bytes32 updateDigest);
    /// @notice A round's settlement; `accepted` is false when the proposal was rejected or missing.
    event RoundClosed(uint256 indexed modelId, uint32 indexed round, bytes32 globalModelDigest, bool accepted, uint256 budget, uint256 returnedToBuyer);
    event RewardAccrued(uint256 indexed modelId, uint32 indexed round, address indexed participant, Role role, uint256 amount);
    event Slashed(uint256 indexed modelId, uint32 indexed round, address indexed participant, SlashReason reason, uint256 amount);
    event ModelFinalized(uint256 indexed modelId, uint32 roundsClosed, uint256 unspentEscrow);
    /// @notice Settlement of a trainer: rewards earned over all rounds plus its remaining stake.
    event ContributionPayment(uint256 indexed modelId, address indexed trainer, uint256 earned, uint256 stakeReturned);
    event ValidationPayment(uint256 indexed modelId, address indexed validator, uint256 earned, uint256 stakeReturned);
    event OrchestrationPayment(uint256 indexed modelId, address indexed aggregator, uint256 earned, uint256 stakeReturned);
    /// @notice What returns to the buyer: unspent escrow, unearned shares, rounding dust, unredistributed slashes.
    event ModelBuyerReturnPayment(uint256 indexed modelId, address indexed owner, uint256 amount);
    event Withdrawal(address indexed account, uint256 amount);
    /// @notice startTraining credited the licence fees the task held to its owner.
    event LicenseIncomeCredited(uint256 indexed modelId, address indexed owner, uint256 amount);
    /// @notice leaveModel credited back a stake (role None: none, a licensee's reclaim or a
    /// cancelled task) and a licence fee (0 when the caller held no licence).
    event ParticipantLeft(uint256 indexed modelId, address indexed participant, Role role, uint256 stakeReturned, uint256 feeReturned);
    /// @notice The owner's early finalizeContract: the task ends when the open round `round` settles.
    event EndRequested(uint256 indexed modelId, uint32 round);
    /// @notice Wei burned (credited to the zero address, which can never withdraw): at a round's
    /// close, the stakes the committee's verdict slashed (Poison, Disagreed, Rejected), so that no
    /// majority can steer them to itself; at generateTrainingPayments, the trainer carry no round
    /// paid out. Slashed stakes never reach the buyer.
    event CarryBurned(uint256 indexed modelId, uint256 amount);

    // ----------------------------------------------------------------- errors

    /// @notice No task has this id (ids run 1..modelCount()).
    error UnknownModel(uint256 modelId);

    // newModel's parameter checks, in the order the contract runs them (docs/protocol.md).
    /// @notice newModel: `specDigest` is zero (no task spec).
    error ZeroSpecDigest();
    /// @notice newModel: `initialModelDigest` is zero (no round-0 model).
    error ZeroInitialModelDigest();
    /// @notice newModel: `aggregator` is the zero address.
    error ZeroAggregator();
    /// @notice newModel: `aggregator` is the caller; the owner cannot take part in its own task.
    error AggregatorIsOwner(address aggregator);
    /// @notice newModel: `rounds` is not in 1..max (MAX_ROUNDS).
    error RoundsOutOfRange(uint256 given, uint256 max);
    /// @notice newModel: the trainer bounds break 1 <= minTrainers <= maxTrainers <= max (MAX_TRAINERS).
    error TrainerBoundsOutOfRange(uint256 minTrainers, uint256 maxTrainers, uint256 max);
    /// @notice newModel: `committeeSize` is not in 1..max (MAX_COMMITTEE).
    error CommitteeSizeOutOfRange(uint256 given, uint256 max);
    /// @notice newModel: `maxValidators` is not in min..max (committeeSize..MAX_VALIDATORS), nor 0
    /// (an elected committee).
    error MaxValidatorsOutOfRange(uint256 given, uint256 min, uint256 max);
    /// @notice newModel: an elected committee (maxValidators 0) needs minTrainers >= 2 * committeeSize (a
    /// whole next committee outside every sitting one) and maxTrainers <= max (32: its map has 32 bits).
    error ElectedTrainersOutOfRange(uint256 minTrainers, uint256 maxTrainers, uint256 committeeSize, uint256 max);
    /// @notice newModel: the window of `phase` (Commit: commitWindow, Reveal: revealWindow,
    /// ScoreCommit: scoreWindow, Publish: publishWindow, VoteCommit: confirmWindow; the first one out
    /// of range; None: the start window, checked after the shares) is not in min..max seconds (MIN_WINDOW..MAX_WINDOW).
    error WindowOutOfRange(Phase phase, uint256 given, uint256 min, uint256 max);
    /// @notice newModel: the stake of `role` (the first one too large, trainer first) is above max
    /// wei (2^128 - 1, what the task's accounting holds).
    error StakeTooLarge(Role role, uint256 given, uint256 max);
    /// @notice newModel: `lateSlashBps` or `badSlashBps` is above max (10000 bps, the whole stake).
    error SlashBpsTooLarge(uint256 lateSlashBps, uint256 badSlashBps, uint256 max);
    /// @notice newModel: the trainer, validator and aggregator shares do not sum to total (10000 bps).
    error SharesDoNotSum(uint256 trainerShareBps, uint256 validatorShareBps, uint256 aggregatorShareBps, uint256 total);

    /// @notice startTraining: the task's start deadline (`deadline`) has passed; anyone may cancel it.
    error StartDeadlinePassed(uint256 modelId, uint64 deadline);
    /// @notice newModel: `lateSlashBps` is above max (MAX_LATE_SLASH_BPS): a trap where one late
    /// transaction costs most of a stake.
    error LateSlashTooLarge(uint256 given, uint256 max);
    /// @notice newModel: `poisonThreshold` is above 0: an update nobody scored (utility 0) would be poison.
    error PoisonThresholdPositive(int256 given);
    /// @notice newModel: `maxSamples` is 0 (no reveal could claim a sample count).
    error ZeroMaxSamples();
    /// @notice newModel: `agreementToleranceBps` is not in min..max (1..20000), checked last.
    error AgreementToleranceOutOfRange(uint256 given, uint256 min, uint256 max);
    /// @notice revealUpdate: numSamples `given` is above the task's maxSamples `max`.
    error TooManySamples(uint256 given, uint256 max);
    /// @notice leaveModel: the caller has neither a role nor an unrefunded licence in the task.
    error NothingToLeave(uint256 modelId, address caller);

    /// @notice newModel or payForModel sent no value: the escrow (or top-up) must be > 0 wei.
    error ZeroEscrow();
    /// @notice A licence fee or a stake was not paid exactly: `expected` wei, `sent` wei.
    error WrongAmount(uint256 expected, uint256 sent);
    /// @notice Only the task's owner (its buyer) may call this (payForModel, cancelModel before the
    /// start deadline, finalizeContract before the last round closed).
    error NotOwner(uint256 modelId, address caller);
    /// @notice startTraining: the caller is neither the task's owner nor its aggregator.
    error NotOwnerOrAggregator(uint256 modelId, address caller);
    /// @notice joinAsAggregator / publishGlobalModel: the caller is not the aggregator named in the
    /// task's params.
    error NotAggregator(uint256 modelId, address caller);
    /// @notice commitUpdate / revealUpdate: the caller is not a trainer of the task.
    error NotTrainer(uint256 modelId, address caller);
    /// @notice commitScores / revealScores / commitVote / revealVote: the caller is not on the round's committee.
    error NotCommitteeMember(uint256 modelId, uint32 round, address caller);
    /// @notice The task is `actual`; the function needs it `expected` (e.g. joining needs Open).
    error WrongStatus(uint256 modelId, Status expected, Status actual);
    /// @notice The round is in phase `actual`; the function acts only in `expected`.
    error WrongPhase(uint256 modelId, uint32 round, Phase expected, Phase actual);
    /// @notice A round action named round `given` while the task is in round `expected`.
    error WrongRound(uint256 modelId, uint32 expected, uint32 given);
    /// @notice buyLicense: the caller already holds a licence for the task.
    error AlreadyLicensed(uint256 modelId, address caller);
    /// @notice joinAsTrainer: the caller has not bought the task's licence.
    error NoLicense(uint256 modelId, address caller);
    /// @notice buyLicense / join*: the task's owner cannot take part in its own task.
    error OwnerCannotParticipate(uint256 modelId);
    /// @notice join*: the caller already joined the task (as `role`); one role per address per task.
    error AlreadyJoined(uint256 modelId, address caller, Role role);
    /// @notice joinAsTrainer / joinAsValidator: the task already has `cap` participants of `role`
    /// (maxTrainers or maxValidators).
    error RoleFull(uint256 modelId, Role role, uint256 cap);
    /// @notice startTraining: fewer than minTrainers trainers or committeeSize validators, or no aggregator, joined.
    error NotEnoughParticipants(uint256 modelId, uint256 trainers, uint256 validators, bool aggregatorJoined);
    /// @notice commitUpdate: the trainer already committed in this round.
    error AlreadyCommitted(uint256 modelId, uint32 round, address trainer);
    /// @notice commitUpdate: in an elected-committee task, the trainer sits on this round's committee
    /// (members score the round's updates; they do not train it).
    error CommitteeMemberCannotTrain(uint256 modelId, uint32 round, address trainer);
    /// @notice revealUpdate: the trainer did not commit in this round, so has nothing to reveal.
    error NotCommitted(uint256 modelId, uint32 round, address trainer);
    /// @notice revealUpdate: the trainer already revealed in this round.
    error AlreadyRevealed(uint256 modelId, uint32 round, address trainer);
    /// @notice revealUpdate: the revealed digest, sample count and salt do not hash to the commitment.
    error CommitmentMismatch(uint256 modelId, uint32 round, address trainer);
    /// @notice revealUpdate: numSamples is 0.
    error ZeroSamples();
    /// @notice commitScores: the committee member's score commitment of this round is already in.
    error ScoresAlreadyCommitted(uint256 modelId, uint32 round, address validator);
    /// @notice revealScores: the committee member committed no scores this round, so has nothing to reveal.
    error ScoresNotCommitted(uint256 modelId, uint32 round, address validator);
    /// @notice revealScores: the scores and salt do not hash to the member's commitment.
    error ScoreCommitmentMismatch(uint256 modelId, uint32 round, address validator);
    /// @notice revealScores: the committee member already revealed its scores this round.
    error AlreadyScored(uint256 modelId, uint32 round, address validator);
    /// @notice revealScores: `given` scores sent; the round has `expected` revealed updates, one score each.
    error WrongScoreCount(uint256 expected, uint256 given);
    /// @notice publishGlobalModel: the round already has a proposed global model.
    error AlreadyPublished(uint256 modelId, uint32 round);
    /// @notice commitVote: the committee member's vote commitment of this round is already in.
    error VoteAlreadyCommitted(uint256 modelId, uint32 round, address validator);
    /// @notice revealVote: the committee member committed no vote this round, so has nothing to reveal.
    error VoteNotCommitted(uint256 modelId, uint32 round, address validator);
    /// @notice revealVote: the vote and salt do not hash to the member's commitment.
    error VoteCommitmentMismatch(uint256 modelId, uint32 round, address validator);
    /// @notice revealVote: the committee member already revealed its vote on this round's proposal.
    error AlreadyConfirmed(uint256 modelId, uint32 round, address validator);
    /// @notice A deadline would pass 2^32 - 1 seconds (the year 2106), beyond what a round stores.
    error DeadlineOutOfRange(uint256 deadline);
    /// @notice closeRound: the round's `phase` runs until `deadline` (phase None: no round is open).
    error RoundNotDue(uint256 modelId, uint32 round, Phase phase, uint64 deadline);
    /// @notice Per-update data (revealedUpdates, utilities, scoresOf) is kept for the current and
    /// the previous round only; older rounds are in the UpdateRevealed / ScoresRevealed events.
    error RoundDataPruned(uint256 modelId, uint32 round, uint32 currentRound);
    /// @notice withdraw: the caller has no credited balance.
    error NothingToWithdraw(address account);
    /// @notice withdraw: sending `amount` wei to `account` failed (it rejected the ether); the credit is kept.
    error TransferFailed(address account, uint256 amount);

}

/// @title IMarketplace — the fedmarket federated-learning market
/// @notice A model buyer escrows a reward and posts a training task (its record: `ModelData`). Licensed trainers
/// stake and submit model updates by commit-reveal; a staked validator committee, drawn anew each round, scores
/// every update; a staked aggregator proposes each round's global model, which the committee
/// confirms. Each round's budget is paid by measured contribution (default 70 % trainers, 20 %
/// validators, 10 % aggregator); whatever is not earned returns to the buyer; late or poisonous
/// participants are slashed. Money leaves only through the pull `withdraw`.
///
/// Units: amounts in wei; times in seconds (block.timestamp); utilities, scores and metrics are
/// signed integers in micro-units (value * 1e6). Content ids are CIDv0 (`Qm...`): on chain only
/// their 32-byte sha2-256 digest is kept (`bytes32 ...Digest`). Rounds are numbered from 1.
interface IMarketplace is IMarketplaceTypes {
    // --------------------------------------------------------- task set-up

    /// @notice Post a training task; the caller becomes its owner (the model buyer).
    /// @dev Anyone; msg.value (> 0) is the reward escrow. Emits ModelCreated and ModelCreationPayment.
    /// Reverts ZeroEscrow, then the first parameter check that fails: ZeroSpecDigest,
    /// ZeroInitialModelDigest, ZeroAggregator, AggregatorIsOwner, RoundsOutOfRange,
    /// TrainerBoundsOutOfRange, CommitteeSizeOutOfRange, MaxValidatorsOutOfRange, WindowOutOfRange,
    /// StakeTooLarge, SlashBpsTooLarge, SharesDoNotSum, WindowOutOfRange(None) for the start window,
    /// ZeroMaxSamples, LateSlashTooLarge, PoisonThresholdPositive. The shortest window is the
    /// deployment's (PARAMS_CHECK().MIN_WINDOW(): 1 s on dev chains, minutes elsewhere).
    function newModel(ModelParams calldata params) external payable returns (uint256 modelId);

    /// @notice Top the escrow up. Owner only, while Open. Emits ModelCreationPayment.
    function payForModel(uint256 modelId) external payable;

    /// @notice Buy the task's licence at its exact fee (held by the task, credited to the owner at
    /// startTraining, refundable before); needed to join as trainer. Anyone but the owner, while
    /// Open. Emits LicensePurchased.
    function buyLicense(uint256 modelId) external payable;

    /// @notice Stake exactly `trainerStake` and join as trainer. Licensees only, while Open, up to
    /// maxTrainers; one role per address. Emits ParticipantJoined.
    function joinAsTrainer(uint256 modelId) external payable;

    /// @notice Stake exactly `validatorStake` and join as validator. Anyone but the owner, while
    /// Open, up to maxValidators; one role per address. Emits ParticipantJoined.
    function joinAsValidator(uint256 modelId) external payable;

    /// @notice Stake exactly `aggregatorStake` and join as the task's aggregator. Only the
    /// aggregator named in the params, once, while Open. Emits ParticipantJoined.
    function joinAsAggregator(uint256 modelId) external payable;

    /// @notice Fix the reward, credit the held licence fees to the owner and open round 1. Owner or
    /// aggregator, while Open and not past the start deadline, once minTrainers trainers,
    /// committeeSize validators and the aggregator have joined. Emits TrainingStarted,
    /// LicenseIncomeCredited, RoundStarted.
    function startTraining(uint256 modelId) external;

    /// @notice Cancel before training: escrow and every stake are credited back at once; each
    /// licensee reclaims its fee with leaveModel. The owner while Open; anyone once the start
    /// deadline has passed. Emits ModelCancelled, ModelBuyerReturnPayment and one payment event per participant.
    function cancelModel(uint256 modelId) external;

    /// @notice Leave a task: while Open, a participant gets its whole stake and a licensee its fee
    /// credited back (its seat goes to the last joiner of its role); once Cancelled, a licensee
    /// reclaims its fee. Emits ParticipantLeft.
    function leaveModel(uint256 modelId) external;

    // ----------------------------------------------------------------- rounds

    /// @notice Commit to an update: commitment = commitmentOf(modelId, round, updateDigest, numSamples, salt, trainer).
    /// Trainers only, once per round, in the Commit phase. Emits UpdateCommitted.
    function commitUpdate(uint256 modelId, uint32 round, bytes32 commitment) external;

    /// @notice Reveal a committed update. Trainers that committed, once, in the Reveal phase; the
    /// values must match the commitment. Emits UpdateRevealed (index = position in reveal order).
    function revealUpdate(uint256 modelId, uint32 round, bytes32 updateDigest, uint64 numSamples, bytes32 salt) external;

    /// @notice Commit to the scores of every revealed update: commitment =
    /// keccak256(abi.encode(modelId, round, msg.sender, scores, salt)) with scores an int64[] (one
    /// per update in reveal order, micro-units) and salt a secret bytes32. Nobody sees a member's
    /// scores before every member has committed (or ScoreCommit ended), so none can copy another's.
    /// Committee members of the round only, once, in the ScoreCommit phase; the last member to
    /// commit ends ScoreCommit. Emits ScoresCommitted.
    /// @dev Reverts UnknownModel, WrongStatus, WrongRound, NotCommitteeMember,
    /// ScoresAlreadyCommitted, WrongPhase.
    function commitScores(uint256 modelId, uint32 round, bytes32 commitment) external;

    /// @notice Reveal the committed scores (each clamped to -MAX_SCORE..MAX_SCORE when stored; the
    /// event carries them as sent). Members that committed, once, in the ScoreReveal phase; the last
    /// of them to reveal ends ScoreReveal (to Publish, or to Due when no update has a positive
    /// median). A member that did not commit, or did not reveal, is late. Emits ScoresRevealed.
    /// @dev Reverts UnknownModel, WrongStatus, WrongRound, NotCommitteeMember, AlreadyScored,
    /// WrongPhase, ScoresNotCommitted, WrongScoreCount, ScoreCommitmentMismatch.
    function revealScores(uint256 modelId, uint32 round, int64[] calldata scores, bytes32 salt) external;

    /// @notice Propose the round's global model (the aggregate of the updates with median utility > 0)
    /// and its metric. The aggregator only, once, in the Publish phase. Emits GlobalModelProposed.
    function publishGlobalModel(uint256 modelId, uint32 round, bytes32 modelDigest, int64 metric) external;

    /// @notice Commit to a vote on the proposal, after recomputing it: commitment =
    /// keccak256(abi.encode(modelId, round, msg.sender, ok, salt)) (ok: a bool, true approves).
    /// Committee members only, once, in the VoteCommit phase; the last member to commit ends
    /// VoteCommit. Emits VoteCommitted.
    /// @dev Reverts UnknownModel, WrongStatus, WrongRound, NotCommitteeMember, VoteAlreadyCommitted,
    /// WrongPhase.
    function commitVote(uint256 modelId, uint32 round, bytes32 commitment) external;

    /// @notice Reveal the committed vote. Members that committed, once, in the VoteReveal phase; the
    /// last of them to reveal settles the round (RoundClosed, ...) in the same transaction. Only a
    /// positive majority of the whole committee accepts: silence never approves.
    /// Emits GlobalModelConfirmed.
    /// @dev Reverts UnknownModel, WrongStatus, WrongRound, NotCommitteeMember, AlreadyConfirmed,
    /// WrongPhase, VoteNotCommitted, VoteCommitmentMismatch.
    function revealVote(uint256 modelId, uint32 round, bool ok, bytes32 salt) external;

    /// @notice Settle the current round once it is Due (every window it still needed has passed);
    /// whoever has not acted is late. Anyone. Emits RoundClosed, RewardAccrued, Slashed, RoundStarted.
    function closeRound(uint256 modelId) external;

    // -------------------------------------------------------------- the end

    /// @notice End the task: anyone after the last round closed; the owner at any time during
    /// training. Early, a round without a commit is abandoned (its budget stays in escrow) and the
    /// task ends now; once the open round has a commit it settles normally and the task ends when
    /// it closes (EndRequested now, ModelFinalized then). The budget of rounds never opened
    /// returns to the buyer. Emits ModelFinalized or EndRequested.
    function finalizeContract(uint256 modelId) external;

    /// @notice Credit every participant's earnings and remaining stake and the buyer's return.
    /// Anyone, once, after finalizeContract. Emits ContributionPayment, ValidationPayment,
    /// OrchestrationPayment and ModelBuyerReturnPayment, one per payee.
    function generateTrainingPayments(uint256 modelId) external;

    /// @notice Pull the caller's whole credited balance (all tasks). Emits Withdrawal.
    function withdraw() external;

    // ------------------------------------------------------------------ views

    /// @notice Number of tasks posted so far; task ids run 1..modelCount().
    function modelCount() external view returns (uint256);
    /// @notice A task's record (`ModelData`): its parameters and its state. Reverts UnknownModel.
    function getModel(uint256 modelId) external view returns (ModelData memory);
    /// @notice In one call, what an agent's step needs (AgentView): the task's status, rounds and
    /// global model, the current round's phase, deadline and proposal, and `account`'s role, seat
    /// on the committee and duties done in that round. Reverts UnknownModel.
    function agentView(uint256 modelId, address account) external view returns (AgentView memory);
    /// @notice Round `round` of a task as seen now (phase and deadline derived from
    /// block.timestamp). Any round number; reverts UnknownModel only. The proposal (proposedDigest,
    /// proposedMetric) is kept for the current and the previous round: older rounds report it 0
    /// (`proposed` stays; GlobalModelProposed holds it).
    function getRound(uint256 modelId, uint32 round) external view returns (RoundView memory);
    /// @notice Revealed updates of a round in reveal order. The current or the previous round only
    /// (older: RoundDataPruned).
    function revealedUpdates(uint256 modelId, uint32 round)
        external
        view
        returns (address[] memory trainerAddresses, bytes32[] memory updateDigests, uint64[] memory numSamples);
    /// @notice Utility per revealed update, in reveal order: the lower median of the committee's
    /// clamped revealed scores; 0 for every update when fewer than a majority of the committee
    /// revealed scores, and 0 for an update whose digest an earlier reveal of the round revealed
    /// (refused at settlement: UpdateRefused).
    /// The current or the previous round only (older: RoundDataPruned).
    function utilities(uint256 modelId, uint32 round) external view returns (int64[] memory);
    /// @notice A committee member's revealed scores (clamped), in reveal order. The current or the previous round only
    /// (older: RoundDataPruned).
    function scoresOf(uint256 modelId, uint32 round, address validator) external view returns (bool submitted, int64[] memory scores);
    /// @notice Whether a committee member revealed a vote on the round's proposal, and how (false,
    /// false for anyone not on the committee). Reverts UnknownModel.
    function hasConfirmed(uint256 modelId, uint32 round, address validator) external view returns (bool voted, bool ok);
    /// @notice The commitment commitUpdate expects:
    /// keccak256(abi.encode(modelId, round, updateDigest, numSamples, salt, trainer)).
    function commitmentOf(
        uint256 modelId,
        uint32 round,
        bytes32 updateDigest,
        uint64 numSamples,
        bytes32 salt,
        address trainer
    ) external pure returns (bytes32);
    /// @notice Whether `trainer` is a trainer of the task and committed in `round`. Reverts UnknownModel.
    function hasCommitted(uint256 modelId, uint32 round, address trainer) external view returns (bool);
    /// @notice Whether `trainer` is a trainer of the task and revealed in `round`. Reverts UnknownModel.
    function hasRevealed(uint256 modelId, uint32 round, address trainer) external view returns (bool);
    /// @notice The task's trainers, in joining order (their seats). Reverts UnknownModel.
    function trainers(uint256 modelId) external view returns (address[] memory);
    /// @notice The task's validators, in joining order (seat i: bit i of a round's committee map).
    /// Reverts UnknownModel.
    function validators(uint256 modelId) external view returns (address[] memory);
    /// @notice An account's standing in a task (role None for a non-participant). Reverts UnknownModel.
    function participant(uint256 modelId, address account) external view returns (ParticipantView memory);
    /// @notice Slashed wei and trainer pools no trainer has earned yet, carried to the next rounds'
    /// trainers (part of `accrued`; burned by generateTrainingPayments). Reverts UnknownModel.
    function trainerCarry(uint256 modelId) external view returns (uint256);
    /// @notice Wei the contract holds for this task: escrow + stakesHeld + accrued + licenseHeld.
    function taskBalance(uint256 modelId) external view returns (uint256);
    /// @notice Withdrawable balance of an account (credited by any task).
    function credit(address account) external view returns (uint256);
    /// @notice Sum of all credited, not yet withdrawn balances.
    function totalCredit() external view returns (uint256);
}
