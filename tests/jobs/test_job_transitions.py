"""A job's state and its future end together, whatever thread gets there first.

The poller's thread writes live states (PENDING/RUNNING) and ends jobs; the user's thread
cancels them. The end state is claimed atomically: a live update arriving after a cancel
(or a result) never makes an ended job look pending again, and of a cancel racing a result
exactly one wins, with a state that matches what the future raises or returns.
"""

from __future__ import annotations

import threading

from slurm_magics.core.states import JobState
from tests.helpers import Host, make_array, make_job


def test_live_updates_do_not_apply_once_an_end_is_claimed() -> None:
    job = make_job(Host())
    assert job._set_live(JobState.RUNNING, "", "node1")
    assert job.state is JobState.RUNNING and job.node == "node1"
    assert job.cancel()
    assert not job._set_live(JobState.PENDING, "Priority")
    assert job.state is JobState.CANCELLED and job.cancelled()
    assert not job._end_ok(42)  # a result arriving after the cancel is dropped
    assert job.state is JobState.CANCELLED and job.cancelled()


def test_a_result_wins_over_a_later_cancel() -> None:
    job = make_job(Host())
    assert job._end_ok(42)
    assert not job.cancel()
    assert not job._end_failed(JobState.FAILED, RuntimeError("late"))
    assert job.state is JobState.COMPLETED and job.result() == 42


def test_cancelling_while_the_poller_writes_states_leaves_every_task_cancelled() -> None:
    array = make_array(Host(), 5_000)
    stop = threading.Event()

    def poller() -> None:  # what each squeue tick does, as fast as Python can
        while not stop.is_set():
            for job in array.jobs:
                if not job.done():
                    job._set_live(JobState.PENDING, "JobHeldUser")

    thread = threading.Thread(target=poller)
    thread.start()
    try:
        assert array.cancel()
    finally:
        stop.set()
        thread.join()
    states = {job.state for job in array.jobs}
    assert states == {JobState.CANCELLED}, states
    assert all(job.cancelled() for job in array.jobs)


def test_cancel_racing_results_ends_each_job_once_and_consistently() -> None:
    array = make_array(Host(), 5_000)
    barrier = threading.Barrier(2)

    def results() -> None:
        barrier.wait()
        for index, job in enumerate(array.jobs):
            job._end_ok(index)

    thread = threading.Thread(target=results)
    thread.start()
    barrier.wait()
    array.cancel()
    thread.join()
    for index, job in enumerate(array.jobs):
        if job.cancelled():
            assert job.state is JobState.CANCELLED
        else:
            assert job.state is JobState.COMPLETED and job.result() == index
