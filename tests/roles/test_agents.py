"""The agents' promise, in process on the embedded chain: a restarted agent (a new object on the
same state dir, as after kill -9) resumes in the right phase and never submits twice.

The real kill -9 of agent processes is tests/e2e/test_up.py; here each restart point is hit
exactly, which a signal cannot do."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedmarket.chain.anvil import dev_accounts
from fedmarket.chain.client import ModelParams, Phase, Status, open_market
from fedmarket.chain.deploy import deploy_marketplace
from fedmarket.chain.embedded import new_embedded_web3
from fedmarket.errors import FedmarketError
from fedmarket.fl.taskspec import TaskData, TaskSpec
from fedmarket.fl.utility import MALFORMED_SCORE as MALFORMED_UTILITY
from fedmarket.fl.utility import to_micro
from fedmarket.roles import buyer
from fedmarket.roles.adversary import Attack, attacks_of
from fedmarket.roles.agent import Agent, AgentLog, AgentOptions
from fedmarket.roles.aggregator import AggregatorAgent
from fedmarket.roles.faults import Fault
from fedmarket.roles.policy import JoinPolicy, PolicyRefusal
from fedmarket.roles.trainer import TrainerAgent
from fedmarket.roles.validator import ValidatorAgent
from fedmarket.storage.embedded import EmbeddedStore
from fedmarket.storage.kubo import KuboStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
from kubo_rpc_server import KuboRpcServer, serve_store  # noqa: E402

ETH = 10**18
MALFORMED_SCORE = to_micro(MALFORMED_UTILITY)
SPEC = TaskSpec(trainers=2, validators=1, holdout=200)


class Market:
    """A 1-round task with 2 trainers, 1 validator and the aggregator, all joined and started."""

    def __init__(self, tmp: Path) -> None:
        self.w3 = new_embedded_web3(num_accounts=6)
        accounts = dev_accounts(self.w3)
        self.tmp = tmp
        self.store = EmbeddedStore(tmp / "store")
        self.data = TaskData.load(SPEC)
        self.market = open_market(self.w3, deploy_marketplace(self.w3, accounts[0]).address, accounts[0])
        self.accounts = {"aggregator": accounts[1], "trainer-1": accounts[2], "trainer-2": accounts[3], "validator-1": accounts[4]}
        params = ModelParams(
            spec_digest=self.store.add(SPEC.to_bytes()), initial_model_digest=self.store.add(SPEC.initial_weights(self.data.dataset)),
            aggregator=accounts[1].address, rounds=1, min_trainers=2, max_trainers=2, committee_size=1, max_validators=1,
            trainer_stake=ETH // 10, validator_stake=ETH // 10, aggregator_stake=ETH // 10,
        )  # fmt: skip
        self.model_id = buyer.post_task(self.market, params, ETH).model_id
        self.logs: list[dict] = []
        self.agents = {name: self.agent(name, join=True) for name in self.accounts}
        for agent in self.agents.values():
            agent.step()
        buyer.start_task(self.market, self.model_id)

    def agent(self, name: str, join: bool = False, store: object | None = None, **options) -> Agent:
        cls = {"trainer": TrainerAgent, "validator": ValidatorAgent, "aggregator": AggregatorAgent}[name.split("-")[0]]
        agent = cls(
            self.market.with_account(self.accounts[name]),
            store or self.store,
            self.model_id,
            self.tmp / "state" / name,
            AgentLog(sink=self.logs.append),
            AgentOptions(join=join, name=name, **options),
            task_data=self.data,
        )
        return agent

    def restart(self, name: str) -> Agent:
        """A new agent on the same state dir: all it knows is the chain and what it stored."""
        self.agents[name] = self.agent(name)
        return self.agents[name]

    def phase(self) -> Phase:
        return self.market.get_round(self.model_id, 1).phase

    def actions(self, name: str, action: str) -> list[dict]:
        return [r for r in self.logs if r["agent"] == name and r["action"] == action]


@pytest.fixture
def market(tmp_path: Path) -> Market:
    return Market(tmp_path)


def test_a_trainer_restarted_after_its_commit_reveals_with_the_stored_salt(market: Market) -> None:
    assert market.agents["trainer-1"].step()  # commits
    fresh = market.restart("trainer-1")
    assert not fresh.step()  # still the commit phase: it has committed, so nothing to do
    assert market.agents["trainer-2"].step()  # the last commit ends the phase
    assert market.phase() == Phase.REVEAL
    assert fresh.step()  # reveals with the salt the first process stored
    assert market.market.has_revealed(market.model_id, 1, fresh.address)
    assert not fresh.step()
    assert len(market.actions("trainer-1", "commit")) == 1 and len(market.actions("trainer-1", "reveal")) == 1


def test_an_agent_step_costs_one_view_and_it_reads_the_roster_once(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each step reads the task, its round and the agent's own duties in one agentView; the task's
    parameters and the trainer list (fixed once training starts) are read once per process, and
    no duty is asked of the chain separately."""
    trainer = market.agents["trainer-1"]
    asked: list[str] = []
    for view in ("agent_view", "get_model", "get_round", "has_committed", "has_revealed", "trainers"):
        original = getattr(trainer.market, view)
        monkeypatch.setattr(trainer.market, view, lambda *args, _view=view, _original=original: asked.append(_view) or _original(*args))
    assert trainer.step()  # not committed yet: trains, checks the phase is still Commit, commits
    assert asked == ["agent_view", "trainers", "agent_view"]  # the parameters were read when it joined
    asked.clear()
    assert not trainer.step()  # committed: nothing to do
    assert market.agents["trainer-2"].step()
    assert trainer.step()  # reveals
    assert not trainer.step()
    assert asked == ["agent_view"] * 3
    assert trainer._rosters["trainers"] == market.market.trainers(market.model_id)


