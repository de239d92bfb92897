"""anvil, the dev chain from node_modules: start it, find it, stop it; and the dev accounts.

anvil always listens on 127.0.0.1 (never on every interface: its accounts' keys are public) and
keeps its state under a throwaway HOME (anvil writes to ~/.foundry/anvil/tmp) that is removed when
it stops. Two ways to run it:

- `AnvilProcess`: a context manager for tests and `fedmarket up`: a free port, a temporary HOME,
  stopped by pid and cleaned up on exit, whatever happens;
- `start_daemon` / `stop_daemon` / `daemon_status` (`fedmarket chain start|stop|status`): a
  detached anvil whose pid and URL are kept in the data dir (chain/anvil.pid, chain/anvil.json).

`dev_accounts(w3)` gives the signing accounts of a dev chain: anvil's (derived from its well-known
mnemonic) or the embedded chain's (eth-tester's keys). Their keys are public knowledge: never use
them on a real network. This module never prints or logs a private key.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmarket.chain.protocol import ANVIL_CHAIN_ID as ANVIL_CHAIN_ID  # its home is protocol; importable here too
from fedmarket.errors import FedmarketError
from fedmarket.files import atomic_write
from fedmarket.paths import data_dir, repo_root

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

HOST = "127.0.0.1"
DEFAULT_PORT = 8545
DEFAULT_ACCOUNTS = 10
DEFAULT_BALANCE_ETH = 10_000
DEV_MNEMONIC = "test test test test test test test test test test test junk"
"""anvil's / hardhat's default mnemonic; accounts at m/44'/60'/0'/0/i."""
DERIVATION_PATH = "m/44'/60'/0'/0/{index}"
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
HOME_PREFIX = "fedmarket-anvil-"


class AnvilError(FedmarketError):
    """anvil is missing, cannot start, or does not answer."""


def anvil_binary() -> Path:
    """The anvil executable: node_modules/@foundry-rs/anvil-<os>-<arch>/bin/anvil, else `anvil` on PATH."""
    system = platform.system().lower()
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower(), platform.machine().lower())
    candidate = repo_root() / "node_modules" / "@foundry-rs" / f"anvil-{system}-{machine}" / "bin" / "anvil"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise AnvilError(f"anvil is not installed ({candidate} is missing): run scripts/setup.sh")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


def rpc_request(url: str, method: str, params: list[Any] | None = None, *, timeout: float = 2.0) -> Any:
    """One JSON-RPC request with the standard library (no web3 needed); returns `result`."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - our own 127.0.0.1 URL
        reply = json.loads(response.read())
    if "error" in reply:
        raise AnvilError(f"{method} failed at {url}: {reply['error']}")
    return reply["result"]


def wait_until_ready(url: str, process: subprocess.Popen[bytes] | None = None, *, timeout: float = READY_TIMEOUT_S, log: Path | None = None) -> int:
    """Poll eth_chainId until the node answers; return the chain id."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return int(rpc_request(url, "eth_chainId", timeout=1.0), 16)
        except (OSError, urllib.error.URLError, ValueError, AnvilError):
            pass
        if process is not None and process.poll() is not None:
            raise AnvilError(f"anvil exited with code {process.returncode} before answering at {url}{_log_tail(log)}")
        if time.monotonic() > deadline:
            raise AnvilError(f"anvil did not answer at {url} within {timeout:.0f} s{_log_tail(log)}")
        time.sleep(0.05)


def _log_tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return (": " + " | ".join(lines[-3:])) if lines else ""


def _command(port: int, accounts: int, balance_eth: int, chain_id: int | None, block_time: float | None, mixed_mining: bool = False) -> list[str]:
    """anvil's command line. `block_time` alone: interval mining only (a transaction waits for the
    next block); with `mixed_mining` too: every transaction is mined at once AND an idle chain
    still gets a block every `block_time` seconds (anvil 1.7.1: --mixed-mining --block-time N), so
    block timestamps, and so the phases the contract derives from them, advance on their own."""
    if mixed_mining and block_time is None:
        raise AnvilError("mixed mining needs a block time (interval mining is half of it)")
    if block_time is not None and block_time <= 0:
        raise AnvilError(f"a block time is a positive number of seconds, not {block_time}")
    if accounts < 1:
        raise AnvilError(f"anvil needs at least one account, not {accounts}")
    if balance_eth < 0:
        raise AnvilError(f"a negative balance makes no sense: {balance_eth}")
    command = [
        str(anvil_binary()),
        "--host", HOST,
        "--port", str(port),
        "--accounts", str(accounts),
        "--balance", str(balance_eth),
        "--mnemonic", DEV_MNEMONIC,
        "--color", "never",
    ]  # fmt: skip
    if chain_id is not None:
        command += ["--chain-id", str(chain_id)]
    if block_time is not None:
        command += ["--block-time", f"{block_time:g}" if isinstance(block_time, float) else str(block_time)]
    if mixed_mining:
        command += ["--mixed-mining"]
    return command


