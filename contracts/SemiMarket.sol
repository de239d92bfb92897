// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Median} from "./lib/Median.sol";
import {ReentrancyGuard} from "./lib/ReentrancyGuard.sol";

/// @title SemiMarket — the seed paper's semi-centralised asynchronous market (task option `mode: semi`)
/// @notice No global model and no lockstep phases: every client keeps its own model and runs its
/// own round counter. A client's round is one transaction, `recordRound`, that records the seed
/// paper's three block types in order: one upload (its round, its model's digest), a download per
/// model it fetched from the chain (which upload) and a score per model it scored (which upload,
/// the loss on one batch of its own data). Every record carries the block header fields (id,
/// timestamp, type, client) and chained hashes: parentHash is the task's previous record's hash,
/// hash = keccak256(abi.encode(parentHash, id, timestamp, type, client, content...)). Records are
/// events; storage keeps only the chain head, small counters and one 32-byte score book per
/// (epoch, author). Payment epochs of fixed length pay each epoch's budget to the authors whose
/// uploads OTHER clients scored well in that epoch (the lower median over scorers of a bounded
/// score, docs/semi.md); a client with no upload in an epoch that still owes rounds is
/// late-slashed, and slashed wei goes to the epoch's paid authors, never to the buyer.
/// @dev Checks run in one order everywhere: the task exists, its status, the caller, then the
/// payload. Checks-effects-interactions throughout; ether leaves only through `withdraw`. Each
/// task's money is held in its own record (escrow, stakesHeld, feesHeld, slashCarry) and moves to
/// credits only by that task's settlement or cancellation.
contract SemiMarket is ReentrancyGuard {
    // ================================================================== caps and constants

    /// @notice Most clients per task: a score book keeps one byte per scorer in 31 bytes of one slot.
    uint256 public constant MAX_CLIENTS = 31;
    /// @notice Most payment epochs per task (one settleEpoch transaction each).
    uint256 public constant MAX_EPOCHS = 1000;
    /// @notice Most rounds a task may ask of each client.
    uint256 public constant MAX_ROUNDS = 100_000;
    /// @notice Shortest and longest epoch and start window, in seconds.
    uint256 public constant MIN_EPOCH_LENGTH = 1;
    uint256 public constant MAX_EPOCH_LENGTH = 30 days;
    /// @notice Basis points of a whole.
    uint256 public constant BPS = 10_000;
    /// @notice Bounded scores lie in 1..MAX_SCORE; 0 in a score book means "no score".
    uint256 public constant MAX_SCORE = 255;
    /// @dev Byte 31 of a score book slot: set when the author uploaded in that epoch.
    uint256 private constant UPLOAD_FLAG = uint256(1) << 248;

    /// @notice Record types (the seed paper's block types), as hashed and emitted.
    uint8 public constant UPLOAD = 0;
    uint8 public constant DOWNLOAD = 1;
    uint8 public constant SCORE = 2;

    // ================================================================== types

    /// @notice Life of a semi task.
    enum TaskStatus {
        None, // no such task
        Open, // accepting top-ups and clients
        Running, // clients record rounds; epochs settle one by one
        Settled, // every epoch settled; everything of the task credited
        Cancelled // cancelled before start; everything credited back
    }

    /// @notice What a buyer sets when posting a semi task.
    struct SemiParams {
        bytes32 specDigest; // CIDv0 digest of the task spec JSON (mode: semi)
        bytes32 initialModelDigest; // CIDv0 digest of θ0, every client's starting model
        uint128 clientStake; // wei, exact
        uint128 licenseFee; // wei, exact, may be 0; held until start, then the buyer's
        uint16 minClients; // 2..maxClients, needed to start
        uint16 maxClients; // minClients..MAX_CLIENTS
        uint16 epochs; // payment epochs, 1..MAX_EPOCHS
        uint32 epochLength; // seconds, MIN_EPOCH_LENGTH..MAX_EPOCH_LENGTH
        uint32 rounds; // rounds each client owes, 1..MAX_ROUNDS; a client done with them is never late
        uint32 lossCap; // micro-units: a loss >= lossCap scores 1, a loss of 0 scores MAX_SCORE
        uint8 passScore; // 1..MAX_SCORE: an author is paid when its median score is >= this
        uint8 minScorers; // 1..MAX_CLIENTS - 1: fewer scorers than this and an author is not paid
        uint16 lateSlashBps; // fraction of the stake lost per epoch without an upload, 0..BPS
        uint32 startWindow; // seconds after posting by which the task must start (else anyone may cancel)
    }

    /// @notice What the contract keeps of a task as it runs.
    struct TaskState {
        address owner;
        TaskStatus status;
        uint16 clientCount;
        uint16 epochsSettled;
        uint64 startTime; // 0 until started
        uint64 startDeadline;
        uint64 recordCount; // ids of the next record
        uint64 uploads;
        uint64 downloads;
        uint64 scores;
        uint256 reward; // the escrow fixed at start
        uint256 escrow; // reward not yet paid out
        uint256 stakesHeld;
        uint256 feesHeld;
        uint256 slashCarry; // slashed wei no epoch could pay yet
        bytes32 head; // hash of the latest record (0 before the first)
    }

    /// @notice One client of a task.
    struct Client {
        address account;
        uint32 rounds; // its round counter: the round of its latest upload
        uint32 lastUploadEpoch;
        uint128 stake; // what remains of its stake
    }

    /// @notice An upload, named by its author's client index and the author's round.
    struct UploadRef {
        uint16 author;
        uint32 round;
    }

    /// @notice A score record's payload: which upload, and its mean loss on one batch (micro-units).
    struct ScoreEntry {
        uint16 author;
        uint32 round;
        uint32 loss;
    }

    /// @dev Where a round's records stand while it is being recorded.
    struct Cursor {
        bytes32 head;
        uint64 id;
        uint64 time;
        uint32 epoch;
        uint16 me;
    }

    struct Task {
        SemiParams params;
        TaskState state;
    }

    // ================================================================== events

    /// @notice A buyer posted task `taskId` with `escrow` wei.
    event SemiTaskPosted(uint256 indexed taskId, address indexed owner, bytes32 specDigest, uint256 escrow);
    /// @notice The owner added `amount` wei to the escrow.
    event SemiTaskFunded(uint256 indexed taskId, uint256 amount);
    /// @notice `client` joined as client number `index` (0-based), staking `stake` and paying `fee`.
    event ClientJoined(uint256 indexed taskId, address indexed client, uint16 index, uint256 stake, uint256 fee);
    /// @notice The task started: epoch e spans [startTime + e * epochLength, startTime + (e + 1) * epochLength).
    event SemiTaskStarted(uint256 indexed taskId, uint64 startTime, uint256 reward);
    /// @notice The task was cancelled before it started; everything was credited back.
    event SemiTaskCancelled(uint256 indexed taskId);
    /// @notice Upload record: `client` uploaded its round-`round` model.
    event UploadRecord(
        uint256 indexed taskId, uint64 id, uint64 timestamp, address indexed client, uint32 round, bytes32 modelDigest, bytes32 parentHash, bytes32 hash
    );
    /// @notice Download record: `client` fetched the round-`round` upload of client `author`.
    event DownloadRecord(
        uint256 indexed taskId, uint64 id, uint64 timestamp, address indexed client, uint16 author, uint32 round, bytes32 parentHash, bytes32 hash
    );
    /// @notice Score record: `client` scored that upload by `loss`; `score` is the bounded score, and
    /// `counted` whether it entered the epoch's score book (the author's latest upload, made this epoch).
    event ScoreRecord(
        uint256 indexed taskId,
        uint64 id,
        uint64 timestamp,
        address indexed client,
        uint16 author,
        uint32 round,
        uint32 loss,
        uint8 score,
        bool counted,
        bytes32 parentHash,
        bytes32 hash
    );
    /// @notice Epoch `epoch` paid `amount` to `client` (its median score over `scorers` other clients).
    event AuthorPaid(uint256 indexed taskId, uint16 indexed epoch, address indexed client, uint256 amount, uint8 medianScore, uint8 scorers);
    /// @notice `client` uploaded nothing in `epoch` while it still owed rounds and lost `amount`.
    event ClientSlashed(uint256 indexed taskId, uint16 indexed epoch, address indexed client, uint256 amount);
    /// @notice Slashed wei shared in `epoch`: `each` to `recipients` clients; `carried` waits for a later epoch.
    event SlashShared(uint256 indexed taskId, uint16 indexed epoch, uint256 each, uint16 recipients, uint256 carried);
    /// @notice Epoch `epoch` settled: `paid` of its `budget` went to `paidAuthors` authors.
    event EpochSettled(uint256 indexed taskId, uint16 indexed epoch, uint256 budget, uint256 paid, uint16 paidAuthors, uint256 slashed);
    /// @notice The last epoch settled: stakes credited back, `refund` (unearned reward) to the buyer.
    event SemiTaskSettled(uint256 indexed taskId, uint256 refund);
    /// @notice `account` withdrew `amount` wei.
    event Withdrawal(address indexed account, uint256 amount);

    // ================================================================== errors

    /// @notice No task has id `taskId`.
    error UnknownTask(uint256 taskId);
    /// @notice A parameter of postTask is out of its range (`what` names it).
    error BadParam(string what);
    /// @notice postTask needs a non-zero escrow; fundTask a non-zero amount.
    error ZeroValue();
    /// @notice The function needs the task in status `expected`; it is `actual`.
    error NotInStatus(uint256 taskId, TaskStatus expected, TaskStatus actual);
    /// @notice Only the task's owner may call this.
    error NotTaskOwner(uint256 taskId, address caller);
    /// @notice The owner cannot be a client of its own task.
    error OwnerCannotJoin(uint256 taskId);
    /// @notice `account` is already a client of the task.
    error AlreadyClient(uint256 taskId, address account);
    /// @notice The task has its maxClients clients.
    error TaskFull(uint256 taskId, uint256 maxClients);
    /// @notice joinTask takes exactly stake + licence fee.
    error WrongAmount(uint256 expected, uint256 sent);
    /// @notice startTask needs minClients clients; the task has `clients`.
    error NotEnoughClients(uint256 taskId, uint256 clients, uint256 needed);
    /// @notice The start deadline passed: the task can only be cancelled.
    error StartTooLate(uint256 taskId, uint64 deadline);
    /// @notice Only the owner may cancel before the start deadline `deadline`.
    error CancelTooEarly(uint256 taskId, uint64 deadline);
    /// @notice `caller` is not a client of the task.
    error NotClient(uint256 taskId, address caller);
    /// @notice The client's next round is `expected`; the call named `given`.
    error NotNextRound(uint256 taskId, uint32 expected, uint32 given);
    /// @notice The client has already recorded all `rounds` rounds the task asks for.
    error RoundsDone(uint256 taskId, uint32 rounds);
    /// @notice The last epoch ended at `endTime`: no more records.
    error TaskOver(uint256 taskId, uint64 endTime);
    /// @notice An upload needs a non-zero model digest.
    error ZeroModelDigest();
    /// @notice A round may carry at most clients - 1 downloads and scores each.
    error TooManyRecords(uint256 given, uint256 max);
    /// @notice A download or score names the caller's own upload (a client never scores itself).
    error SelfReference(uint16 author);
    /// @notice No upload of client `author` in round `round` exists.
    error UnknownUpload(uint16 author, uint32 round);
    /// @notice Epoch `epoch` ends at `endTime`; it cannot be settled before.
    error EpochNotOver(uint256 taskId, uint16 epoch, uint64 endTime);
    /// @notice The caller has no credit to withdraw.
    error NothingToWithdraw(address account);
    /// @notice Sending `amount` wei to `account` failed.
    error TransferFailed(address account, uint256 amount);

    // ================================================================== storage

    uint256 private _taskCount;
    mapping(uint256 taskId => Task) private _tasks;
    mapping(uint256 taskId => mapping(uint256 index => Client)) private _clients;
    mapping(uint256 taskId => mapping(address account => uint256 indexPlusOne)) private _clientIndex;
    /// @dev taskId => epoch => author index => score book: byte s (s < 31) = the bounded score
    /// client s last gave the author's latest upload in that epoch (0: none); byte 31: uploaded.
    mapping(uint256 taskId => mapping(uint256 epoch => mapping(uint256 author => uint256 book))) private _books;
    mapping(address account => uint256 wei_) private _credit;
    uint256 private _totalCredit;

    // ================================================================== set-up

    /// @notice Post a semi task; msg.value is the reward escrow. Anyone may call.
    /// @dev Reverts ZeroValue, BadParam. Emits SemiTaskPosted.
    /// @return taskId the new task's id (sequential from 1)
    function postTask(SemiParams calldata p) external payable returns (uint256 taskId) {
        if (msg.value == 0) revert ZeroValue();
        _checkParams(p);
        taskId = ++_taskCount;
        Task storage t = _tasks[taskId];
        t.params = p;
        t.state.owner = msg.sender;
        t.state.status = TaskStatus.Open;
        t.state.escrow = msg.value;
        t.state.startDeadline = uint64(block.timestamp) + p.startWindow;
        emit SemiTaskPosted(taskId, msg.sender, p.specDigest, msg.value);
    }

    /// @notice The owner adds msg.value to the escrow while the task is Open.
    /// @dev Reverts UnknownTask, NotInStatus, NotTaskOwner, ZeroValue. Emits SemiTaskFunded.
    function fundTask(uint256 taskId) external payable {
        TaskState storage s = _open(taskId);
        if (msg.sender != s.owner) revert NotTaskOwner(taskId, msg.sender);
        if (msg.value == 0) revert ZeroValue();
        s.escrow += msg.value;
        emit SemiTaskFunded(taskId, msg.value);
    }

    /// @notice Join an Open task as its next client, paying exactly clientStake + licenseFee.
    /// @dev Reverts UnknownTask, NotInStatus, OwnerCannotJoin, AlreadyClient, TaskFull, WrongAmount. Emits ClientJoined.
    function joinTask(uint256 taskId) external payable {
        TaskState storage s = _open(taskId);
        SemiParams storage p = _tasks[taskId].params;
        if (msg.sender == s.owner) revert OwnerCannotJoin(taskId);
        if (_clientIndex[taskId][msg.sender] != 0) revert AlreadyClient(taskId, msg.sender);
        if (s.clientCount >= p.maxClients) revert TaskFull(taskId, p.maxClients);
        uint256 expected = uint256(p.clientStake) + p.licenseFee;
        if (msg.value != expected) revert WrongAmount(expected, msg.value);
        uint16 index = s.clientCount;
        s.clientCount = index + 1;
        s.stakesHeld += p.clientStake;
        s.feesHeld += p.licenseFee;
        _clientIndex[taskId][msg.sender] = uint256(index) + 1;
        _clients[taskId][index] = Client({account: msg.sender, rounds: 0, lastUploadEpoch: 0, stake: p.clientStake});
        emit ClientJoined(taskId, msg.sender, index, p.clientStake, p.licenseFee);
    }

    /// @notice The owner starts the task: the escrow becomes the reward, licence fees the owner's
    /// credit, and epoch 0 begins now.
    /// @dev Reverts UnknownTask, NotInStatus, NotTaskOwner, StartTooLate, NotEnoughClients. Emits SemiTaskStarted.
    function startTask(uint256 taskId) external {
        TaskState storage s = _open(taskId);
        if (msg.sender != s.owner) revert NotTaskOwner(taskId, msg.sender);
        if (block.timestamp > s.startDeadline) revert StartTooLate(taskId, s.startDeadline);
        uint16 needed = _tasks[taskId].params.minClients;
        if (s.clientCount < needed) revert NotEnoughClients(taskId, s.clientCount, needed);
        s.status = TaskStatus.Running;
        s.startTime = uint64(block.timestamp);
        s.reward = s.escrow;
        uint256 fees = s.feesHeld;
        s.feesHeld = 0;
        _addCredit(s.owner, fees);
        emit SemiTaskStarted(taskId, s.startTime, s.reward);
    }

    /// @notice Cancel an Open task: the owner at any time, anyone after the start deadline. The
    /// escrow is credited to the owner, each client's stake and licence fee back to the client.
    /// @dev Reverts UnknownTask, NotInStatus, CancelTooEarly. Emits SemiTaskCancelled.
    function cancelTask(uint256 taskId) external {
        TaskState storage s = _open(taskId);
        if (msg.sender != s.owner && block.timestamp <= s.startDeadline) revert CancelTooEarly(taskId, s.startDeadline);
        SemiParams storage p = _tasks[taskId].params;
        s.status = TaskStatus.Cancelled;
        uint256 refund = uint256(p.clientStake) + p.licenseFee;
        uint256 count = s.clientCount; // <= MAX_CLIENTS
        for (uint256 i = 0; i < count; ++i) {
            _clients[taskId][i].stake = 0;
            _addCredit(_clients[taskId][i].account, refund);
        }
        uint256 escrow = s.escrow;
        s.escrow = 0;
        s.stakesHeld = 0;
        s.feesHeld = 0;
        _addCredit(s.owner, escrow);
        emit SemiTaskCancelled(taskId);
    }

    // ================================================================== a client's round

    /// @notice Record the caller's round `round`: its upload, then the downloads and the scores
    /// of that round, as one upload record, one download record per entry of `downloads` and one
    /// score record per entry of `scores`, chained in that order. Only a client of a Running task,
    /// before the last epoch ends; `round` must be the client's previous round + 1.
    /// @dev Reverts UnknownTask, NotInStatus, TaskOver, NotClient, NotNextRound, RoundsDone,
    /// ZeroModelDigest, TooManyRecords, SelfReference, UnknownUpload. Emits UploadRecord,
    /// DownloadRecord, ScoreRecord.
    function recordRound(uint256 taskId, uint32 round, bytes32 modelDigest, UploadRef[] calldata downloads, ScoreEntry[] calldata scores)
        external
    {
        TaskState storage s = _running(taskId);
        Cursor memory cursor = _upload(taskId, s, round, modelDigest, downloads.length, scores.length);
        for (uint256 i = 0; i < downloads.length; ++i) {
            UploadRef calldata d = downloads[i];
            _checkUpload(taskId, d.author, d.round);
            bytes32 hash = keccak256(abi.encode(cursor.head, cursor.id, cursor.time, DOWNLOAD, msg.sender, d.author, d.round));
            emit DownloadRecord(taskId, cursor.id, cursor.time, msg.sender, d.author, d.round, cursor.head, hash);
            (cursor.head, cursor.id) = (hash, cursor.id + 1);
        }
        uint32 lossCap = _tasks[taskId].params.lossCap;
        for (uint256 i = 0; i < scores.length; ++i) {
            _score(taskId, cursor, scores[i], lossCap);
        }
        s.head = cursor.head;
        s.recordCount = cursor.id;
        s.uploads += 1;
        s.downloads += uint64(downloads.length);
        s.scores += uint64(scores.length);
    }

    // ================================================================== settlement

    /// @notice Settle the oldest unsettled epoch once it is over (anyone). Its budget (reward /
    /// epochs; the last takes the remainder) is split equally among the authors who uploaded in
    /// it and whose lower median score over at least minScorers other clients is >= passScore;
    /// what nobody earned stays for the buyer. A client without an upload in it that still owed
    /// rounds loses lateSlashBps of its stake, shared equally among the paid authors (else the
    /// epoch's uploaders, else carried on). Settling the last epoch credits every remaining stake,
    /// the slashed wei still carried (equally to the clients) and the unearned reward (to the owner).
    /// @dev Reverts UnknownTask, NotInStatus, EpochNotOver. Emits ClientSlashed, AuthorPaid,
    /// SlashShared, EpochSettled and, for the last epoch, SemiTaskSettled.
    function settleEpoch(uint256 taskId) external {
        TaskState storage s = _running(taskId);
        SemiParams storage p = _tasks[taskId].params;
        uint16 epoch = s.epochsSettled;
        uint64 endTime = s.startTime + uint64(epoch + 1) * p.epochLength;
        if (block.timestamp < endTime) revert EpochNotOver(taskId, epoch, endTime);
        s.epochsSettled = epoch + 1;

        (uint256 paidMask, uint256 uploadMask, uint256 slashed, uint256[] memory medians) = _judgeEpoch(taskId, epoch, p);
        (uint256 budget, uint256 paid) = _payEpoch(taskId, s, p, epoch, paidMask, medians);
        s.stakesHeld -= slashed;
        _shareSlashes(taskId, s, epoch, slashed, paidMask != 0 ? paidMask : uploadMask);
        emit EpochSettled(taskId, epoch, budget, paid, uint16(_popcount(paidMask)), slashed);
        if (epoch + 1 == p.epochs) _settleTask(taskId, s);
    }

    /// @notice Pull the caller's whole credited balance.
    /// @dev Reverts NothingToWithdraw, TransferFailed, ReentrantCall. Emits Withdrawal.
    function withdraw() external nonReentrant {
        uint256 amount = _credit[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        _credit[msg.sender] = 0;
        _totalCredit -= amount;
        emit Withdrawal(msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    // ================================================================== views

    /// @notice The bounded score of a loss: 1 + floor(254 * (lossCap - min(loss, lossCap)) / lossCap),
    /// in 1..MAX_SCORE (lower loss, higher score).
    function boundedScore(uint32 loss, uint32 lossCap) public pure returns (uint8) {
        uint256 capped = loss < lossCap ? loss : lossCap;
        return uint8(1 + ((MAX_SCORE - 1) * (uint256(lossCap) - capped)) / lossCap);
    }

    /// @notice How many tasks were posted.
    function taskCount() external view returns (uint256) {
        return _taskCount;
    }

    /// @notice Task `taskId`'s parameters and state.
    function getTask(uint256 taskId) external view returns (SemiParams memory params, TaskState memory state) {
        Task storage t = _task(taskId);
        return (t.params, t.state);
    }

    /// @notice The task's clients, in join order (index = position).
    function clientsOf(uint256 taskId) external view returns (Client[] memory list) {
        TaskState storage s = _task(taskId).state;
        list = new Client[](s.clientCount);
        for (uint256 i = 0; i < list.length; ++i) {
            list[i] = _clients[taskId][i];
        }
    }

    /// @notice The score book of `author` (client index) in `epoch`: each scorer's bounded score
    /// (0: none) and whether the author uploaded in that epoch.
    function scoreBook(uint256 taskId, uint256 epoch, uint16 author) external view returns (uint8[] memory scores, bool uploaded) {
        uint256 book = _books[taskId][epoch][author];
        scores = new uint8[](_task(taskId).state.clientCount);
        for (uint256 i = 0; i < scores.length; ++i) {
            scores[i] = uint8(book >> (8 * i));
        }
        uploaded = book & UPLOAD_FLAG != 0;
    }

    /// @notice Wei the task holds: unpaid escrow, stakes, licence fees before start, slashed wei carried.
    function taskBalance(uint256 taskId) external view returns (uint256) {
        TaskState storage s = _task(taskId).state;
        return s.escrow + s.stakesHeld + s.feesHeld + s.slashCarry;
    }

    /// @notice Wei credited to `account`, ready for withdraw.
    function credit(address account) external view returns (uint256) {
        return _credit[account];
    }

    /// @notice Sum of every account's credit.
    function totalCredit() external view returns (uint256) {
        return _totalCredit;
    }

    // ================================================================== internals

    function _task(uint256 taskId) private view returns (Task storage t) {
        t = _tasks[taskId];
        if (t.state.status == TaskStatus.None) revert UnknownTask(taskId);
    }

    function _open(uint256 taskId) private view returns (TaskState storage s) {
        s = _task(taskId).state;
        if (s.status != TaskStatus.Open) revert NotInStatus(taskId, TaskStatus.Open, s.status);
    }

    function _running(uint256 taskId) private view returns (TaskState storage s) {
        s = _task(taskId).state;
        if (s.status != TaskStatus.Running) revert NotInStatus(taskId, TaskStatus.Running, s.status);
    }

    function _checkParams(SemiParams calldata p) private pure {
        if (p.specDigest == bytes32(0)) revert BadParam("specDigest");
        if (p.initialModelDigest == bytes32(0)) revert BadParam("initialModelDigest");
        if (p.minClients < 2 || p.maxClients < p.minClients || p.maxClients > MAX_CLIENTS) revert BadParam("clients");
        if (p.epochs == 0 || p.epochs > MAX_EPOCHS) revert BadParam("epochs");
        if (p.epochLength < MIN_EPOCH_LENGTH || p.epochLength > MAX_EPOCH_LENGTH) revert BadParam("epochLength");
        if (p.rounds == 0 || p.rounds > MAX_ROUNDS) revert BadParam("rounds");
        if (p.lossCap == 0) revert BadParam("lossCap");
        if (p.passScore == 0) revert BadParam("passScore");
        if (p.minScorers == 0 || p.minScorers >= MAX_CLIENTS) revert BadParam("minScorers");
        if (p.lateSlashBps > BPS) revert BadParam("lateSlashBps");
        if (p.startWindow < MIN_EPOCH_LENGTH || p.startWindow > MAX_EPOCH_LENGTH) revert BadParam("startWindow");
    }

    /// @dev The upload (author, round) exists and is not the caller's own; returns its author.
    function _checkUpload(uint256 taskId, uint16 author, uint32 round) private view returns (Client storage a) {
        if (uint256(author) + 1 == _clientIndex[taskId][msg.sender]) revert SelfReference(author);
        if (author >= _tasks[taskId].state.clientCount) revert UnknownUpload(author, round);
        a = _clients[taskId][author];
        if (round == 0 || round > a.rounds) revert UnknownUpload(author, round);
    }

    /// @dev Checks a round's caller and payload, records its upload and returns the record cursor after it.
    function _upload(uint256 taskId, TaskState storage s, uint32 round, bytes32 modelDigest, uint256 downloads, uint256 scores)
        private
        returns (Cursor memory cursor)
    {
        SemiParams storage p = _tasks[taskId].params;
        {
            uint64 endTime = s.startTime + uint64(p.epochs) * p.epochLength;
            if (block.timestamp >= endTime) revert TaskOver(taskId, endTime);
            uint256 indexPlusOne = _clientIndex[taskId][msg.sender];
            if (indexPlusOne == 0) revert NotClient(taskId, msg.sender);
            cursor.me = uint16(indexPlusOne - 1); // < MAX_CLIENTS
        }
        Client storage c = _clients[taskId][cursor.me];
        if (c.rounds >= p.rounds) revert RoundsDone(taskId, p.rounds);
        if (round != c.rounds + 1) revert NotNextRound(taskId, c.rounds + 1, round);
        if (modelDigest == bytes32(0)) revert ZeroModelDigest();
        {
            uint256 most = uint256(s.clientCount) - 1;
            if (downloads > most) revert TooManyRecords(downloads, most);
            if (scores > most) revert TooManyRecords(scores, most);
        }
        cursor.epoch = uint32((block.timestamp - s.startTime) / p.epochLength);
        cursor.time = uint64(block.timestamp);
        c.rounds = round;
        c.lastUploadEpoch = cursor.epoch;
        _books[taskId][cursor.epoch][cursor.me] |= UPLOAD_FLAG;
        _emitUpload(taskId, s, cursor, round, modelDigest);
    }

    /// @dev The upload record, chained to the task's head; moves the cursor past it.
    function _emitUpload(uint256 taskId, TaskState storage s, Cursor memory cursor, uint32 round, bytes32 modelDigest) private {
        (bytes32 parent, uint64 id) = (s.head, s.recordCount);
        bytes32 hash = keccak256(abi.encode(parent, id, cursor.time, UPLOAD, msg.sender, round, modelDigest));
        emit UploadRecord(taskId, id, cursor.time, msg.sender, round, modelDigest, parent, hash);
        (cursor.head, cursor.id) = (hash, id + 1);
    }

    /// @dev One score record; a score of the author's latest upload, made this epoch, enters the
    /// epoch's book (an author is paid for what it uploaded in the epoch, not for older work).
    function _score(uint256 taskId, Cursor memory cursor, ScoreEntry calldata e, uint32 lossCap) private {
        Client storage author = _checkUpload(taskId, e.author, e.round);
        uint8 score = boundedScore(e.loss, lossCap);
        // _checkUpload ensured e.round <= author.rounds, and no upload is later than now: >= is ==
        bool counted = e.round >= author.rounds && author.lastUploadEpoch >= cursor.epoch;
        if (counted) {
            uint256 shift = 8 * uint256(cursor.me); // me < MAX_CLIENTS = 31: bytes 0..30
            uint256 book = _books[taskId][cursor.epoch][e.author];
            _books[taskId][cursor.epoch][e.author] = (book & ~(uint256(0xff) << shift)) | (uint256(score) << shift);
        }
        _emitScore(taskId, cursor, e, score, counted);
    }

    /// @dev The score record, chained to the cursor; moves the cursor past it.
    function _emitScore(uint256 taskId, Cursor memory cursor, ScoreEntry calldata e, uint8 score, bool counted) private {
        bytes32 hash = keccak256(abi.encode(cursor.head, cursor.id, cursor.time, SCORE, msg.sender, e.author, e.round, e.loss));
        emit ScoreRecord(taskId, cursor.id, cursor.time, msg.sender, e.author, e.round, e.loss, score, counted, cursor.head, hash);
        (cursor.head, cursor.id) = (hash, cursor.id + 1);
    }

    /// @dev Who is paid in `epoch` (bit i: client i), who uploaded, and the late-slashes (applied
    /// to the clients' stakes here; the caller moves the total out of stakesHeld).
    function _judgeEpoch(uint256 taskId, uint16 epoch, SemiParams storage p)
        private
        returns (uint256 paidMask, uint256 uploadMask, uint256 slashed, uint256[] memory medians)
    {
        uint256 count = _tasks[taskId].state.clientCount; // <= MAX_CLIENTS
        int256[] memory scores = new int256[](count);
        medians = new uint256[](count);
        for (uint256 i = 0; i < count; ++i) {
            uint256 book = _books[taskId][epoch][i];
            if (book & UPLOAD_FLAG != 0) {
                uploadMask |= uint256(1) << i;
                uint256 k = 0;
                for (uint256 j = 0; j < count; ++j) {
                    uint256 score = (book >> (8 * j)) & 0xff;
                    if (score != 0) scores[k++] = int256(score);
                }
                uint8 median = uint8(uint256(Median.medianOf(scores, k))); // k <= 30 scores in 1..255
                medians[i] = uint256(median) | (k << 8);
                if (k >= p.minScorers && median >= p.passScore) paidMask |= uint256(1) << i;
            } else {
                Client storage c = _clients[taskId][i];
                // Done with its rounds before this epoch: never late again.
                bool done = c.rounds >= p.rounds && c.lastUploadEpoch < epoch;
                if (!done && c.stake > 0) {
                    uint256 cut = (uint256(p.clientStake) * p.lateSlashBps) / BPS;
                    if (cut > c.stake) cut = c.stake;
                    if (cut > 0) {
                        c.stake -= uint128(cut); // cut <= stake
                        slashed += cut;
                        emit ClientSlashed(taskId, epoch, c.account, cut);
                    }
                }
            }
        }
    }

    /// @dev Split the epoch's budget equally among the authors of `paidMask`; returns (budget, paid).
    function _payEpoch(uint256 taskId, TaskState storage s, SemiParams storage p, uint16 epoch, uint256 paidMask, uint256[] memory medians)
        private
        returns (uint256 budget, uint256 paid)
    {
        budget = s.reward / p.epochs;
        if (epoch + 1 == p.epochs) budget += s.reward % p.epochs;
        uint256 count = _popcount(paidMask);
        if (count == 0) return (budget, 0);
        uint256 each = budget / count;
        paid = budget - budget % count; // each * count
        s.escrow -= paid;
        _payAuthors(taskId, epoch, paidMask, each, medians);
    }

    /// @dev Share this epoch's slashed wei and the carried wei equally among `recipients`, carrying the rest.
    function _shareSlashes(uint256 taskId, TaskState storage s, uint16 epoch, uint256 slashed, uint256 recipients) private {
        uint256 pool = s.slashCarry + slashed;
        uint256 count = _popcount(recipients);
        uint256 share = 0;
        if (count > 0 && pool > 0) {
            share = pool / count;
            _creditMask(taskId, recipients, share);
            pool %= count; // what share * count leaves
        }
        s.slashCarry = pool;
        if (slashed > 0 || share > 0) emit SlashShared(taskId, epoch, share, uint16(share > 0 ? count : 0), pool);
    }

    function _settleTask(uint256 taskId, TaskState storage s) private {
        s.status = TaskStatus.Settled;
        uint256 count = s.clientCount; // <= MAX_CLIENTS
        uint256 carry = s.slashCarry;
        uint256 each = carry / count;
        s.slashCarry = 0;
        for (uint256 i = 0; i < count; ++i) {
            Client storage c = _clients[taskId][i];
            uint256 amount = c.stake + each;
            if (i == 0) amount += carry % count; // the division's remainder: a client's, never the buyer's
            c.stake = 0;
            _addCredit(c.account, amount);
        }
        s.stakesHeld = 0;
        uint256 refund = s.escrow;
        s.escrow = 0;
        _addCredit(s.owner, refund);
        emit SemiTaskSettled(taskId, refund);
    }

    /// @dev Credit `each` to every author of `paidMask`; medians[i] = median | scorers << 8.
    function _payAuthors(uint256 taskId, uint16 epoch, uint256 paidMask, uint256 each, uint256[] memory medians) private {
        for (uint256 i = 0; paidMask >> i != 0; ++i) {
            if ((paidMask >> i) & 1 == 1) {
                address author = _clients[taskId][i].account;
                _addCredit(author, each);
                emit AuthorPaid(taskId, epoch, author, each, uint8(medians[i]), uint8(medians[i] >> 8));
            }
        }
    }

    function _creditMask(uint256 taskId, uint256 mask, uint256 amount) private {
        for (uint256 i = 0; mask >> i != 0; ++i) {
            if ((mask >> i) & 1 == 1) _addCredit(_clients[taskId][i].account, amount);
        }
    }

    function _addCredit(address account, uint256 amount) private {
        if (amount > 0) {
            _credit[account] += amount;
            _totalCredit += amount;
        }
    }

    function _popcount(uint256 mask) private pure returns (uint256 n) {
        for (; mask != 0; mask &= mask - 1) ++n;
    }
}