def test_a_trainer_restarted_between_storing_and_committing_commits_the_same_update(market: Market) -> None:
    first = market.agents["trainer-1"]
    now = market.market.agent_view(market.model_id, first.address)
    cid, samples, _loss = first._update(now, 1, now.global_model_cid)  # stored, not committed: then the crash
    first.salts.prepare(market.market.chain_id, market.market.address, market.model_id, 1, first.address, cid, samples)
    fresh = market.restart("trainer-1")
    assert fresh.step()
    (commit,) = market.actions("trainer-1", "commit")
    assert cid in commit["detail"]  # training is deterministic: same bytes, same CID
    salts = list((market.tmp / "state" / "trainer-1" / "salts").rglob("*.json"))
    assert len(salts) == 1  # and the same salt: nothing was replaced


def test_a_validator_restarted_between_commit_and_reveal_reveals_what_it_committed(market: Market) -> None:
    """The validator's scores and vote are stored with their salts before each commit: a new
    process (kill -9 between commit and reveal) reveals exactly what the first one committed,
    and does not commit or score again."""
    for name in ("trainer-1", "trainer-2", "trainer-1", "trainer-2"):
        market.agents[name].step()  # commit, commit, reveal, reveal
    assert market.phase() == Phase.SCORE_COMMIT
    assert market.agents["validator-1"].step()  # scores and commits; the committee's only commit ends the phase
    assert market.phase() == Phase.SCORE_REVEAL
    assert market.market.scores_of(market.model_id, 1, market.accounts["validator-1"].address) == (False, [])  # hidden until revealed
    (committed,) = market.actions("validator-1", "commit-scores")
    fresh = market.restart("validator-1")
    assert fresh.step()  # reveals from the ballot book, without scoring again
    assert market.phase() == Phase.PUBLISH
    (revealed,) = market.actions("validator-1", "reveal-scores")
    scores = market.market.scores_of(market.model_id, 1, fresh.address).scores
    assert revealed["detail"] == " ".join(map(str, scores)) and committed["detail"].split(" ") == [
        f"{u.trainer[:8]}={s}" for u, s in zip(market.market.revealed_updates(market.model_id, 1), scores, strict=True)
    ]
    assert not fresh.step()  # revealed: nothing more until the proposal
    assert market.agents["aggregator"].step()
    assert market.phase() == Phase.VOTE_COMMIT
    assert fresh.step()  # checks the proposal (no memory of the scores needed) and commits its vote
    assert market.phase() == Phase.VOTE_REVEAL
    again = market.restart("validator-1")
    assert again.step()  # reveals the stored vote: the committee's only reveal settles the round
    assert market.market.get_round(market.model_id, 1).closed
    assert market.market.has_confirmed(market.model_id, 1, again.address) == (True, True)
    assert [len(market.actions("validator-1", a)) for a in ("commit-scores", "reveal-scores", "commit-vote", "reveal-vote")] == [1, 1, 1, 1]
    ballots = sorted(p.name.rsplit("-", 1)[-1] for p in (market.tmp / "state" / "validator-1" / "salts").rglob("*.json"))
    assert ballots == ["scores.json", "vote.json"]
    assert all("salt" not in (r["detail"] or "") for r in market.logs)


