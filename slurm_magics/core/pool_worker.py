"""A pool worker: runs on a compute node, stdlib and cloudpickle only.

Copied into the pool's folder beside ``pool_protocol.py`` and started by the pool's batch
script as ``python pool_worker.py POOL_DIR``. ``POOL_DIR`` holds ``pool.json`` (where to
connect, heartbeat settings, the client's Python and cloudpickle versions) and ``secret``
(mode 0600). The worker connects, proves it knows the secret and makes the other side
prove it too (nothing is unpickled before both checks pass), then runs the tasks it is
sent one after another, in order, and streams their outcomes back in batches.

Two threads: the main one runs tasks; a reader takes messages (tasks, cancels,
heartbeats) as they come, sends heartbeats, and ends the process when the client has been
silent past the heartbeat timeout, so an allocation never outlives its client. A cancel of
the running task interrupts it by replacing the process image (``exec`` of itself: a fresh
interpreter in the same allocation, which connects again).
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import io
import json
import os
import socket
import struct
import sys
import threading
import time
import traceback
from typing import Any

try:
    from . import pool_protocol as protocol
    from . import runner
except ImportError:  # run as a script beside its copies of the protocol and runner modules
    protocol = importlib.import_module("pool_protocol")
    runner = importlib.import_module("runner")

__all__ = ["Worker", "main", "serve", "worker_name"]

Kind = protocol.Kind
OUTPUT_LIMIT = 1 << 20  # characters of a task's stdout/stderr sent back (its tail)
FLUSH_COUNT = 64  # results sent in one batch at most
FLUSH_DELAY = 0.005  # seconds a finished result may wait for others while tasks remain
TIMING = struct.Struct("!dd")  # a task's start and end, seconds since the epoch
GENERATION = "SLURM_MAGICS_POOL_GENERATION"  # how many times this worker re-executed


def worker_name() -> str:
    """Which worker this is: SLURM's id of its task, host and pid (e.g. "17_3@node1:4242")."""
    env = os.environ
    if "SLURM_ARRAY_JOB_ID" in env:
        job = f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '0')}"
    elif "SLURM_JOB_ID" in env:
        job = f"{env['SLURM_JOB_ID']}.{env.get('SLURM_PROCID', '0')}"
    else:
        job = "local"
    generation = env.get(GENERATION, "0")
    suffix = f"#{generation}" if generation != "0" else ""
    return f"{job}@{socket.gethostname().split('.')[0]}:{os.getpid()}{suffix}"


class _Tee(io.StringIO):
    """A task's captured stream (its tail is sent back with the result)."""


