"""Tasks for the cache tests, importable by the test process and by the other kernels it
starts (a function's code is part of its cache key)."""

from __future__ import annotations

import os
import time

import slurm_magics as sm

__all__ = ["fails_once", "size_of", "slow_square"]


@sm.task(cache=True, memory="100M", time=5)
def slow_square(x: int, pause: float = 0.0) -> tuple[int, str]:
    """x squared, after ``pause`` seconds, with the SLURM id that computed it."""
    time.sleep(pause)
    return x * x, os.environ.get("SLURM_JOB_ID", "")


@sm.task(cache=True, memory="100M", time=5)
def fails_once(marker: str) -> str:
    """Raises the first time (creates ``marker``), returns "ok" after."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return "ok"


@sm.task(cache=True, memory="100M", time=5)
def size_of(data: bytes) -> int:
    return len(data)