def test_an_aggregator_restarted_before_publishing_publishes_the_same_model(market: Market) -> None:
    for name in ("trainer-1", "trainer-2", "trainer-1", "trainer-2", "validator-1", "validator-1"):
        market.agents[name].step()  # ... then the validator commits to its scores and reveals them
    first = market.agents["aggregator"]
    info = market.market.get_model(market.model_id)
    state, _accepted = first.accepted_aggregate(1, info.state.global_model_cid)
    stored_cid = first.store_state(state, 1, info.state.global_model_cid)  # then the crash
    fresh = market.restart("aggregator")
    assert fresh.step()
    assert not fresh.step()
    from fedmarket.storage.cid import digest_to_cid

    assert digest_to_cid(market.market.get_round(market.model_id, 1).proposed_digest) == stored_cid


def test_the_task_finishes_and_everyone_withdraws(market: Market) -> None:
    for _ in range(10):
        for agent in market.agents.values():
            agent.step()
    assert market.market.get_model(market.model_id).state.rounds_closed == 1
    buyer.finalize_and_settle(market.market, market.model_id)
    for agent in market.agents.values():
        agent.step()
        assert agent.finished and market.market.credit(agent.address) == 0
    assert market.market.get_model(market.model_id).state.status == Status.SETTLED


def test_bad_options_are_one_clear_line(market: Market) -> None:
    with pytest.raises(FedmarketError, match="unknown attack"):
        Attack.parse("fly", attacks_of("trainer"))
    with pytest.raises(FedmarketError, match="ROUND:POINT"):
        Fault.parse("2:during-lunch")
    with pytest.raises(FedmarketError, match="cannot run attack"):
        market.agent("validator-1", attack=Attack("free-ride"))
    stranger = market.agent("trainer-1")
    stranger.options.data = str(market.tmp / "missing.npz")
    with pytest.raises(FedmarketError, match="cannot read data"):
        stranger.own_samples(lambda: None)


def test_a_trainer_overtaken_by_the_deadline_carries_on(market: Market) -> None:
    """The commit phase ends between the trainer's read and its commit: the contract refuses the
    commit, and the trainer logs the race and goes on from what the chain says now."""
    from fedmarket.chain.timecontrol import advance_to

    trainer = market.agents["trainer-1"]
    honest_commit = trainer.market.commit_update

    def late_commit(*args, **kwargs):
        deadline = market.market.get_round(market.model_id, 1).phase_deadline
        advance_to(market.w3, deadline + 1)  # the deadline passes while the transaction is on its way
        return honest_commit(*args, **kwargs)

    trainer.market.commit_update = late_commit
    assert trainer.step()  # overtaken: not an error
    [race] = market.actions("trainer-1", "overtaken")
    assert "commit" in race["detail"] and "reading the chain again" in race["detail"]
    trainer.market.commit_update = honest_commit
    assert market.phase() == Phase.DUE
    assert trainer.step()  # the round is due: the trainer closes it
    assert market.market.get_round(market.model_id, 1).closed
    assert not market.actions("trainer-1", "commit")


def test_a_duty_already_done_on_chain_is_a_race_not_a_crash(market: Market) -> None:
    """A trainer whose view says it has not committed (a stale read) sends its commit again: the
    contract refuses it as AlreadyCommitted, and the trainer carries on; the same refusal over and
    over is no race, and ends the agent with one line."""
    trainer = market.agents["trainer-1"]
    assert trainer.step()  # commits
    fresh_view = trainer.market.agent_view
    trainer.market.agent_view = lambda *args: dataclasses.replace(fresh_view(*args), committed=False)  # a view that lags behind the chain
    trainer._facts.clear()
    for _ in range(3):
        assert trainer.step()
    assert len(market.actions("trainer-1", "overtaken")) == 3
    assert all("AlreadyCommitted" in r["detail"] or "already committed" in r["detail"] for r in market.actions("trainer-1", "overtaken"))
    with pytest.raises(FedmarketError, match="refused 4 times in a row"):
        trainer.step()
    assert len(market.actions("trainer-1", "commit")) == 1


