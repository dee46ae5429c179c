"""``%%slurm --wait``: block until the cell's job finishes, show its output, return its result."""

from __future__ import annotations

import concurrent.futures
import sys
from typing import Any

from slurm_magics.jobs.array import JobArray, progress_bar
from slurm_magics.jobs.job import Job
from slurm_magics.ui.widgets import widgets_available
from slurm_magics.ui.widgets.status import finished_streams

__all__ = ["described", "wait"]


def described(item: Job | JobArray, label: str = "") -> str:
    kind = f"array {','.join(item.job_ids)}" if isinstance(item, JobArray) else f"job {item.job_id}"
    return f"{kind} ({label or item.name})"


def wait(item: Job | JobArray) -> Any:
    __tracebackhide__ = True
    bar = None
    if isinstance(item, JobArray) and not widgets_available():
        bar = progress_bar(item)
    try:
        while not item.done():
            concurrent.futures.wait([item], timeout=0.2)
            if bar is not None and isinstance(item, JobArray):
                bar.update(sum(job.done() for job in item.jobs) - bar.n)
    except KeyboardInterrupt:
        print(
            f"Interrupted: {described(item)} keeps running; it is _slurm_last, %scancel stops it.",
            file=sys.stderr,
        )
        raise
    finally:
        if bar is not None:
            bar.close()
    if isinstance(item, Job):
        _print_output(item)
    if item.cancelled():
        raise concurrent.futures.CancelledError(f"{described(item)} was cancelled")
    error = item.exception()
    if error is not None:
        raise error.with_traceback(None)  # the remote traceback is its cause
    return item.result()


def _print_output(job: Job) -> None:
    stdout, stderr = finished_streams(job)
    if stdout:
        sys.stdout.write(stdout)
        sys.stdout.flush()
    if stderr.strip():
        sys.stderr.write(stderr)
        sys.stderr.flush()