def _spawn(command: list[str], home: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HOME": str(home), "NO_COLOR": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home,
            start_new_session=True,  # a Ctrl-C in the terminal that started it does not reach it
        )


def _is_anvil(pid: int) -> bool:
    """True when `pid` is alive and is an anvil process (guards against a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (macOS): trust the pid file
    return b"anvil" in cmdline.split(b"\0", 1)[0]


def _terminate(pid: int, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL after `timeout`; returns once the process is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while _alive(pid):
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie that is not our child counts as gone
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True


def _remove_home(home: Path) -> None:
    if home.name.startswith(HOME_PREFIX):
        shutil.rmtree(home, ignore_errors=True)


class AnvilProcess:
    """A private anvil for the length of a `with` block: free port, temporary HOME, stopped by pid.

    with AnvilProcess(accounts=5) as anvil:
        w3 = anvil.web3()
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        accounts: int = DEFAULT_ACCOUNTS,
        balance_eth: int = DEFAULT_BALANCE_ETH,
        chain_id: int | None = None,
        block_time: float | None = None,
        mixed_mining: bool = False,
    ) -> None:
        """`block_time` (seconds): interval mining; with `mixed_mining` a transaction is still
        mined at once and the interval blocks come on top (chain time moves while nobody sends)."""
        self.port = port
        self.accounts = accounts
        self.balance_eth = balance_eth
        self.chain_id = chain_id
        self.block_time = block_time
        self.mixed_mining = mixed_mining
        self.process: subprocess.Popen[bytes] | None = None
        self.home: Path | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise AnvilError("anvil is not started")
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise AnvilError("anvil is not started")
        return self.process.pid

    @property
    def log(self) -> Path:
        if self.home is None:
            raise AnvilError("anvil is not started")
        return self.home / "anvil.log"

    def start(self) -> AnvilProcess:
        if self.process is not None:
            raise AnvilError(f"this anvil already runs (pid {self.process.pid})")
        if self.port is None:
            self.port = free_port()
        elif port_in_use(self.port):
            raise AnvilError(f"port {self.port} on {HOST} is already in use")
        command = _command(self.port, self.accounts, self.balance_eth, self.chain_id, self.block_time, self.mixed_mining)
        self.home = Path(tempfile.mkdtemp(prefix=HOME_PREFIX))
        try:
            self.process = _spawn(command, self.home, self.log)
            self.chain_id = wait_until_ready(self.url, self.process, log=self.log)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop anvil (by its pid) and remove its HOME; safe to call twice."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            _terminate(process.pid)
            process.wait()
        if self.home is not None:
            _remove_home(self.home)
            self.home = None

    def web3(self, *, timeout: float = 30.0) -> Web3:
        # Imported here (as in dev_accounts): web3 costs ~1.2 s to import, and `fedmarket chain
        # start|stop|status`, this module's other users, need none of it.
        from fedmarket.chain.rpc import connect

        return connect(self.url, timeout=timeout)

    def __enter__(self) -> AnvilProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:  # last resort: never leave an anvil behind
        try:
            self.stop()
        except Exception:  # noqa: BLE001
            pass


# ----------------------------------------------------------------------------- detached (CLI)


@dataclass(frozen=True)
class DaemonInfo:
    """What `fedmarket chain start` records about its detached anvil."""

    pid: int
    url: str
    port: int
    chain_id: int
    accounts: int
    balance_eth: int
    home: str
    log: str
    started_at: float


def chain_dir() -> Path:
    path = data_dir() / "chain"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pid_file() -> Path:
    return chain_dir() / "anvil.pid"


def info_file() -> Path:
    return chain_dir() / "anvil.json"


