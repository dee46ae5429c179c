"""User code never runs on the engine thread: done-callbacks (of jobs, arrays, gather and
the executor's futures) and the unpickling of results run elsewhere, so a callback may
submit a job or wait for one, as with the standard library's executors."""

from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Any

import pytest

import slurm_magics as sm

pytestmark = pytest.mark.cluster

ENGINE = "slurm_magics-engine"
REBUILT_ON: list[str] = []
MODULE = __name__


@sm.task(memory="100M", time=5)
def square(x: int) -> int:
    return x * x


def sleep_then(seconds: float, value: object) -> object:
    time.sleep(seconds)
    return value


def _rebuilt() -> str:
    # Shipped by value, this copy has globals of its own: note the thread in this module.
    sys.modules[MODULE].REBUILT_ON.append(threading.current_thread().name)
    return "rebuilt"


class RebuiltByUserCode:
    """Unpickling it calls ``_rebuilt`` on the submitting side: the user's code."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt, ())


def make_probe() -> RebuiltByUserCode:
    return RebuiltByUserCode()


def test_submitting_from_a_done_callback_works(cluster: sm.Cluster) -> None:
    second: queue.Queue[Any] = queue.Queue()

    def submit_next(future: Any) -> None:
        try:
            second.put(square(future.result() + 1))
        except BaseException as error:  # the test reports it, not concurrent.futures' log
            second.put(error)

    first = square(4)
    first.add_done_callback(submit_next)
    follow_up = second.get(timeout=120)
    assert isinstance(follow_up, sm.Job), follow_up
    assert follow_up.result(timeout=120) == 17 * 17
    # Added after the end, a callback runs at once, on the caller's thread.
    late: list[str] = []
    first.add_done_callback(lambda _: late.append(threading.current_thread().name))
    assert late == [threading.current_thread().name]


def test_no_callback_runs_on_the_engine_thread(cluster: sm.Cluster) -> None:
    names: queue.Queue[tuple[str, str]] = queue.Queue()

    def note(what: str) -> Any:
        return lambda _: names.put((what, threading.current_thread().name))

    job = square(2)
    arr = square.map([1, 2, 3])
    both = sm.gather(job, arr)
    with sm.SlurmExecutor(cluster=cluster, memory="100M") as executor:
        submitted = executor.submit(pow, 2, 5)
        for what, future in (
            ("job", job),
            ("array", arr),
            ("gather", both),
            ("executor", submitted),
        ):
            future.add_done_callback(note(what))
        assert submitted.result(timeout=120) == 32
    assert both.result(timeout=120) == [4, [1, 4, 9]]
    seen = dict(names.get(timeout=30) for _ in range(4))
    assert set(seen) == {"job", "array", "gather", "executor"}
    assert ENGINE not in seen.values(), seen


def test_a_blocking_callback_does_not_stall_other_jobs(cluster: sm.Cluster) -> None:
    slow = cluster.submit(sleep_then, 6, "slow")
    waited: queue.Queue[Any] = queue.Queue()
    quick = cluster.submit(sleep_then, 0, "quick")
    # This callback blocks until `slow` ends: on the engine thread, nothing would end.
    quick.add_done_callback(lambda _: waited.put(slow.result(timeout=120)))
    assert quick.result(timeout=120) == "quick"
    assert waited.get(timeout=120) == "slow"


def test_results_are_unpickled_off_the_engine_thread(cluster: sm.Cluster) -> None:
    REBUILT_ON.clear()
    assert cluster.submit(make_probe).result(timeout=120) == "rebuilt"
    assert REBUILT_ON and ENGINE not in REBUILT_ON, REBUILT_ON
