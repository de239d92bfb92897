"""Gossip between semi trainer processes over loopback HTTP (docs/semi.md, "Gossip between processes").

A client announces each new local model to its trusted neighbours: an `Announcement` (contract,
task id, sender address, the sender's round, the model's CID, a timestamp) signed by the sender
with EIP-191 (`personal_sign`). A neighbour that accepts it forwards it on, so it floods the
connected trusted component as fl.semi.gossip.flood defines it. Every hop travels in an
envelope that the relay signs too, naming the receiver, so that a receiver knows both who wrote
the announcement and which neighbour handed it over.

A receiver (`GossipPeers.check`) accepts an envelope only when the announcement's signature
recovers its sender, the sender is a client of the task on chain and lies in the receiver's
trusted component, and the relay's signature recovers a client that is the receiver's trusted
neighbour. Anything else is refused with its reason (logged by the node). Only announcements
travel: the model itself is fetched from the store by its CID and checked against it
(`LoopbackGossip.latest`).

`GossipNode` is the transport: a stdlib ThreadingHTTPServer on 127.0.0.1 (an ephemeral port
written to `<endpoints dir>/<address>.json`, how neighbours find it) and one sender thread that
POSTs queued envelopes, one sender thread per neighbour, retrying a few times while a neighbour is
not up yet.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_address, to_checksum_address

from fedmarket.errors import FedmarketError
from fedmarket.files import atomic_write_json
from fedmarket.fl.semi.gossip import flood
from fedmarket.fl.semi.trust import TrustGraph
from fedmarket.roles.semi_trainer import HeldModel, WeightsCheck, fetch_verified

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from fedmarket.storage.store import BlobStore

DOMAIN = "fedmarket semi gossip v1"
MAX_ENVELOPE_BYTES = 4096  # an envelope is ~600 bytes of JSON; anything larger is refused unread
SEND_TIMEOUT_S = 2.0
SEND_ATTEMPTS = 6  # a neighbour that is not up yet (no endpoint file, connection refused) is retried
RETRY_PAUSE_S = 0.5

Log = Callable[..., None]  # log(action, **fields)


class GossipRefused(FedmarketError):
    """An envelope the receiver does not accept; the message is the reason."""


@dataclass(frozen=True)
class Announcement:
    """`sender` has a new local model of its `round`: CID `cid`, announced at `timestamp` (unix s)."""

    contract: str
    task_id: int
    sender: str
    round: int
    cid: str
    timestamp: int
    signature: str = ""

    def text(self) -> str:
        """What the sender signs (EIP-191): every field but the signature, one per line."""
        return (
            f"{DOMAIN}\ncontract {self.contract.lower()}\ntask {self.task_id}\nsender {self.sender.lower()}\n"
            f"round {self.round}\ncid {self.cid}\ntimestamp {self.timestamp}"
        )

    def signed_by(self, account: LocalAccount) -> Announcement:
        if to_checksum_address(account.address) != to_checksum_address(self.sender):
            raise FedmarketError(f"{account.address} cannot sign an announcement of {self.sender}")
        signature = account.sign_message(encode_defunct(text=self.text())).signature
        return replace(self, signature="0x" + bytes(signature).hex())

    def recovered(self) -> str | None:
        """The address whose key made the signature (None when it is not a signature at all)."""
        return _recover(self.text(), self.signature)

    @classmethod
    def from_dict(cls, data: Any) -> Announcement:
        if not isinstance(data, dict) or set(data) != {f for f in cls.__dataclass_fields__}:
            raise GossipRefused("malformed announcement")
        strings, ints = ("contract", "sender", "cid", "signature"), ("task_id", "round", "timestamp")
        if not all(isinstance(data[k], str) for k in strings) or not all(type(data[k]) is int and data[k] >= 0 for k in ints):
            raise GossipRefused("malformed announcement")
        if not is_address(data["sender"]) or not is_address(data["contract"]):
            raise GossipRefused("malformed announcement: not an address")
        return cls(**data)


def relay_text(announcement: Announcement, receiver: str) -> str:
    """What a relay signs: the announcement (by its signature) handed over to `receiver`."""
    return f"{DOMAIN} relay\nto {receiver.lower()}\nannouncement {announcement.signature}"


def envelope(announcement: Announcement, relay: LocalAccount, receiver: str) -> dict[str, Any]:
    signature = relay.sign_message(encode_defunct(text=relay_text(announcement, receiver))).signature
    return {"announcement": asdict(announcement), "relay": relay.address, "relay_signature": "0x" + bytes(signature).hex()}


def _recover(text: str, signature: str) -> str | None:
    try:
        return to_checksum_address(Account.recover_message(encode_defunct(text=text), signature=signature))
    except Exception:  # noqa: BLE001 - any undecodable signature is simply not a valid one
        return None


@dataclass(frozen=True)
class GossipPeers:
    """What a receiver checks against: the task, its clients on chain (by join order) and the trust graph."""

    contract: str
    task_id: int
    me: str
    participants: tuple[str, ...]  # checksum addresses, client index order
    graph: TrustGraph

    def __post_init__(self) -> None:
        if self.graph.num_clients != len(self.participants):
            raise FedmarketError(f"the trust graph has {self.graph.num_clients} clients, the task {len(self.participants)}")
        if self.me not in self.participants:
            raise FedmarketError(f"{self.me} is not a client of task {self.task_id}")

    def index(self, address: str) -> int | None:
        checksum = to_checksum_address(address)
        return self.participants.index(checksum) if checksum in self.participants else None

    @property
    def my_index(self) -> int:
        return self.participants.index(self.me)

    def neighbours(self) -> list[str]:
        return [self.participants[i] for i in sorted(self.graph.neighbours[self.my_index])]

    def component(self) -> frozenset[int]:
        return frozenset(flood(self.graph, self.my_index))

    def check(self, data: Any) -> tuple[Announcement, str]:
        """(the announcement, its relay) of an envelope this client accepts; GossipRefused otherwise."""
        if not isinstance(data, dict) or set(data) != {"announcement", "relay", "relay_signature"}:
            raise GossipRefused("malformed envelope")
        a = Announcement.from_dict(data["announcement"])
        if to_checksum_address(a.contract) != to_checksum_address(self.contract) or a.task_id != self.task_id:
            raise GossipRefused(f"for another task ({a.contract} task {a.task_id})")
        if a.recovered() != to_checksum_address(a.sender):
            raise GossipRefused(f"bad signature: not signed by its sender {a.sender}")
        author = self.index(a.sender)
        if author is None:
            raise GossipRefused(f"unknown sender {a.sender}: not a client of task {self.task_id}")
        if author == self.my_index:
            raise GossipRefused("own announcement echoed back")
        if author not in self.component():
            raise GossipRefused(f"sender {a.sender} (client {author}) is outside the trusted component")
        relay = data["relay"]
        if not isinstance(relay, str) or not is_address(relay) or not isinstance(data["relay_signature"], str):
            raise GossipRefused("malformed envelope: relay")
        if _recover(relay_text(a, self.me), data["relay_signature"]) != to_checksum_address(relay):
            raise GossipRefused(f"bad relay signature: not signed by {relay} for this receiver")
        hop = self.index(relay)
        if hop is None:
            raise GossipRefused(f"unknown relay {relay}: not a client of task {self.task_id}")
        if hop not in self.graph.neighbours[self.my_index]:
            raise GossipRefused(f"relay {relay} (client {hop}) is not a trusted neighbour")
        return a, to_checksum_address(relay)


class GossipNode:
    """One client's gossip endpoint: receive, check, keep the latest per sender, forward; announce."""

    def __init__(self, peers: GossipPeers, account: LocalAccount, endpoints: Path, log: Log) -> None:
        if to_checksum_address(account.address) != peers.me:
            raise FedmarketError("the gossip node signs as the client it receives for")
        self.peers, self.account, self.endpoints, self.log = peers, account, Path(endpoints), log
        self.latest: dict[int, Announcement] = {}  # author index -> newest accepted announcement
        self.counts = {"sent": 0, "accepted": 0, "refused": 0, "stale": 0, "undelivered": 0}
        self._lock = threading.Lock()
        # One outbox and sender thread per neighbour: a neighbour that is down (a crashed client
        # being restarted) is retried without holding up what the others are sent.
        self._outboxes: dict[str, queue.Queue[dict[str, Any] | None]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> GossipNode:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._outboxes = {neighbour: queue.Queue() for neighbour in self.peers.neighbours()}
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True)]
        self._threads += [threading.Thread(target=self._send_loop, args=(receiver, box), daemon=True) for receiver, box in self._outboxes.items()]
        for thread in self._threads:
            thread.start()
        self.endpoints.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.endpoints / f"{self.peers.me}.json", {"url": self.url})
        self.log("gossip-listening", detail=self.url)
        return self

    def stop(self) -> None:
        for box in self._outboxes.values():
            box.put(None)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=SEND_TIMEOUT_S * 2)

    def announce(self, round_number: int, cid: str) -> Announcement:
        """Sign this client's new model of `round_number` and send it to every trusted neighbour."""
        a = Announcement(self.peers.contract, self.peers.task_id, self.peers.me, round_number, cid, int(time.time())).signed_by(self.account)
        for neighbour in self.peers.neighbours():
            self._send(neighbour, envelope(a, self.account, neighbour))
        return a

    def latest_of(self, author: int) -> Announcement | None:
        with self._lock:
            return self.latest.get(author)

    def receive(self, data: Any) -> tuple[int, dict[str, Any]]:
        """(HTTP status, reply) for one posted envelope; forwards what is new."""
        try:
            a, relay = self.peers.check(data)
        except GossipRefused as refused:
            self._count("refused")
            sender = data.get("announcement", {}).get("sender") if isinstance(data, dict) and isinstance(data.get("announcement"), dict) else None
            self.log("gossip-refused", detail=str(refused), sender=sender)
            return 403, {"accepted": False, "reason": str(refused)}
        author = self.peers.index(a.sender)
        assert author is not None
        with self._lock:
            held = self.latest.get(author)
            fresh = held is None or a.round > held.round
            if fresh:
                self.latest[author] = a
        if not fresh:
            self._count("stale")
            return 200, {"accepted": False, "reason": "stale: a newer or equal round is held"}
        self._count("accepted")
        self.log("gossip-accepted", round=a.round, sender=a.sender, author=author, relay=relay, cid=a.cid)
        for neighbour in self.peers.neighbours():
            if neighbour not in (relay, a.sender):
                self._send(neighbour, envelope(a, self.account, neighbour))
        return 200, {"accepted": True}

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def _send(self, receiver: str, body: dict[str, Any]) -> None:
        box = self._outboxes.get(receiver)
        if box is None:
            raise FedmarketError(f"{receiver} is not a trusted neighbour of {self.peers.me}, or the gossip node is not started")
        box.put(body)

    def _send_loop(self, receiver: str, box: queue.Queue[dict[str, Any] | None]) -> None:
        while True:
            body = box.get()
            if body is None:
                return
            reason = ""
            for attempt in range(SEND_ATTEMPTS):
                reason = self._post(receiver, body)
                if not reason:
                    break
                if reason.startswith("refused"):
                    break  # the receiver said no: sending again gets the same answer
                time.sleep(RETRY_PAUSE_S * (attempt + 1))
            a = body["announcement"]
            if reason:
                self._count("undelivered")
                self.log("gossip-undelivered", round=a["round"], to=receiver, sender=a["sender"], detail=reason)
            else:
                self._count("sent")
                self.log("gossip-sent", round=a["round"], to=receiver, sender=a["sender"])

    def _post(self, receiver: str, body: dict[str, Any]) -> str:
        """'' when delivered (accepted or stale), else why not."""
        endpoint = self.endpoints / f"{receiver}.json"
        try:
            url = json.loads(endpoint.read_text())["url"]
        except (OSError, ValueError, KeyError):
            return f"no endpoint for {receiver} yet"
        request = urllib.request.Request(url + "/gossip", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as reply:
                reply.read()
            return ""
        except urllib.error.HTTPError as exc:
            return f"refused ({exc.code}): {exc.read()[:200].decode(errors='replace')}"
        except (urllib.error.URLError, OSError) as exc:
            return f"{receiver} unreachable: {exc}"


def _handler_for(node: GossipNode) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            if self.path != "/gossip":
                return self._reply(404, {"error": "POST /gossip"})
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_ENVELOPE_BYTES:
                return self._reply(413, {"error": f"an envelope is 1..{MAX_ENVELOPE_BYTES} bytes"})
            try:
                data = json.loads(self.rfile.read(length))
            except ValueError:
                data = None
            self._reply(*node.receive(data))

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            pass  # every request is logged by the node, as one JSON line

    return Handler


class LoopbackGossip:
    """SemiTrainer's gossip over a GossipNode: `publish` announces, `latest` fetches the newest
    announced model of a sender from the store, verified by its CID (and cached by it)."""

    def __init__(self, node: GossipNode, store: BlobStore, check: WeightsCheck) -> None:
        self.node, self.store, self.check = node, store, check
        self._states: dict[str, HeldModel] = {}  # CID -> verified model
        self._held: dict[int, HeldModel] = {}  # sender -> its newest model that passed the check
        self._bad: set[str] = set()  # CIDs whose blob failed the check (never fetched again)

    def component(self, client: int) -> frozenset[int]:
        if client != self.node.peers.my_index:
            raise FedmarketError(f"this node gossips for client {self.node.peers.my_index}, not {client}")
        return self.node.peers.component()

    def publish(self, model: HeldModel) -> None:
        self.node.announce(model.round, model.cid)

    def latest(self, receiver: int, sender: int) -> HeldModel | None:
        a = self.node.latest_of(sender)
        if a is None:
            return None
        held = self._states.get(a.cid)
        if held is None and a.cid not in self._bad:
            try:
                held = HeldModel(sender, a.round, fetch_verified(self.store, a.cid, a.round, self.check), a.cid)
            except (FedmarketError, OSError, ValueError) as exc:
                # A signed announcement of a blob that is missing, too big or not the announced
                # model: the sender's older model (if any) is used, and this one never again.
                self._bad.add(a.cid)
                self.node.log("gossip-model-refused", round=a.round, sender=a.sender, cid=a.cid, detail=f"{type(exc).__name__}: {exc}")
            else:
                self._states[a.cid] = held
                self._held[sender] = held
        return self._held.get(sender)
