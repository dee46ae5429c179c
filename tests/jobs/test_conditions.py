"""Futures on the light condition behave as the standard library's, and are small."""

from __future__ import annotations

import concurrent.futures
import gc
import threading
import time

import pytest

from slurm_magics.jobs.futures import AwaitableFuture


def test_result_waits_for_its_own_future_only() -> None:
    first: AwaitableFuture[int] = AwaitableFuture()
    second: AwaitableFuture[int] = AwaitableFuture()
    got: list[object] = []

    def wait_second() -> None:
        try:
            got.append(second.result(timeout=5))
        except BaseException as error:
            got.append(error)

    waiter = threading.Thread(target=wait_second)
    waiter.start()
    time.sleep(0.2)
    first.set_result(1)  # must not wake the waiter of `second` (it would raise TimeoutError)
    time.sleep(0.2)
    assert got == []
    second.set_result(2)
    waiter.join(5)
    assert got == [2]


def test_timeouts_wait_and_as_completed_work_as_with_standard_futures() -> None:
    future: AwaitableFuture[int] = AwaitableFuture()
    start = time.monotonic()
    with pytest.raises(concurrent.futures.TimeoutError):
        future.result(timeout=0.3)
    assert 0.25 < time.monotonic() - start < 3
    futures: list[AwaitableFuture[int]] = [AwaitableFuture() for _ in range(5)]
    threading.Timer(0.2, futures[3].set_result, (3,)).start()
    done, pending = concurrent.futures.wait(futures, timeout=5, return_when="FIRST_COMPLETED")
    assert done == {futures[3]} and len(pending) == 4
    for index, future in enumerate(futures):
        if index != 3:
            threading.Timer(0.05 * index, future.set_result, (index,)).start()
    order = [f.result() for f in concurrent.futures.as_completed(futures, timeout=5)]
    assert sorted(order) == [0, 1, 2, 3, 4]
    cancelled: AwaitableFuture[int] = AwaitableFuture()
    assert cancelled.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        cancelled.result(timeout=1)


def test_a_future_costs_far_less_than_a_standard_one() -> None:
    def rss_kb() -> int:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

    n = 50_000
    gc.collect()
    before = rss_kb()
    ours = [AwaitableFuture[int]() for _ in range(n)]
    gc.collect()
    middle = rss_kb()
    theirs = [concurrent.futures.Future[int]() for _ in range(n)]
    gc.collect()
    after = rss_kb()
    assert len(ours) == len(theirs) == n
    assert (middle - before) * 3 < after - middle  # measured: ~0.3 KB vs ~1.1 KB each