def _post(market: Market, **changes) -> int:
    """Another open task on the fixture's Marketplace, with `changes` to its parameters."""
    params = market.market.get_model(market.model_id).params.with_(rounds=1, **changes)
    return buyer.post_task(market.market, params, ETH).model_id


def _joiner(market: Market, model_id: int, name: str, **options) -> Agent:
    cls = {"trainer": TrainerAgent, "validator": ValidatorAgent, "aggregator": AggregatorAgent}[name.split("-")[0]]
    return cls(
        market.market.with_account(market.accounts[name]),
        market.store,
        model_id,
        market.tmp / "other" / name,
        AgentLog(sink=market.logs.append),
        AgentOptions(join=True, name=name, **options),
    )


@pytest.mark.parametrize(
    ("changes", "role", "message"),
    [
        ({"commit_window": 5}, "trainer-1", "windows \\(commit 5 s\\) are shorter than this agent's minimum of 10 s"),
        ({"late_slash_bps": 3_000}, "validator-1", "late slash of 3000 bps is above this agent's maximum of 2000 bps"),
        ({"trainer_stake": ETH}, "trainer-1", "trainer stake of 1000000000000000000 wei is above"),
        ({"agreement_tolerance_bps": 100}, "validator-1", "agreement tolerance of 100 bps is below this agent's minimum of 5000 bps"),
    ],
)
def test_a_trap_task_is_refused_before_any_wei_moves(market: Market, changes: dict, role: str, message: str) -> None:
    """Parameters the contract accepts but this agent's policy does not: it refuses before paying."""
    model_id = _post(market, **changes)
    policy = JoinPolicy(min_window_s=10, max_late_slash_bps=2_000, max_stake_wei=ETH // 2)
    agent = _joiner(market, model_id, role, policy=policy)
    before = market.w3.eth.get_balance(agent.address)
    with pytest.raises(PolicyRefusal, match=message):
        agent.step()
    assert market.w3.eth.get_balance(agent.address) == before
    assert not market.market.participant(model_id, agent.address).licensed


def test_the_policy_refuses_a_positive_poison_threshold_for_trainers(market: Market) -> None:
    params = market.market.get_model(market.model_id).params
    JoinPolicy().check(params.with_(poison_threshold=1), "validator")  # a validator is not slashed by it
    with pytest.raises(PolicyRefusal, match="poison threshold 1 is above 0"):
        JoinPolicy().check(params.with_(poison_threshold=1), "trainer")


@pytest.mark.parametrize("what", ["spec", "initial model", "data"])
def test_garbage_task_files_or_data_are_refused_before_any_wei_moves(market: Market, what: str) -> None:
    garbage = market.store.add(b"not a task file at all\n")
    changes = {"spec_digest": garbage} if what == "spec" else {"initial_model_digest": garbage} if what == "initial model" else {}
    model_id = _post(market, **changes)
    data = {}
    if what == "data":
        bad = market.tmp / "bad.npz"
        bad.write_bytes(b"garbage")
        data = {"data": str(bad)}
    agent = _joiner(market, model_id, "trainer-1", **data)
    before = market.w3.eth.get_balance(agent.address)
    with pytest.raises(FedmarketError):
        agent.step()
    assert market.w3.eth.get_balance(agent.address) == before
    assert market.market.participant(model_id, agent.address).role == 0


def test_a_task_whose_parameters_elect_the_committee_against_its_spec_is_refused_before_any_wei_moves(market: Market) -> None:
    """The spec says staked validators score, the parameters (maxValidators 0) elect the committee
    from the trainers: a trainer would be drafted onto committees it never agreed to serve."""
    model_id = _post(market, max_validators=0, min_trainers=4, max_trainers=4)
    agent = _joiner(market, model_id, "trainer-1")
    before = market.w3.eth.get_balance(agent.address)
    with pytest.raises(FedmarketError, match="spec says committee 'validators', but its parameters elect the committee from the trainers"):
        agent.step()
    assert market.w3.eth.get_balance(agent.address) == before
    assert market.market.participant(model_id, agent.address).role == 0


def test_an_idle_agent_says_once_what_it_waits_for(market: Market) -> None:
    validator = market.agents["validator-1"]
    assert not validator.step() and not validator.step()  # the commit phase: nothing for a validator to do
    [waiting] = market.actions("validator-1", "waiting")
    assert waiting["detail"].startswith("round 1 commit phase: ") and waiting["detail"].endswith(" left")
    model_id = _post(market)
    idle = _joiner(market, model_id, "trainer-1")
    idle.options.join = False
    assert not idle.step()
    assert any(f"waiting for the owner to run `fedmarket task start {model_id}`" in r["detail"] for r in market.actions("trainer-1", "waiting"))


def test_a_trainer_takes_its_licence_fee_back_when_the_task_is_cancelled(market: Market) -> None:
    model_id = _post(market, license_fee=ETH // 100)
    trainer = _joiner(market, model_id, "trainer-1")
    assert trainer.step()  # licence and stake
    buyer.cancel_task(market.market, model_id)
    before = market.market.credit(trainer.address)
    while trainer.step():
        pass
    assert [r["action"] for r in market.actions("trainer-1", "leave")] == ["leave"]
    assert market.market.task_balance(model_id) == 0 and trainer.finished
    assert market.market.credit(trainer.address) == 0 and before > 0  # the stake came back on cancel, the fee on leave; all withdrawn


@pytest.fixture
def kubo(market: Market) -> Iterator[KuboRpcServer]:
    """A Kubo RPC server (the stand-in, over real HTTP) serving the market's store."""
    server = serve_store(market.tmp / "store")
    yield server
    server.shutdown()
    server.server_close()


def _validator_behind(market: Market, kubo: KuboRpcServer) -> ValidatorAgent:
    """validator-1 restarted with its blobs coming from `kubo` (the trainers have revealed)."""
    for name in ("trainer-1", "trainer-2", "trainer-1", "trainer-2"):
        market.agents[name].step()  # commit, commit, reveal, reveal
    assert market.phase() == Phase.SCORE_COMMIT
    validator = market.agent("validator-1", store=KuboStore(kubo.url))
    market.agents["validator-1"] = validator
    return validator


def test_a_validator_waits_for_an_update_its_store_cannot_serve_yet(market: Market, kubo: KuboRpcServer) -> None:
    """Kubo cannot serve trainer-1's update for a while (not found in time): that is no verdict on
    the update, so the validator commits nothing and tries again; once the update is served it is
    scored like any other, and no honest trainer is scored as poison."""
    validator = _validator_behind(market, kubo)
    late = market.market.revealed_updates(market.model_id, 1)[0]
    kubo.misbehaviour.unserved.add(late.update_cid)
    assert not validator.step() and not validator.step()  # waits: nothing committed
    assert market.phase() == Phase.SCORE_COMMIT and not market.actions("validator-1", "commit-scores")
    [waiting] = [r for r in market.actions("validator-1", "waiting") if "waiting for the store" in (r["detail"] or "")]
    assert "not found" in waiting["detail"] and "scoring as withheld once 300 s are left" in waiting["detail"]
    kubo.misbehaviour.unserved.clear()
    assert validator.step()  # served now: scores and commits
    assert market.phase() == Phase.SCORE_REVEAL and not market.actions("validator-1", "reject-update")
    assert validator.step()  # reveals
    scores = market.market.scores_of(market.model_id, 1, validator.address).scores
    assert len(scores) == 2 and all(s > MALFORMED_SCORE for s in scores), scores


def test_a_validator_scores_an_update_never_served_as_withheld_in_time(market: Market, kubo: KuboRpcServer) -> None:
    """An update Kubo never serves: the validator waits while more than half the score window is
    left, then scores it as malformed (the trainer withheld it) and still commits in time."""
    from fedmarket.chain.timecontrol import advance_to

    validator = _validator_behind(market, kubo)
    withheld = market.market.revealed_updates(market.model_id, 1)[0]
    kubo.misbehaviour.unserved.add(withheld.update_cid)
    assert not validator.step()
    deadline = market.market.get_round(market.model_id, 1).phase_deadline
    advance_to(market.w3, deadline - 300)  # half of the 600-s score window left
    assert validator.step()  # gives up waiting, scores, commits
    assert market.phase() == Phase.SCORE_REVEAL
    [rejected] = market.actions("validator-1", "reject-update")
    assert rejected["trainer"] == withheld.trainer and "unavailable until the wait ended" in rejected["detail"]
    assert validator.step()
    scores = market.market.scores_of(market.model_id, 1, validator.address).scores
    assert scores[0] == MALFORMED_SCORE and scores[1] > MALFORMED_SCORE
