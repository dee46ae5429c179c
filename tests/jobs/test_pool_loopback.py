"""The pool's parts for real on loopback: listener, dispatcher, worker processes, relay."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from slurm_magics.core import pool_protocol, pool_relay
from slurm_magics.core.pool_protocol import Kind

from .pool_harness import loopback_pool, pool_folder, start_worker


def square(x: int) -> int:
    return x * x


def chatty(x: Any) -> Any:
    print(f"out {x}")
    print(f"err {x}", file=sys.stderr)
    if x == "boom":
        raise KeyError("no such thing")
    if isinstance(x, float):
        time.sleep(x)
    return x


def pid_of(worker: str) -> int:
    return int(worker.rsplit(":", 1)[1].split("#", maxsplit=1)[0])


def test_results_in_order_errors_output_and_one_function_per_worker(tmp_path: Path) -> None:
    async def main() -> None:
        async with loopback_pool(tmp_path, 4) as pool:
            function = pool.function(square)
            started = time.perf_counter()
            futures = pool.submit(function, [(i,) for i in range(3000)])
            results = await asyncio.gather(*futures)
            took = time.perf_counter() - started
            assert [r[1] for r in results] == [i * i for i in range(3000)]
            assert {r[0] for r in results} == {"ok"}
            assert len({r[4] for r in results}) > 1  # spread over the workers
            print(f"loopback: {3000 / took:.0f} tasks/s with 4 workers")
            states = list(pool.dispatcher.workers.values())
            assert all(state.functions == {function} for state in states)

            noisy = pool.function(chatty)
            ok, failed = await asyncio.gather(*pool.submit(noisy, [("fine",), ("boom",)]))
            assert ok[:4] == ("ok", "fine", b"out fine\n", b"err fine\n")
            assert failed[0] == "error"
            assert isinstance(failed[1], KeyError)
            assert b"KeyError: 'no such thing'" in failed[3]  # the traceback, on its stderr
            assert pool.dispatcher.pending == 0

    asyncio.run(main())


def test_a_worker_killed_mid_task_reruns_it_once_then_fails_naming_the_worker(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with loopback_pool(tmp_path, 2) as pool:
            function = pool.function(chatty)
            (slow,) = pool.submit(function, [(30.0,)], retries=1)
            await _until(lambda: pool.recorder.running)
            first = next(iter(pool.recorder.running.values()))
            os.kill(pid_of(first), signal.SIGKILL)
            # it runs again on the other worker: kill that one too
            await _until(lambda: next(iter(pool.recorder.running.values())) != first)
            second = next(iter(pool.recorder.running.values()))
            assert second != first
            killed = time.monotonic()
            os.kill(pid_of(second), signal.SIGKILL)
            outcome = await asyncio.wait_for(slow, 5)
            assert outcome[0] == "lost" and outcome[1] == second, outcome
            assert time.monotonic() - killed < 5
            assert pool.dispatcher.workers == {}

    asyncio.run(main())


def test_cancel_interrupts_the_running_task_and_the_worker_comes_back(tmp_path: Path) -> None:
    async def main() -> None:
        async with loopback_pool(tmp_path, 1) as pool:
            function = pool.function(chatty)
            slow, after = pool.submit(function, [(60.0,), ("next",)])
            await _until(lambda: pool.recorder.running)
            await asyncio.sleep(0.5)  # the worker has started it by now
            (task,) = [t for s in pool.dispatcher.workers.values() for t in s.inflight.values()][:1]
            pool.dispatcher.cancel(task)
            outcome = await asyncio.wait_for(after, 10)  # re-queued, run by the new process
            assert outcome[:2] == ("ok", "next")
            assert outcome[4].endswith("#1"), outcome[4]  # the same worker, re-executed
            assert not slow.done()  # a cancelled task gets no result
            assert pool.processes[0].poll() is None

    asyncio.run(main())


class Marker:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def test_a_connection_without_the_secret_is_refused_and_nothing_unpickled(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "unpickled"
    import pickle

    poison = pickle.dumps(Marker(str(marker)))

    async def main() -> None:
        async with loopback_pool(tmp_path, 1) as pool:
            host, port = pool.listener.address
            # 1: a wrong answer, then a task batch and results as if authenticated
            reader, writer = await asyncio.open_connection(host, port)
            frames = pool_protocol.FrameReader()
            kind, _ = (await _frames(reader, frames))[0]
            assert kind == Kind.CHALLENGE
            writer.write(pool_protocol.encode(Kind.ANSWER, poison))
            writer.write(
                pool_protocol.encode(Kind.RESULTS, pool_protocol.pack_records([(1, [poison])]))
            )
            kind, _ = (await _frames(reader, frames))[0]
            assert kind == Kind.FAILURE
            assert await reader.read() == b""  # closed
            writer.close()
            # 2: straight in with a big pickled frame: cut off by its header
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(pool_protocol.encode(Kind.RESULTS, poison * 1000))
            await reader.read()
            await _until(lambda: pool.listener.refused == 2)
            assert len(pool.dispatcher.workers) == 1  # only the real worker
            writer.close()
            await writer.wait_closed()

    asyncio.run(main())
    assert not marker.exists()


def test_a_worker_refuses_a_listener_without_the_secret(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    import pickle

    poison = pickle.dumps(Marker(str(marker)))

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = pool_protocol.FrameReader()
        writer.write(pool_protocol.encode(Kind.CHALLENGE, pool_protocol.new_challenge()))
        await _frames(reader, frames)  # the worker's answer, ignored
        writer.write(pool_protocol.encode(Kind.WELCOME))
        await _frames(reader, frames)  # the worker's challenge: cannot answer it
        writer.write(pool_protocol.encode(Kind.ANSWER, b"\0" * 32))
        writer.write(pool_protocol.encode(Kind.FUNCTION, pool_protocol.pack_function(1, poison)))
        record = (1, [pool_protocol.pack_function(1, poison)])
        writer.write(pool_protocol.encode(Kind.TASKS, pool_protocol.pack_records([record])))
        await reader.read()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(impostor, "127.0.0.1", 0)
        address = server.sockets[0].getsockname()[:2]
        folder = pool_folder(tmp_path, address, pool_protocol.new_secret())
        process = start_worker(folder)
        code = await asyncio.to_thread(process.wait, 20)
        _, err = process.communicate()
        assert code == 3
        assert b"does not know the pool's secret" in err
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    assert not marker.exists()


def test_workers_exit_when_the_client_falls_silent_or_goes_away(tmp_path: Path) -> None:
    async def main() -> None:
        # silent: connected and authenticated, then no heartbeat ever comes
        async with loopback_pool(
            tmp_path, 1, heartbeat=3600, heartbeat_timeout=1.0, connect_timeout=1
        ) as pool:
            code = await asyncio.to_thread(pool.processes[0].wait, 10)
            assert code == 3
            assert b"no word from the client" in pool.processes[0].stderr.read()  # type: ignore[union-attr]
        # gone: the listener closes; the worker tries again for connect_timeout, then exits
        async with loopback_pool(tmp_path, 1, connect_timeout=1) as pool:
            await pool.listener.close()
            for state in list(pool.dispatcher.workers.values()):
                state.conn.abort()
            started = time.monotonic()
            code = await asyncio.to_thread(pool.processes[0].wait, 15)
            assert code == 3 and time.monotonic() - started < 10

    asyncio.run(main())


def test_the_relay_splices_workers_to_the_listener_and_ends_with_its_stdin(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with loopback_pool(tmp_path, 1) as pool:
            relay = subprocess.Popen(  # noqa: ASYNC220  (started once, read in a thread)
                [sys.executable, pool_relay.__file__, "auto", *map(str, pool.listener.address)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": ""},
            )
            assert relay.stdout is not None and relay.stdin is not None
            line = (await asyncio.to_thread(relay.stdout.readline)).decode().split()
            assert line[0] == "relay"
            folder = pool_folder(
                tmp_path, (line[1], int(line[2])), (pool.folder / "secret").read_bytes()
            )
            pool.processes.append(start_worker(folder))
            await asyncio.wait_for(pool.dispatcher.wait_workers(2), 20)
            function = pool.function(square)
            results = await asyncio.gather(*pool.submit(function, [(i,) for i in range(200)]))
            assert [r[1] for r in results] == [i * i for i in range(200)]
            assert len({r[4] for r in results}) == 2  # the relayed worker took tasks too
            relay.stdin.close()
            assert await asyncio.to_thread(relay.wait, 10) == 0
            relay.stdout.close()
            await _until(lambda: len(pool.dispatcher.workers) == 1)  # the relayed one left

    asyncio.run(main())


async def _frames(
    reader: asyncio.StreamReader, frames: pool_protocol.FrameReader
) -> list[pool_protocol.Frame]:
    while True:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("closed")
        found = frames.feed(data)
        if found:
            return found


async def _until(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.02)
