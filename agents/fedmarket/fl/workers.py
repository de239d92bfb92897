"""The clients of a round trained in parallel worker processes, with the sequential loop's results.

`ClientWorkers` starts N processes (`python -m fedmarket.fl.workers`) once per run and reuses
them every round. Each runs fl.training.train_local with one torch thread, so N workers use N
cores without oversubscribing them, and the result of a client is bit for bit the one the
sequential loop gives when it too runs with one thread (what the market's trainers run).

Nothing crosses a process boundary as a pickle. The pooled data set, the global model and one
result slot per client of the round live in files under /dev/shm (shared memory; a temporary
folder where there is none), written by one side and mapped read-only by the other as numpy
arrays: the data once per run, the global model's flat float32 vector (fl.params.flatten, sorted
key order) once per round. Over each worker's stdin and stdout go only small messages: a JSON
header (length-prefixed) and, for a job, the client's sample indices as raw int64 bytes.

The aggregate never depends on which worker finishes first: job i writes slot i, and the
caller gets the results in job order, whatever the order they arrived in.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from fedmarket.errors import FedmarketError

HEADER = struct.Struct("<II")  # JSON length, payload length
SHM_ROOT = Path("/dev/shm")
STOP_GRACE_S = 0.2


@dataclass(frozen=True)
class Job:
    """One client's local training: its sample indices into the pooled data and its config."""

    indices: np.ndarray
    config: Any  # fl.learning.TrainConfig (its fields go over the pipe as JSON)


def send(stream: BinaryIO, header: dict[str, Any], payload: bytes = b"") -> None:
    body = json.dumps(header).encode()
    stream.write(HEADER.pack(len(body), len(payload)) + body + payload)
    stream.flush()


def receive(stream: BinaryIO) -> tuple[dict[str, Any], bytes] | None:
    """One message, or None at the end of the stream."""
    head = _read_exactly(stream, HEADER.size)
    if head is None:
        return None
    body_len, payload_len = HEADER.unpack(head)
    body = _read_exactly(stream, body_len)
    payload = _read_exactly(stream, payload_len) if payload_len else b""
    if body is None or payload is None:
        raise FedmarketError("a worker's message was cut short")
    return json.loads(body), payload


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _shared_folder() -> Path:
    root = SHM_ROOT if SHM_ROOT.is_dir() and os.access(SHM_ROOT, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="fedmarket-workers-", dir=root))


@dataclass(frozen=True)
class _Layout:
    """Where the shared arrays are and what they hold; sent to every worker as its setup message."""

    folder: str
    x_shape: tuple[int, ...]
    y_dtype: str
    arch: str
    input_shape: tuple[int, ...]
    num_outputs: int
    num_params: int
    slots: int

    def array(self, name: str, mode: str) -> np.memmap:
        shapes = {"x": (self.x_shape, "float32"), "y": ((self.x_shape[0],), self.y_dtype)}
        shapes["global"] = ((self.num_params,), "float32")
        shapes["results"] = ((self.slots, self.num_params), "float32")
        shape, dtype = shapes[name]
        return np.memmap(Path(self.folder) / f"{name}.bin", dtype=dtype, mode=mode, shape=shape)


