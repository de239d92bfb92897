"""What every learning agent shares: reading the task, the global model, the log, the phase loop.

An agent is a state machine over chain state. `step()` reads the task, its current round and
its own duties in one view (`agentView`), does the one next thing its role owes in that phase (if
any) and says whether it acted. The task's parameters never change once posted: they are read
once per process. It keeps no state of its own that the chain could contradict: what it did is
read back from the chain (the view's committed / revealed / scoreCommitted / scored / voteCommitted /
voted, the proposal) or from its own receipts, so a restarted agent (kill -9 included) resumes in
the right phase and never submits twice. The salts of its commits (a trainer's update, a committee
member's scores and vote) and what they hide are the only things the chain cannot tell it; the salt
book stores them durably before the commit is sent.

Every blob it downloads is bounded while it streams in (a weights file by the exact size of the
task's model, the spec by MAX_SPEC_SIZE), checked against its CID by the store, then parsed as
safetensors against the task's architecture (never unpickled). A claimed sample count is never
trusted: it is bounded by the task's data (`claimed_samples`). A global model nobody serves is
rebuilt from the revealed accepted updates of the round that made it (`global_model`), which is
the same deterministic aggregate, and the agent says so in its log. Every action writes one JSON line to the
agent's log: round, phase, action, transaction hash, gas, and the seconds spent training,
talking to the chain and to the store. No key or password is ever logged.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from fedmarket.errors import FedmarketError, StoreUnavailable
from fedmarket.roles.adversary import Adversary, Attack
from fedmarket.roles.faults import Fault, die
from fedmarket.roles.policy import JoinPolicy

if TYPE_CHECKING:
    import numpy as np
    import torch

    from fedmarket.chain.client import AgentView, MarketClient, ModelParams, TxResult
    from fedmarket.fl.models import ModelSpec
    from fedmarket.fl.taskspec import TaskData, TaskSpec
    from fedmarket.fl.utility import PublicPast
    from fedmarket.storage.store import BlobStore

State = dict[str, "torch.Tensor"]

RACE_ERRORS = frozenset({
    "WrongPhase", "WrongRound", "WrongStatus", "RoundNotDue", "RoundDataPruned", "AlreadyCommitted", "AlreadyRevealed",
    "AlreadyScored", "AlreadyPublished", "AlreadyConfirmed", "AlreadyJoined", "AlreadyLicensed", "NothingToWithdraw",
    "ScoresAlreadyCommitted", "VoteAlreadyCommitted",
})  # fmt: skip
"""Reverts that say the chain moved on between the agent's read and its transaction: another
participant acted first, or a deadline passed. The agent re-reads the chain and carries on."""
MAX_SPEC_SIZE = 1 << 20
"""The largest task spec an agent downloads (a spec is a few hundred bytes of JSON)."""
PUBLIC_MODELS = 3
"""Earlier global models a validator gives its utility: their steps span any extrapolation of them."""
MAX_OVERTAKEN = 3
"""The same action overtaken this often in a row is no race any more: the agent stops and says so."""


class Overtaken(Exception):
    """A transaction refused because the chain moved on (a race), or one that ran out of gas because
    it became the call that closes a phase. `Agent.step` re-reads the chain and moves on."""

    def __init__(self, phase: str, round: int, action: str, why: str) -> None:
        super().__init__(why)
        self.phase, self.round, self.action, self.why = phase, round, action, why


def is_race(exc: BaseException) -> bool:
    """Whether `exc` is a refusal the chain's moving on explains (or an out-of-gas to retry)."""
    from fedmarket.chain.client import ContractRevert, OutOfGas

    return isinstance(exc, OutOfGas) or (isinstance(exc, ContractRevert) and exc.name in RACE_ERRORS)


