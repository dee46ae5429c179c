"""A pipefunc pipeline on SLURM: adaptive_scheduler's SlurmExecutor against sm.SlurmExecutor.

The same pipeline (a map over N elements, then a reduce) runs with each executor through
``pipeline.map_async(...)`` and ``await runner.task``, in interleaved rounds (the order
rotates every round). Printed: wall time of each run (from map_async to the result),
medians, the ratio of each median to adaptive_scheduler's, and the sbatch calls each run
made — counted by an ``sbatch`` wrapper first on this process's PATH, so both executors are
counted the same way.

Variants:
- ``adaptive``: ``adaptive_scheduler.SlurmExecutor(memory=...)`` as pipefunc's tutorial
  uses it (the map in one learner job with its own process pool, then the reduce);
- ``ours``: ``sm.SlurmExecutor(memory=...)`` (the map as one array, one element per task);
- ``ours-chunked``: the same with ``chunk_size`` elements per array task.

Needs the dev cluster (``slurm-magics devcluster up``) or a login node, and the test extra
(pipefunc, adaptive-scheduler):

    PYTHONPATH=. .venv/bin/python benchmarks/bench_pipefunc.py --rounds 3 --elements 200
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adaptive_scheduler import SlurmExecutor as AdaptiveSlurmExecutor
from pipefunc import Pipeline, pipefunc

import slurm_magics as sm


@pipefunc(output_name="y", mapspec="x[i] -> y[i]")
def square(x: int) -> int:
    return x * x


@pipefunc(output_name="total")
def total(y: Any) -> int:
    return int(sum(y))


def _sbatch_counter(folder: Path) -> Path:
    """Put an ``sbatch`` first on PATH that logs each call and runs the real one."""
    real = shutil.which("sbatch")
    if real is None:
        raise SystemExit("no sbatch on PATH: start the dev cluster (slurm-magics devcluster up)")
    log = folder / "sbatch.log"
    log.touch()
    wrapper = folder / "bin" / "sbatch"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho call >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    os.environ["PATH"] = f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}"
    return log


def _calls(log: Path) -> int:
    return len(log.read_text().splitlines())


def _others_jobs() -> int:
    """Active jobs of the cluster before a run (other people's load: a noise indicator)."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "PD,R,CG", "-o", "%i"], capture_output=True, check=False
    )
    return len(out.stdout.split())


def _import_seconds() -> float:
    """What every SLURM task of ours pays first: a Python that imports pipefunc (to unpickle
    its work item), timed here and now (the machine's load shows in it)."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import cloudpickle, pipefunc.map._run"], check=True)
    return time.monotonic() - started


async def _run(executor: Any, elements: int, folder: Path) -> tuple[float, Any]:
    pipeline = Pipeline([square, total])
    started = time.monotonic()
    runner = pipeline.map_async(
        {"x": range(elements)}, run_folder=folder / "run", executor=executor, display_widgets=False
    )
    result = await runner.task
    seconds = time.monotonic() - started
    if runner.multi_run_manager is not None:  # adaptive_scheduler's managers: stop them
        runner.multi_run_manager.cancel_all()
    return seconds, result["total"].output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--elements", type=int, default=200)
    parser.add_argument("--chunk-size", type=int, default=0, help="default: ceil(N/16)")
    parser.add_argument("--partition", default="debug")
    parser.add_argument("--pause", type=float, default=5.0, help="seconds between runs")
    args = parser.parse_args()
    chunk = args.chunk_size or math.ceil(args.elements / 16)
    work = Path(tempfile.mkdtemp(prefix="bench-pipefunc-"))
    log = _sbatch_counter(work)
    cluster = sm.connect(partition=args.partition)
    expected = sum(x * x for x in range(args.elements))

    variants: dict[str, Callable[[Path], Any]] = {
        # adaptive_scheduler's own jobs (launcher + process pool) need ~330 MB here
        "adaptive": lambda folder: AdaptiveSlurmExecutor(
            folder=folder / "adaptive", memory="1GB", partition=args.partition
        ),
        "ours": lambda folder: sm.SlurmExecutor(cluster, memory="200M"),
        "ours-chunked": lambda folder: sm.SlurmExecutor(cluster, memory="200M", chunk_size=chunk),
    }
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    calls: dict[str, list[int]] = {name: [] for name in names}
    print(f"{args.elements} elements + a reduce, {args.rounds} rounds, chunk_size={chunk}")
    for round_ in range(args.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        print(f"round {round_ + 1}: python + import pipefunc takes {_import_seconds():.1f} s")
        for name in order:
            folder = work / f"{name}-{round_}"
            folder.mkdir()
            load, before = _others_jobs(), _calls(log)
            seconds, value = asyncio.run(_run(variants[name](folder), args.elements, folder))
            assert value == expected, (name, value, expected)
            made = _calls(log) - before
            times[name].append(seconds)
            calls[name].append(made)
            print(
                f"round {round_ + 1} {name:13s} {seconds:7.1f} s  sbatch calls: {made:3d}"
                f"  (active jobs before: {load})",
                flush=True,
            )
            time.sleep(args.pause)

    base = statistics.median(times["adaptive"])
    print("\nmedian wall time, ratio to adaptive_scheduler, sbatch calls per run")
    for name in names:
        median = statistics.median(times[name])
        print(
            f"  {name:13s} {median:7.1f} s  {median / base:5.2f}x  "
            f"sbatch: {sorted(set(calls[name]))}"
        )
    cluster.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