class ClientWorkers:
    """N worker processes that train the clients of a round; use as a context manager.

    `slots` bounds the clients of one `train` call (the clients sampled per round): the results
    of a round are held in `slots` flat vectors, never more.
    """

    def __init__(self, workers: int, spec: Any, x: np.ndarray, y: np.ndarray, slots: int) -> None:
        from fedmarket.fl.params import num_parameters

        if workers < 1 or slots < 1:
            raise FedmarketError(f"need at least one worker and one slot, got {workers} workers and {slots} slots")
        self._folder = _shared_folder()
        self._procs: list[subprocess.Popen[bytes]] = []
        try:
            y_array = np.ascontiguousarray(y)
            self.layout = _Layout(
                str(self._folder), tuple(int(d) for d in x.shape), str(y_array.dtype), spec.arch, tuple(spec.input_shape),
                int(spec.num_outputs), num_parameters(spec.init_state(0)), int(slots),
            )  # fmt: skip
            for name, values in (("x", np.asarray(x, dtype=np.float32)), ("y", y_array)):
                shared = self.layout.array(name, "w+")
                shared[:] = values
                shared.flush()
            self.layout.array("global", "w+").flush()
            self._results = self.layout.array("results", "w+")
            self._global = self.layout.array("global", "r+")
            env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            for _ in range(workers):
                proc = subprocess.Popen([sys.executable, "-m", "fedmarket.fl.workers"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
                self._procs.append(proc)
                send(proc.stdin, asdict(self.layout))  # type: ignore[arg-type]
            for proc in self._procs:  # each answers once it has torch loaded and the data mapped
                self._answer(proc)
            self._version = 0
        except BaseException:
            self.close()
            raise

    @property
    def workers(self) -> int:
        return len(self._procs)

    def __enter__(self) -> ClientWorkers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def train(self, global_state: Any, jobs: Sequence[Job]) -> list[tuple[dict[str, Any], int, float]]:
        """Every job trained from `global_state`: (state, samples, train loss) per job, in job order."""
        from fedmarket.fl.params import canonical, flatten, unflatten

        if len(jobs) > self.layout.slots:
            raise FedmarketError(f"{len(jobs)} clients in one round, but the workers hold results for {self.layout.slots}")
        like = canonical(global_state)
        self._global[:] = flatten(like).numpy()
        self._global.flush()
        self._version += 1
        # Largest jobs first, each worker one job at a time: the round ends when the last worker
        # does, so the long jobs must not come last. Which worker runs which job is irrelevant.
        pending = sorted(range(len(jobs)), key=lambda i: -len(jobs[i].indices))
        answers: dict[int, tuple[int, float]] = {}
        selector = selectors.DefaultSelector()
        try:
            for proc in self._procs:
                selector.register(proc.stdout, selectors.EVENT_READ, proc)  # type: ignore[arg-type]
                if pending:
                    self._dispatch(proc, pending.pop(0), jobs)
            while len(answers) < len(jobs):
                for key, _ in selector.select():
                    proc = key.data
                    slot, samples, loss = self._answer(proc)
                    answers[slot] = (samples, loss)
                    if pending:
                        self._dispatch(proc, pending.pop(0), jobs)
        finally:
            selector.close()
        return [(unflatten(torch_from(self._results[i]), like), *answers[i]) for i in range(len(jobs))]

    def _dispatch(self, proc: subprocess.Popen[bytes], slot: int, jobs: Sequence[Job]) -> None:
        job = jobs[slot]
        header = {"op": "train", "slot": slot, "version": self._version, "config": job.config.to_dict()}
        try:
            send(proc.stdin, header, np.ascontiguousarray(job.indices, dtype=np.int64).tobytes())  # type: ignore[arg-type]
        except BrokenPipeError:
            raise FedmarketError(f"worker process {proc.pid} has stopped (exit code {proc.poll()})") from None

    def _answer(self, proc: subprocess.Popen[bytes]) -> tuple[int, int, float]:
        message = receive(proc.stdout)  # type: ignore[arg-type]
        if message is None:
            raise FedmarketError(f"worker process {proc.pid} has stopped (exit code {proc.wait()}); its error is above")
        header, _ = message
        if "error" in header:
            raise FedmarketError(f"a worker failed to train client slot {header.get('slot')}: {header['error']}")
        if header.get("ready"):
            return -1, 0, 0.0
        return int(header["slot"]), int(header["samples"]), float(header["loss"])

    def close(self) -> None:
        for proc in self._procs:
            try:
                send(proc.stdin, {"op": "stop"})  # type: ignore[arg-type]
                proc.stdin.close()  # type: ignore[union-attr]
            except (BrokenPipeError, ValueError, OSError):
                pass
        for proc in self._procs:
            try:
                # A worker holds nothing worth saving once told to stop (the parent owns the
                # shared files): don't wait the second or so that torch's teardown takes.
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs = []
        shutil.rmtree(self._folder, ignore_errors=True)


def torch_from(values: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.array(values, dtype=np.float32))


# ------------------------------------------------------------------------------ the worker side


def serve(inbox: BinaryIO, outbox: BinaryIO) -> None:
    """A worker's loop: set up from the first message, then train jobs until "stop" or the end."""
    import torch

    from fedmarket.fl.learning import TrainConfig
    from fedmarket.fl.models import ModelSpec
    from fedmarket.fl.params import flatten, unflatten
    from fedmarket.fl.training import train_local

    torch.set_num_threads(1)
    first = receive(inbox)
    if first is None:
        return
    setup = first[0]
    layout = _Layout(**{**setup, "x_shape": tuple(setup["x_shape"]), "input_shape": tuple(setup["input_shape"])})
    x, y = layout.array("x", "r"), layout.array("y", "r")
    shared_global, results = layout.array("global", "r"), layout.array("results", "r+")
    spec = ModelSpec(layout.arch, layout.input_shape, layout.num_outputs)
    model = spec.build()
    like = {k: v.detach() for k, v in model.state_dict().items()}
    version, global_state = None, None
    send(outbox, {"ready": True})
    while (message := receive(inbox)) is not None:
        header, payload = message
        if header["op"] == "stop":
            return
        slot = header["slot"]
        try:
            if header["version"] != version:
                version, global_state = header["version"], unflatten(torch_from(shared_global), like)
            indices = np.frombuffer(payload, dtype=np.int64)
            state, samples, loss = train_local(model, global_state, x[indices], y[indices], TrainConfig(**header["config"]))
            results[slot] = flatten(state).numpy()
            send(outbox, {"slot": slot, "samples": samples, "loss": loss})
        except Exception as exc:  # one line back to the parent, which raises it as a FedmarketError
            send(outbox, {"slot": slot, "error": f"{type(exc).__name__}: {exc}"})


def main() -> None:
    # Messages own the real stdout; anything a library prints goes to stderr instead.
    outbox = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, outbox)


if __name__ == "__main__":
    main()
