"""Cached calls: how long a re-run takes when nothing is submitted, against a submission.

Run on a login node (or the dev cluster)::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_cache.py [--rounds 5]

Per round: a first call of a cached task (submitted, awaited), then the same call again in
this process (the job of the first run, no sbatch) and in a new process (found through the
registry: its run rebuilt, its result read), timed from the call to the result in hand.
The baseline is the client time of one uncached submission (sbatch, no waiting) measured
in the same round. Prints medians and ratios; the target is <= 100 ms for a re-run.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import slurm_magics as sm


def work(x: int, salt: int) -> int:
    return x * x + 0 * salt


NEW_PROCESS = textwrap.dedent(
    """
    import sys, time
    import slurm_magics as sm
    sys.path.insert(0, "benchmarks")
    from bench_cache import work
    sm.connect(partition={partition!r})
    task = sm.task(work, cache=True, memory="50M", time=5)
    started = time.perf_counter()
    job = task(7, {salt})
    value = job.result(timeout=60)
    took = time.perf_counter() - started
    print(took, job.cache.reused, value)
    """
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--partition", default="debug")
    args = parser.parse_args()
    cluster = sm.connect(partition=args.partition)
    # the function as the new processes import it (its module is part of its cache key)
    sys.path.insert(0, str(Path(__file__).parent))
    shared = importlib.import_module("bench_cache").work
    cached = sm.task(shared, cache=True, memory="50M", time=5)
    plain = sm.task(shared, memory="50M", time=5)
    submit, same, other = [], [], []
    for round_ in range(args.rounds):
        salt = time.time_ns()
        started = time.perf_counter()
        job = plain(1, salt)
        submit.append(time.perf_counter() - started)
        first = cached(7, salt)
        first.result(timeout=300)
        job.result(timeout=300)
        sbatch = cluster.counters.get("sbatch", 0)
        started = time.perf_counter()
        again = cached(7, salt)
        value = again.result(timeout=60)
        same.append(time.perf_counter() - started)
        assert again.cache.reused
        assert value == 49
        assert cluster.counters["sbatch"] == sbatch
        code = NEW_PROCESS.format(partition=args.partition, salt=salt)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.split()  # fmt: skip
        assert out[1:] == ["True", "49"], out
        other.append(float(out[0]))
        print(
            f"round {round_ + 1}: submit {submit[-1] * 1000:.0f} ms, re-run here "
            f"{same[-1] * 1000:.1f} ms, in a new process {other[-1] * 1000:.0f} ms"
        )
    base = statistics.median(submit)
    for name, values in (("uncached submission", submit), ("cached re-run, same process", same),
                         ("cached re-run, new process", other)):  # fmt: skip
        median = statistics.median(values)
        print(f"{name:30s} median {median * 1000:7.1f} ms  (x{median / base:.2f} a submission)")
    cluster.close()


if __name__ == "__main__":
    main()