def _read_daemon() -> DaemonInfo | None:
    try:
        pid = int(pid_file().read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        data = json.loads(info_file().read_text())
        info = DaemonInfo(**data)
    except (OSError, ValueError, TypeError):
        return DaemonInfo(pid=pid, url="", port=0, chain_id=0, accounts=0, balance_eth=0, home="", log="", started_at=0.0)
    return info if info.pid == pid else DaemonInfo(**{**asdict(info), "pid": pid})


def _clear_daemon(info: DaemonInfo | None) -> None:
    pid_file().unlink(missing_ok=True)
    info_file().unlink(missing_ok=True)
    if info is not None and info.home:
        _remove_home(Path(info.home))


def start_daemon(port: int = DEFAULT_PORT, accounts: int = DEFAULT_ACCOUNTS, balance_eth: int = DEFAULT_BALANCE_ETH) -> DaemonInfo:
    """Start a detached anvil on 127.0.0.1:`port`, record its pid in the data dir, wait until it answers."""
    running = _read_daemon()
    if running is not None:
        if _is_anvil(running.pid):
            raise AnvilError(f"anvil already runs (pid {running.pid}, {running.url or 'unknown URL'}): `fedmarket chain stop` first")
        _clear_daemon(running)  # stale pid file
    if port_in_use(port):
        raise AnvilError(f"port {port} on {HOST} is already in use (another node?): pick another with --port")
    command = _command(port, accounts, balance_eth, None, None)
    home = Path(tempfile.mkdtemp(prefix=HOME_PREFIX))
    log = chain_dir() / "anvil.log"
    log.write_bytes(b"")
    process = _spawn(command, home, log)
    url = f"http://{HOST}:{port}"
    try:
        chain_id = wait_until_ready(url, process, log=log)
    except BaseException:
        if process.poll() is None:
            _terminate(process.pid)
        _remove_home(home)
        raise
    info = DaemonInfo(
        pid=process.pid, url=url, port=port, chain_id=chain_id, accounts=accounts, balance_eth=balance_eth,
        home=str(home), log=str(log), started_at=time.time(),
    )  # fmt: skip
    atomic_write(info_file(), json.dumps(asdict(info), indent=2) + "\n")
    atomic_write(pid_file(), f"{process.pid}\n")
    return info


def stop_daemon() -> DaemonInfo | None:
    """Stop the recorded anvil by its pid and remove its state; None when none was running."""
    info = _read_daemon()
    if info is None:
        return None
    alive = _is_anvil(info.pid)
    if alive:
        _terminate(info.pid)
    _clear_daemon(info)
    return info if alive else None


def recorded_url() -> str | None:
    """The URL of the anvil `fedmarket chain start` runs (from the data dir's record), or None
    when none runs: so that commands find a chain started on any --port."""
    info = _read_daemon()
    if info is None or not info.url or not _is_anvil(info.pid):
        return None
    return info.url


def daemon_status() -> dict[str, Any]:
    """{running, pid, url, chain_id, block, accounts, ...} of the recorded anvil."""
    info = _read_daemon()
    if info is None:
        return {"running": False}
    if not _is_anvil(info.pid):
        _clear_daemon(info)
        return {"running": False, "stale_pid": info.pid}
    status: dict[str, Any] = {"running": True, **asdict(info)}
    try:
        status["chain_id"] = int(rpc_request(info.url, "eth_chainId"), 16)
        status["block"] = int(rpc_request(info.url, "eth_blockNumber"), 16)
        status["answering"] = True
    except (OSError, urllib.error.URLError, ValueError, AnvilError):
        status["answering"] = False
    return status


# ----------------------------------------------------------------------------- dev accounts


@lru_cache(maxsize=256)
def _mnemonic_account(index: int, mnemonic: str = DEV_MNEMONIC) -> LocalAccount:
    from eth_account import Account  # heavy: see AnvilProcess.web3

    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(mnemonic, account_path=DERIVATION_PATH.format(index=index))


def mnemonic_accounts(count: int, mnemonic: str = DEV_MNEMONIC) -> list[LocalAccount]:
    """The first `count` accounts of `mnemonic` (anvil's default when not given)."""
    return [_mnemonic_account(i, mnemonic) for i in range(count)]


def dev_accounts(w3: Web3) -> list[LocalAccount]:
    """The signing dev accounts of the chain behind `w3`, in `w3.eth.accounts` order.

    Embedded chain: eth-tester's keys. anvil / hardhat: derived from the default dev mnemonic and
    checked against the node's accounts. Any other chain: FedmarketError.
    """
    # Imported here: web3 and eth-account are heavy (see AnvilProcess.web3).
    from eth_account import Account

    from fedmarket.chain.embedded import dev_private_keys, is_embedded
    from fedmarket.chain.rpc import rpc_errors

    if is_embedded(w3):
        return [Account.from_key(key) for key in dev_private_keys(w3)]
    with rpc_errors(w3):
        addresses = list(w3.eth.accounts)
        chain_id = int(w3.eth.chain_id)
    if not addresses:
        raise FedmarketError(f"chain {chain_id} exposes no dev accounts (not a dev node?)")
    derived = mnemonic_accounts(len(addresses))
    if [a.address for a in derived] != [str(a) for a in addresses]:
        raise FedmarketError(f"the accounts of chain {chain_id} are not the default dev mnemonic's: use keystores (`fedmarket wallet`)")
    return derived