class AgentLog:
    """One JSON line per action, to a file (appended: a restarted agent continues it) and/or a sink."""

    def __init__(self, path: Path | None = None, sink: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.sink = sink
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        if self.path is not None:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        if self.sink is not None:
            self.sink(record)


@dataclass
class Timer:
    """Seconds spent per kind of work since the last log line."""

    train_s: float = 0.0
    chain_s: float = 0.0
    storage_s: float = 0.0

    def take(self) -> dict[str, float]:
        out = {"train_s": round(self.train_s, 6), "chain_s": round(self.chain_s, 6), "storage_s": round(self.storage_s, 6)}
        self.train_s = self.chain_s = self.storage_s = 0.0
        return out


@dataclass
class AgentOptions:
    """How an agent behaves beyond its role: set by `fedmarket agent` or by the demo."""

    device: str = "cpu"
    join: bool = False  # buy the licence / stake while the task is open
    withdraw: bool = True  # withdraw the credit once the task is settled, then finish
    data: str = "auto"  # "auto": the task's simulated split, by join order; or an .npz file (x, y)
    data_dir: Path | None = None  # where fmnist / cifar10 files live
    attack: Attack | None = None
    fault: Fault | None = None
    policy: JoinPolicy = field(default_factory=JoinPolicy)  # task parameters it refuses to join
    name: str | None = None  # the log's agent name (default: role-address prefix)


class Agent:
    """The shared machinery; TrainerAgent, ValidatorAgent and AggregatorAgent add the role."""

    role: ClassVar[str] = ""

    def __init__(
        self,
        market: MarketClient,
        store: BlobStore,
        model_id: int,
        state_dir: Path,
        log: AgentLog | None = None,
        options: AgentOptions | None = None,
        task_data: TaskData | None = None,
    ) -> None:
        """`task_data`: the task's data set, already loaded (agents in one process share one copy)."""
        if market.account is None:
            raise FedmarketError(f"a {self.role} agent needs a signing account")
        self.market = market
        self.store = store
        self.model_id = model_id
        self.state_dir = Path(state_dir)
        self.log = log or AgentLog()
        self.options = options or AgentOptions()
        self.address: str = market.account.address
        self.name = self.options.name or f"{self.role}-{self.address[2:8].lower()}"
        self.timer = Timer()
        self.finished = False
        self._facts: set[tuple[int, str]] = set()  # (round, duty) the chain said, or its receipt showed, is done
        self._rosters: dict[str, list[str]] = {}  # "trainers" / "validators" in join order, once training started
        self._overtaken: dict[tuple[int, str], int] = {}  # (round, action) -> races lost in a row
        self._said: set[tuple[int, str]] = set()  # what it has said it waits for
        self._params: ModelParams | None = None
        self._spec: TaskSpec | None = None
        self._data: TaskData | None = task_data
        self._states: dict[str, tuple[State, Any]] = {}  # decoded blobs and their metadata by CID (a CID's bytes never change)
        self._max_blob: int | None = None
        self.adversary = Adversary(self.role, self.options.attack)  # honest unless told otherwise

    # ------------------------------------------------------------------ the loop

    def step(self) -> bool:
        """Do the next thing the chain says this agent owes; True if it did something (or was
        overtaken: the chain moved on while it acted, and the next step reads where it is now)."""
        if self.finished:
            return False
        try:
            return self._step()
        except Overtaken as race:
            self._record(race.phase, race.round, "overtaken", detail=f"{race.action}: {race.why}; reading the chain again")
            return True

    def done(self, r: int, duty: str, on_chain: bool) -> bool:
        """Whether `duty` of round `r` is done: the step's view says so (`on_chain`), or this
        agent's own receipt did (a view read before that transaction cannot know it yet)."""
        if (r, duty) in self._facts:
            return True
        if on_chain:
            self._facts.add((r, duty))
            return True
        return False

    @property
    def params(self) -> ModelParams:
        """The task's parameters: fixed by newModel, so read once per process."""
        if self._params is None:
            self._params = self._view(lambda: self.market.get_model(self.model_id)).params
        return self._params

    def now(self) -> AgentView:
        """The one view of a step (agentView): the task, its current round and this agent's duties."""
        return self._view(lambda: self.market.agent_view(self.model_id, self.address))

    def _step(self) -> bool:
        from fedmarket.chain.client import Phase, Status
        from fedmarket.chain.timecontrol import chain_now, time_left

        now = self.now()
        status = now.status
        if status == Status.OPEN:
            acted = self._join(now) if self.options.join else False
            if not acted:
                self._waiting("open", 0, f"waiting for the owner to run `fedmarket task start {self.model_id}` "
                              f"({now.trainer_count} trainers, {now.validator_count} validators staked)")  # fmt: skip
            return acted
        if status == Status.TRAINING:
            if now.rounds_closed >= self.params.rounds:
                self._waiting("finished", 0, f"the task is finished: waiting for `fedmarket task finalize {self.model_id}`")
                return False
            r = int(now.current_round)
            if now.closed:
                return False
            if now.phase == Phase.DUE:
                return self._close_round(r)
            acted = self.act(now)
            if not acted:
                phase = str(now.phase).lower()
                self._waiting(phase, r, lambda: f"round {r} {phase} phase: {time_left(now.phase_deadline - chain_now(self.market.w3))} left")
            return acted
        if status == Status.FINALIZED:
            self._waiting("finalized", 0, f"finalized: waiting for the payments (`fedmarket task finalize {self.model_id}` credits them)")
            return False
        if status == Status.CANCELLED and self._reclaim_licence(now):
            return True
        # Settled or cancelled: take the credit out and stop.
        self.finished = True
        if self.options.withdraw:
            return self._withdraw()
        self._record("finished", 0, "done", detail=str(status).lower())
        return False

    def act(self, now: AgentView) -> bool:
        raise NotImplementedError

    def _waiting(self, phase: str, round: int, detail: str | Callable[[], str]) -> None:
        """Say once per phase what the agent is waiting for (the log would fill with polls);
        `detail` may be a callable, so that nothing is read from the chain to say it twice."""
        key = (round, f"waiting:{phase}")
        if key not in self._said:
            self._said.add(key)
            self._record(phase, round, "waiting", detail=detail() if callable(detail) else detail)

    # ------------------------------------------------------------------ shared duties

    def _join(self, now: AgentView) -> bool:
        from fedmarket.chain.client import Role

        wanted = {"trainer": Role.TRAINER, "validator": Role.VALIDATOR, "aggregator": Role.AGGREGATOR}[self.role]
        if now.role == wanted:
            return False
        if now.role != Role.NONE:
            raise FedmarketError(f"{self.address} already takes part in task {self.model_id} as {str(now.role).lower()}")
        params = self.params
        self._check_before_joining(params)
        if self.role == "trainer":
            if not now.licensed:
                self._send("open", 0, "buy-licence", lambda: self.market.buy_license(self.model_id, params.license_fee))
            self._send("open", 0, "join", lambda: self.market.join_as_trainer(self.model_id, params.trainer_stake))
        elif self.role == "validator":
            self._send("open", 0, "join", lambda: self.market.join_as_validator(self.model_id, params.validator_stake))
        else:
            self._send("open", 0, "join", lambda: self.market.join_as_aggregator(self.model_id, params.aggregator_stake))
        return True

    def _check_before_joining(self, params: ModelParams) -> None:
        """Everything that can make the task unworkable for this agent, checked before any wei
        moves: the join policy, the spec (against its CID), the initial model (its CID, format and
        the architecture's shapes) and this agent's own data."""
        self.options.policy.check(params, self.role)
        spec = self.spec
        elected = params.max_validators == 0  # the contract's encoding of an elected committee
        if elected != (spec.committee == "elected"):
            raise FedmarketError(
                f"task {self.model_id}'s spec says committee {spec.committee!r}, but its parameters "
                f"{'elect the committee from the trainers (maxValidators 0)' if elected else 'take staked validators'}: refusing to join"
            )
        self.load_state(params.initial_model_cid, "the initial model")
        if self.options.data != "auto":
            x, _y = self.own_samples(lambda: None)
            detail = f"{len(x)} samples of its own"
        else:
            detail = "the task's simulated split"
        self._record("open", 0, "checked", detail=f"spec {spec.dataset}/{spec.model}, initial model {params.initial_model_cid}, {detail}")

    def _close_round(self, r: int) -> bool:
        """A phase's deadline passed: settle the round (anyone may; a rival closer may win the race)."""
        try:
            self._send("due", r, "close-round", lambda: self.market.close_round(self.model_id))
        except FedmarketError as exc:
            after = self.now()
            if after.current_round != r or after.closed:
                return True  # someone else closed it first
            raise exc
        return True

    def _reclaim_licence(self, now: AgentView) -> bool:
        """A cancelled task holds each licence fee until its licensee takes it back (leaveModel)."""
        from fedmarket.chain.client import ContractRevert

        if (0, "licence-reclaimed") in self._facts:
            return False
        self._facts.add((0, "licence-reclaimed"))
        if not now.licensed:
            return False
        try:
            self._send("cancelled", 0, "leave", lambda: self.market.leave_model(self.model_id), detail="the task was cancelled: licence fee back")
        except ContractRevert as exc:
            if exc.name != "NothingToLeave":
                raise
            return False
        return True

    def _withdraw(self) -> bool:
        credit = self._view(lambda: self.market.credit(self.address))
        if credit == 0:
            self._record("settled", 0, "done", detail="nothing to withdraw")
            return False
        self._send("settled", 0, "withdraw", lambda: self.market.withdraw(), detail=f"{credit} wei")
        return True

    # ------------------------------------------------------------------ the task

    @property
    def spec(self) -> TaskSpec:
        """The task spec, downloaded once and checked against the chain's specDigest."""
        if self._spec is None:
            from fedmarket.fl.taskspec import TaskSpec

            blob = self._fetch(self.params.spec_cid, "the task spec", MAX_SPEC_SIZE)
            self._spec = TaskSpec.from_bytes(blob)
        return self._spec

    @property
    def data(self) -> TaskData:
        if self._data is None:
            from fedmarket.fl.taskspec import TaskData

            self._data = TaskData.load(self.spec, self.options.data_dir)
        return self._data

    @property
    def model_spec(self) -> ModelSpec:
        return self.data.model_spec

    def own_samples(self, indices_of_auto: Callable[[], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """This agent's private data: the task's simulated split (`--data auto`) or an .npz file."""
        import numpy as np

        if self.options.data == "auto":
            idx = indices_of_auto()
            return self.data.dataset.x[idx], self.data.dataset.y[idx]
        path = Path(self.options.data)
        try:
            with np.load(path, allow_pickle=False) as archive:
                x, y = archive["x"], archive["y"]
        except (OSError, KeyError, ValueError) as exc:
            raise FedmarketError(f"cannot read data {path}: an .npz with arrays x and y is needed ({exc})") from None
        expected = tuple(self.data.dataset.input_shape)
        if tuple(x.shape[1:]) != expected or len(x) != len(y) or len(x) == 0:
            raise FedmarketError(f"data {path} has inputs {tuple(x.shape)} and {len(y)} labels; the task needs (N, {', '.join(map(str, expected))})")
        return x.astype(np.float32), y

    def join_index(self, members: list[str]) -> int:
        try:
            return [m.lower() for m in members].index(self.address.lower())
        except ValueError:
            raise FedmarketError(f"{self.address} is not a {self.role} of task {self.model_id}") from None

    def roster(self, kind: str) -> list[str]:
        """The task's "trainers" or "validators" in join order. Read once: the agents ask only
        while the task trains, and seats change only while it is Open (join, leave)."""
        if kind not in self._rosters:
            read = {"trainers": self.market.trainers, "validators": self.market.validators}[kind]
            self._rosters[kind] = self._view(lambda: read(self.model_id))
        return self._rosters[kind]

    @property
    def max_blob_size(self) -> int:
        """The exact size of this task's weights file: no weights blob of the task is larger."""
        if self._max_blob is None:
            from fedmarket.storage.weights import max_weights_size

            self._max_blob = max_weights_size(self.model_spec.init_state(0), self.model_spec.id)
        return self._max_blob

    def claimed_samples(self, claimed: int) -> int:
        """A trainer's claimed sample count, bounded by the task: no trainer holds more samples
        than the task's data set has outside the held-out part (2**63 claimed counts as that)."""
        bound = max(1, len(self.data.dataset.y) - self.spec.holdout)
        return max(1, min(int(claimed), bound))

    def load_state(self, cid: str, what: str, round: int | None = None, parent: str | None = None) -> State:
        """Download (at most max_blob_size bytes), verify and parse a weights blob of this task's
        architecture (cached by CID). `round` / `parent`, when given, must match the file's own metadata."""
        from fedmarket.storage.weights import decode_weights, expected_layout

        if cid not in self._states:
            blob = self._fetch(cid, what, self.max_blob_size)
            layout = expected_layout(self.model_spec.init_state(0))
            try:
                self._states[cid] = decode_weights(blob, layout, self.model_spec.id)
            except FedmarketError as exc:
                raise FedmarketError(f"{what} {cid}: {exc}") from None
        state, meta = self._states[cid]
        if round is not None and meta.round != round:
            raise FedmarketError(f"{what} {cid} is for round {meta.round}, not {round}")
        if parent is not None and meta.parent_cid != parent:
            raise FedmarketError(f"{what} {cid} was trained from {meta.parent_cid}, not from the global model {parent}")
        return state

    def parent_of(self, cid: str) -> str | None:
        """The global model a loaded weights file says it was trained from (its metadata)."""
        return self._states[cid][1].parent_cid if cid in self._states else None

    def global_model(self, now: AgentView, r: int) -> State:
        """The round's global model: downloaded, or, where no store serves it, rebuilt from the
        previous round's revealed accepted updates (the same deterministic aggregate) and checked
        against the CID on chain; the rebuilt file is stored so that others can fetch it too."""
        cid = now.global_model_cid
        try:
            return self.load_state(cid, "global model")
        except FedmarketError as exc:
            if r <= 1 or cid == self.params.initial_model_cid:
                raise
            why = str(exc)
        rebuilt = self._rebuild(r - 1, cid)
        if rebuilt is None:
            raise FedmarketError(f"global model {cid} cannot be fetched ({why}) nor rebuilt from round {r - 1}'s accepted updates")
        self._record("commit", r, "rebuilt-global-model", detail=f"{cid} was not retrievable ({why}); rebuilt from round {r - 1}'s accepted updates")
        return rebuilt

    def _rebuild(self, made_in: int, cid: str) -> State | None:
        """The aggregate of round `made_in` if its CID is `cid`, else None."""
        from fedmarket.storage.cid import cid_of

        revealed = self._view(lambda: self.market.revealed_updates(self.model_id, made_in))
        parents = set()
        for u in revealed:
            try:
                self.load_state(u.update_cid, f"update of {u.trainer}", made_in)
            except FedmarketError:
                continue
            parents.add(self.parent_of(u.update_cid))
        for parent in sorted(p for p in parents if p is not None):
            try:
                state, _accepted = self.accepted_aggregate(made_in, parent)
            except FedmarketError:
                continue
            blob = self.weights_file(state, made_in, parent)
            if cid_of(blob) == cid:
                self.store_blob(blob)
                self._states.pop(cid, None)
                return self.load_state(cid, "rebuilt global model")
        return None

    def public_past(self, r: int, global_cid: str) -> PublicPast:
        """What was public before round r: up to PUBLIC_MODELS earlier global models (walking the
        global model's parent links) and round r - 1's revealed updates with their parents.
        Whatever cannot be fetched is left out (the utility then discounts less, never more)."""
        from fedmarket.fl.utility import PublicPast

        models, cid = [], self.parent_of(global_cid)
        while cid is not None and len(models) < PUBLIC_MODELS:
            try:
                models.append(self.load_state(cid, "earlier global model"))
            except FedmarketError:
                break
            cid = self.parent_of(cid)
        updates = []
        if r > 1:
            for u in self._view(lambda: self.market.revealed_updates(self.model_id, r - 1)):
                try:
                    state = self.load_state(u.update_cid, f"update of {u.trainer}", r - 1)
                    parent = self.parent_of(u.update_cid)
                    if parent is not None:
                        updates.append((state, self.load_state(parent, "earlier global model")))
                except FedmarketError:
                    continue
        return PublicPast(tuple(models), tuple(updates))

    def accepted_aggregate(self, r: int, global_cid: str) -> tuple[State, list[str]]:
        """The round's aggregate as the protocol defines it: the task's rule over the revealed
        updates whose median utility is > 0, in trainer join order, weighted by claimed samples
        (an elected committee's rule, cmfl_s1 / cmfl_s2, also selects by the utilities).
        Returns (state, the accepted trainers)."""
        from fedmarket.fl.aggregation import get_rule, get_scored_rule
        from fedmarket.fl.params import canonical

        revealed = self._view(lambda: self.market.revealed_updates(self.model_id, r))
        utilities = self._view(lambda: self.market.utilities(self.model_id, r))
        order = {a.lower(): i for i, a in enumerate(self.roster("trainers"))}
        accepted = sorted(((u, score) for u, score in zip(revealed, utilities, strict=True) if score > 0), key=lambda pair: order[pair[0].trainer.lower()])
        if not accepted:
            raise FedmarketError(f"round {r} has no accepted update to aggregate")
        # An accepted update that no longer loads would make every honest aggregate impossible:
        # that is an error worth stopping for, not a score.
        states = [self.load_state(u.update_cid, f"update of {u.trainer}", r, global_cid) for u, _ in accepted]
        counts = [self.claimed_samples(u.num_samples) for u, _ in accepted]
        with self._timing("train_s"):
            if self.spec.committee == "elected":
                state = canonical(get_scored_rule(self.spec.aggregation)(states, counts, [int(score) for _, score in accepted]))
            else:
                state = canonical(get_rule(self.spec.aggregation)(states, counts))
        return state, [u.trainer for u, _ in accepted]

    def metric_of(self, state: State, x: np.ndarray, y: np.ndarray) -> int:
        """The proposal metric of `state` on (x, y): accuracy in micro-units (for regression, minus the MSE)."""
        from fedmarket.fl.evaluation import evaluate
        from fedmarket.fl.training import resolve_device, task_of

        with self._timing("train_s"):
            metrics = evaluate(self.model_spec.build(), state, x, y, task_of(y), resolve_device(self.options.device))
        value = metrics.accuracy if metrics.accuracy is not None else -(metrics.mse or 0.0)
        return round(value * 1_000_000)

    def weights_file(self, state: State, round: int, parent: str | None) -> bytes:
        """The task's weights file of `state` (canonical bytes: one state, one CID everywhere).
        No check of the state's shapes: the validators make those."""
        from fedmarket.fl.params import canonical
        from fedmarket.storage.weights import WeightsMeta, encode_weights

        return encode_weights(canonical(state), WeightsMeta(arch=self.model_spec.id, round=round, parent_cid=parent))

    def store_blob(self, blob: bytes) -> str:
        with self._timing("storage_s"):
            return self.store.add(blob)

    def store_state(self, state: State, round: int, parent: str | None) -> str:
        return self.store_blob(self.weights_file(state, round, parent))

    def _fetch(self, cid: str, what: str, max_size: int) -> bytes:
        with self._timing("storage_s"):
            try:
                return self.store.get(cid, max_size=max_size)  # the store checks the size, then the bytes against the CID
            except StoreUnavailable as exc:  # kept apart: the caller may wait and try again
                raise StoreUnavailable(f"{what} {cid}: {exc}") from None
            except FedmarketError as exc:
                raise FedmarketError(f"{what} {cid}: {exc}") from None

    # ------------------------------------------------------------------ plumbing

    def checkpoint(self, round: int, point: str) -> None:
        """Fault injection: die here, as kill -9 would, if told to."""
        fault = self.options.fault
        if fault is not None and fault.fires(round, point):
            self._record(point, round, "fault", detail="SIGKILL (injected fault)")
            die()

    @contextmanager
    def _timing(self, kind: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            setattr(self.timer, kind, getattr(self.timer, kind) + time.perf_counter() - t0)

    def _view(self, call: Callable[[], Any]) -> Any:
        with self._timing("chain_s"):
            return call()

    def _send(self, phase: str, round: int, action: str, call: Callable[[], TxResult], detail: str | None = None, *, duty: str | None = None) -> TxResult:
        """Send one transaction. A refusal that the chain's moving on explains raises Overtaken
        (handled by `step`), unless the same action was overtaken MAX_OVERTAKEN times in a row.
        `duty`: the round's duty this transaction does (commit, reveal, score-commit, score, vote-commit,
        vote); its receipt
        says it is done, so `done` need not ask the chain again."""
        key = (round, action)
        try:
            with self._timing("chain_s"):
                result = call()
        except FedmarketError as exc:
            if not is_race(exc):
                raise
            self._overtaken[key] = self._overtaken.get(key, 0) + 1
            if self._overtaken[key] > MAX_OVERTAKEN:
                raise FedmarketError(f"{action} of round {round} was refused {self._overtaken[key]} times in a row: {exc}") from exc
            raise Overtaken(phase, round, action, str(exc)) from exc
        self._overtaken.pop(key, None)
        if duty is not None:
            self._facts.add((round, duty))
        self._record(phase, round, action, tx=result.tx_hash, gas=result.gas_used, detail=detail)
        return result

    def _record(self, phase: str, round: int, action: str, *, tx: str | None = None, gas: int | None = None, detail: str | None = None, **extra: Any) -> None:
        record: dict[str, Any] = {
            "t": round_time(),
            "agent": self.name,
            "role": self.role,
            "address": self.address,
            "model_id": self.model_id,
            "round": round,
            "phase": phase,
            "action": action,
            "tx": tx,
            "gas": gas,
            **self.timer.take(),
            "detail": detail,
            **extra,
        }
        self.log.write(record)


def round_time() -> float:
    return round(time.time(), 3)


@dataclass
class RoundCache:
    """Per-round memory an agent may drop: scores computed, aggregates built."""

    round: int = 0
    values: dict[str, Any] = field(default_factory=dict)

    def for_round(self, r: int) -> dict[str, Any]:
        if r != self.round:
            self.round, self.values = r, {}
        return self.values