class Worker:
    """One connection to the pool's listener and the tasks it sends."""

    def __init__(
        self, settings: dict[str, Any], secret: bytes, pool_dir: str | None = None
    ) -> None:
        self.settings = settings
        self.pool_dir = pool_dir  # where pool.json says the address, re-read on each try
        self.secret = secret
        self.name = worker_name()
        self.sock: socket.socket | None = None
        self.queue: collections.deque[tuple[int, int, bytes]] = collections.deque()
        self.functions: dict[int, Any] = {}  # id -> unpickled function (or pickled bytes)
        self.running: int | None = None
        self.results: list[tuple[int, list[bytes]]] = []
        self.first_result = 0.0
        self.last_heard = time.monotonic()
        self.changed = threading.Condition()  # guards queue, running, functions
        self.send_lock = threading.Lock()  # guards the socket's sends and ``results``
        self.stopping = False
        self._frames: collections.deque[tuple[int, bytes]] = collections.deque()

    # -- connection --------------------------------------------------------------------
    def connect(self) -> None:
        """Connect (retrying while the listener may still be starting, or while the client
        replaces the SSH relay of a dropped connection: a new address) and authenticate."""
        deadline = time.monotonic() + float(self.settings.get("connect_timeout", 60))
        delay = 0.05
        while True:
            host, port = self._address()
            try:
                sock = socket.create_connection((host, port), timeout=10)
                break
            except OSError as error:
                if time.monotonic() > deadline:
                    raise ConnectionError(
                        f"cannot reach the pool at {host}:{port}: {error}"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.reader = protocol.FrameReader()
        self._authenticate()
        self.reader.authenticated()
        sock.settimeout(FLUSH_DELAY * 10)  # the reader wakes up to flush and beat
        hello = {"worker": self.name, "host": socket.gethostname(), "pid": os.getpid()}
        self._send(Kind.HELLO, json.dumps(hello).encode())

    def _address(self) -> tuple[str, int]:
        if self.pool_dir is not None:
            path = os.path.join(self.pool_dir, "pool.json")
            with contextlib.suppress(OSError, ValueError, KeyError), open(path) as stream:
                self.settings["address"] = json.load(stream)["address"]
        host, port = self.settings["address"]
        return str(host), int(port)

    def _receive(self) -> tuple[int, bytes]:
        assert self.sock is not None
        while True:
            frames = self._frames
            if frames:
                return frames.popleft()
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("the pool's listener closed the connection")
            self._frames.extend(self.reader.feed(data))

    def _authenticate(self) -> None:
        kind, challenge = self._receive()
        if kind != Kind.CHALLENGE:
            raise protocol.ProtocolError(f"expected a challenge, got kind {kind}")
        self._send(Kind.ANSWER, protocol.answer(self.secret, challenge, worker=True))
        kind, _ = self._receive()
        if kind != Kind.WELCOME:
            raise protocol.ProtocolError("the pool refused this worker's answer (wrong secret)")
        mine = protocol.new_challenge()
        self._send(Kind.CHALLENGE, mine)
        kind, response = self._receive()
        if kind != Kind.ANSWER or not protocol.check_answer(
            self.secret, mine, response, worker=False
        ):
            self._send(Kind.FAILURE)
            raise protocol.ProtocolError("the listener does not know the pool's secret")
        self._send(Kind.WELCOME)

    def _send(self, kind: int, body: bytes = b"") -> None:
        assert self.sock is not None
        with self.send_lock:
            self.sock.sendall(protocol.encode(kind, body))

    # -- the reader thread -------------------------------------------------------------
    def read_forever(self) -> None:
        """Take messages until the connection ends; then end or re-execute the process."""
        assert self.sock is not None
        heartbeat = float(self.settings.get("heartbeat", 5))
        timeout = float(self.settings.get("heartbeat_timeout", 30))
        last_sent = time.monotonic()
        try:
            while True:
                try:
                    kind, body = self._receive()
                except TimeoutError:
                    kind, body = -1, b""
                now = time.monotonic()
                if kind >= 0:
                    self.last_heard = now
                    self._handle(kind, body)
                    if self.stopping:
                        return
                if now - self.last_heard > timeout:
                    sys.stderr.write(
                        f"slurm_magics pool worker {self.name}: no word from the client for "
                        f"{now - self.last_heard:.0f} s; exiting\n"
                    )
                    self._exit(3)
                if self.results and now - self.first_result > FLUSH_DELAY:
                    self.flush()
                if now - last_sent >= heartbeat:
                    self._send(Kind.HEARTBEAT)
                    last_sent = now
        except (OSError, protocol.ProtocolError) as error:
            if self.stopping:
                self._exit(0)
            sys.stderr.write(f"slurm_magics pool worker {self.name}: {error}; reconnecting\n")
            self._restart()

    def _handle(self, kind: int, body: bytes) -> None:
        if kind == Kind.TASKS:
            tasks = []
            for task_id, parts in protocol.unpack_records(body):
                function_id, call = protocol.unpack_function(parts[0])
                tasks.append((task_id, function_id, call))
            with self.changed:
                self.queue.extend(tasks)
                self.changed.notify()
        elif kind == Kind.FUNCTION:
            function_id, pickled = protocol.unpack_function(body)
            with self.changed:
                self.functions[function_id] = pickled
        elif kind == Kind.CANCEL:
            self._cancel({task_id for task_id, _ in protocol.unpack_records(body)})
        elif kind == Kind.SHUTDOWN:  # the main thread returns once its task (if any) ends
            self._give_back()
            with self.changed:
                self.stopping = True
                self.changed.notify_all()
        elif kind != Kind.HEARTBEAT:
            raise protocol.ProtocolError(f"unexpected message kind {kind}")

    def _cancel(self, ids: set[int]) -> None:
        with self.changed:
            dropped = [task for task in self.queue if task[0] in ids]
            for task in dropped:
                self.queue.remove(task)
            interrupt = self.running in ids
        with self.send_lock:
            self.results.extend((task[0], []) for task in dropped)  # no parts: dropped
        if interrupt:  # the only way to stop any Python code: a fresh process image
            self._give_back()
            self._restart()
        else:
            self.flush()

    def _give_back(self) -> None:
        """Send finished results and hand back the tasks not started (before leaving)."""
        with self.changed:
            unstarted: list[protocol.Record] = [(task[0], []) for task in self.queue]
            self.queue.clear()
        self.flush()
        if unstarted:
            with contextlib.suppress(OSError):
                self._send(Kind.RELEASE, protocol.pack_records(unstarted))

    def _restart(self) -> None:
        with contextlib.suppress(OSError):
            sys.stdout.flush()
            sys.stderr.flush()
        os.environ[GENERATION] = str(int(os.environ.get(GENERATION, "0")) + 1)
        os.execv(sys.executable, [sys.executable, *sys.argv])  # noqa: S606

    def _exit(self, code: int) -> None:
        with contextlib.suppress(OSError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)

    # -- the main thread: run tasks in order -------------------------------------------
    def run_forever(self) -> None:
        """Run tasks as they arrive, until the listener says SHUTDOWN."""
        import cloudpickle  # noqa: PLC0415  (checked by check_versions first)

        while True:
            with self.changed:
                while not self.queue:
                    if self.stopping:
                        self.flush()
                        return
                    self.changed.wait()
                task = self.queue.popleft()
                self.running = task[0]
            task_id, function_id, call = task
            started, begun = time.monotonic(), time.time()
            outcome, out, err = self._run(function_id, call, cloudpickle)
            took = time.monotonic() - started
            timing = TIMING.pack(begun, begun + took)
            data = runner.encode_outcome(outcome, cloudpickle.dumps)
            with self.send_lock:
                if not self.results:
                    self.first_result = time.monotonic()
                self.results.append((task_id, [data, out, err, timing]))
            with self.changed:
                self.running = None
                idle = not self.queue
            # Results of quick tasks wait a moment for others (one message for many);
            # the reader thread sends any that waited FLUSH_DELAY.
            if (
                idle
                or took > FLUSH_DELAY / 5
                or len(self.results) >= FLUSH_COUNT
                or time.monotonic() - self.first_result > FLUSH_DELAY
            ):
                self.flush()

    def _run(self, function_id: int, call: bytes, cloudpickle: Any) -> tuple[Any, bytes, bytes]:
        out, err = _Tee(), _Tee()
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            function = self.functions[function_id]
            if isinstance(function, bytes):
                function = self.functions[function_id] = cloudpickle.loads(function)
            args, kwargs = runner.load_call(call)  # FileValue / FileArray data read here
            outcome: tuple[Any, ...] = ("ok", function(*args, **kwargs))
        except BaseException as error:  # everything, even SystemExit, is the task's result
            traceback.print_exc()
            outcome = runner.error_outcome(error)
        finally:
            sys.stdout, sys.stderr = saved
            runner.forget_loaded()
        tails = [
            stream.getvalue()[-OUTPUT_LIMIT:].encode(errors="replace") for stream in (out, err)
        ]
        return outcome, tails[0], tails[1]

    def flush(self) -> None:
        """Send the finished results not sent yet, in one message."""
        with self.send_lock:
            if not self.results or self.sock is None:
                return
            body = protocol.pack_records(self.results)
            self.results = []
            self.sock.sendall(protocol.encode(Kind.RESULTS, body))


def serve(pool_dir: str) -> int:
    """Connect to the pool described in ``pool_dir`` and run its tasks until told to stop.

    Returns the exit code: 0 after SHUTDOWN, 2 when this Python cannot read the client's
    pickles, 3 when the pool cannot be reached or refuses this worker.
    """
    with open(os.path.join(pool_dir, "pool.json"), encoding="utf-8") as stream:
        settings = json.load(stream)
    with open(os.path.join(pool_dir, "secret"), "rb") as stream:
        secret = stream.read()
    problem = runner.check_versions(settings)
    if problem is not None:
        sys.stderr.write(f"slurm_magics: {problem}\n")
        return 2
    worker = Worker(settings, secret, pool_dir)
    try:
        worker.connect()
    except (OSError, protocol.ProtocolError) as error:
        sys.stderr.write(f"slurm_magics pool worker {worker.name}: {error}\n")
        return 3
    reader = threading.Thread(target=worker.read_forever, name="pool-reader", daemon=True)
    reader.start()
    worker.run_forever()
    with contextlib.suppress(OSError):
        assert worker.sock is not None
        worker.sock.close()
    return 0


def main(argv: list[str]) -> int:
    """Entry point: ``pool_worker.py POOL_DIR``; returns the exit code."""
    if len(argv) != 2:
        sys.stderr.write("usage: pool_worker.py POOL_DIR\n")
        return 2
    return serve(argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
