"""Worker pools: sm.WorkerPool against Parsl's HighThroughputExecutor and dask-jobqueue.

Each system gets the same shape on the same SLURM: one submission holding ``--workers``
worker processes (one CPU each), then, timed apart from the start-up:
- ``throughput``: ``--tasks`` trivial tasks, from the first submit to the last result;
- ``round trip``: one tiny task at a time, submit to result (p50/p99 of ``--trips``);
- ``chained``: ``--chain`` tasks, each taking the previous one's future as its argument;
- ``ready``: from the submission to all workers connected (and for ours, the median time
  from a worker's start, as sacct records it, to its connection).
Systems run in interleaved rounds (the order rotates), medians and ratios against the best
peer are printed. ``--memory N`` also measures our client's memory per task for an N-task
map (tracemalloc, futures held, then dropped).

Needs the dev cluster (``slurm-magics devcluster up``) or a login node, and the bench extra:

    PYTHONPATH=. .venv/bin/python benchmarks/bench_pool.py --rounds 3 --tasks 10000
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import slurm_magics as sm

Result = dict[str, float]


def square(x: int) -> int:
    return x * x


def increment(x: int) -> int:
    return x + 1


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _measure(
    submit_many: Callable[[int], list[Any]],
    one: Callable[[int], Any],
    chain: Callable[[int], Any],
    args: argparse.Namespace,
) -> Result:
    started = time.perf_counter()
    results = submit_many(args.tasks)
    throughput = time.perf_counter() - started
    assert results[-1] == (args.tasks - 1) ** 2
    trips = []
    for i in range(args.trips):
        begin = time.perf_counter()
        assert one(i) == i * i
        trips.append(time.perf_counter() - begin)
    begin = time.perf_counter()
    assert chain(args.chain) == args.chain
    chained = time.perf_counter() - begin
    return {
        "wall_s": throughput,
        "tasks_per_s": args.tasks / throughput,
        "p50_ms": 1000 * _percentile(trips, 0.5),
        "p99_ms": 1000 * _percentile(trips, 0.99),
        "chained_per_s": args.chain / chained,
    }


def run_ours(args: argparse.Namespace, cluster: sm.Cluster) -> Result:
    started = time.perf_counter()
    with sm.WorkerPool(
        args.workers, cpus=1, memory="200M", time="00:30:00", cluster=cluster, name="bench-pool"
    ) as pool:
        pool.ready(args.workers).result(timeout=600)
        ready = time.perf_counter() - started
        after_start = _connect_after_start(pool)
        run = sm.task(square).on(pool)
        step = sm.task(increment).on(pool)

        def chain(n: int) -> Any:
            job = step(0)
            for _ in range(n - 1):
                job = step(job)
            return job.result(timeout=600)

        result = _measure(
            lambda n: run.map(range(n)).result(timeout=600),
            lambda i: run(i).result(timeout=60),
            chain,
            args,
        )
    return {**result, "ready_s": ready, "ready_after_start_s": after_start}


def _connect_after_start(pool: sm.WorkerPool) -> float:
    """Median over workers of (connected, from the client) - (started, SLURM's sacct; whole
    seconds, so up to 1 s early): how long a started worker takes to be ready."""
    out = subprocess.run(
        ["sacct", "-j", pool.job_id, "-X", "-n", "-P", "-o", "JobID,Start"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    starts = {}
    for line in out.split():
        job_id, _, start = line.partition("|")
        if start[:1].isdigit():
            starts[job_id] = datetime.datetime.fromisoformat(start).timestamp()
    gaps = [
        worker.connected_at - starts[worker.name.split("@")[0]]
        for worker in pool.workers
        if worker.name.split("@")[0] in starts
    ]
    return statistics.median(gaps) if gaps else float("nan")


def run_parsl(args: argparse.Namespace, cluster: sm.Cluster) -> Result:
    import parsl  # noqa: PLC0415  (a peer, imported only when measured)
    from parsl.config import Config  # noqa: PLC0415
    from parsl.executors import HighThroughputExecutor  # noqa: PLC0415
    from parsl.providers import SlurmProvider  # noqa: PLC0415

    folder = tempfile.mkdtemp(prefix="bench-parsl-")
    # Parsl starts its interchange (and the workers their pool) as scripts found on PATH.
    os.environ["PATH"] = f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"
    provider = SlurmProvider(
        partition="debug",
        nodes_per_block=1,
        init_blocks=1,
        min_blocks=1,
        max_blocks=1,
        walltime="00:30:00",
        exclusive=False,
        cores_per_node=args.workers,
        mem_per_node=max(1, args.workers * 200 // 1000),
        worker_init=f"export PATH={os.path.dirname(sys.executable)}:$PATH",
    )
    executor = HighThroughputExecutor(
        label="htex",
        address="127.0.0.1",
        max_workers_per_node=args.workers,
        cores_per_worker=1,
        provider=provider,
        encrypted=False,
    )
    started = time.perf_counter()
    dfk = parsl.load(Config(executors=[executor], run_dir=folder, strategy="none"))
    try:
        app = parsl.python_app(square)
        step = parsl.python_app(increment)
        app(0).result()  # the block is up and one worker answers
        while sum(m["worker_count"] for m in executor.connected_managers()) < args.workers:
            time.sleep(0.05)
        ready = time.perf_counter() - started

        def chain(n: int) -> Any:
            future = step(0)
            for _ in range(n - 1):
                future = step(future)
            return future.result()

        result = _measure(
            lambda n: [f.result() for f in [app(i) for i in range(n)]],
            lambda i: app(i).result(),
            chain,
            args,
        )
    finally:
        dfk.cleanup()
        parsl.clear()
    return {**result, "ready_s": ready}


def run_dask(args: argparse.Namespace, cluster: sm.Cluster) -> Result:
    from dask_jobqueue import SLURMCluster  # noqa: PLC0415  (a peer)
    from distributed import Client  # noqa: PLC0415

    started = time.perf_counter()
    jobs = SLURMCluster(
        cores=args.workers,
        processes=args.workers,
        memory=f"{max(1, args.workers * 200 // 1000)}GB",
        queue="debug",
        walltime="00:30:00",
        python=sys.executable,
        scheduler_options={"host": "127.0.0.1"},
        log_directory=tempfile.mkdtemp(prefix="bench-dask-"),
    )
    client = Client(jobs)
    try:
        jobs.scale(jobs=1)
        client.wait_for_workers(args.workers, timeout=600)
        ready = time.perf_counter() - started

        def chain(n: int) -> Any:
            future = client.submit(increment, 0, pure=False)
            for _ in range(n - 1):
                future = client.submit(increment, future, pure=False)
            return future.result()

        result = _measure(
            lambda n: client.gather(client.map(square, range(n), pure=False)),
            lambda i: client.submit(square, i, pure=False).result(),
            chain,
            args,
        )
    finally:
        client.close()
        jobs.close()
    return {**result, "ready_s": ready}


def memory_per_task(cluster: sm.Cluster, count: int) -> tuple[float, float]:
    """Client bytes per task while an N-task map's futures are held, and after dropping."""
    with sm.WorkerPool(16, memory="200M", time="00:30:00", cluster=cluster) as pool:
        pool.ready(16).result(timeout=600)
        run = sm.task(square).on(pool)
        run.map(range(100)).result(timeout=60)  # warm: function shipped, caches filled
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        array = run.map(range(count))
        array.result(timeout=1200)
        held = tracemalloc.get_traced_memory()[0] - base
        del array
        gc.collect()
        dropped = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
    return held / count, dropped / count


SYSTEMS = {"ours": run_ours, "parsl-htex": run_parsl, "dask-jobqueue": run_dask}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--trips", type=int, default=300)
    parser.add_argument("--chain", type=int, default=300)
    parser.add_argument("--memory", type=int, default=0, help="tasks for the memory check")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    args = parser.parse_args()
    cluster = sm.connect(partition="debug")
    chosen = [name for name in args.systems.split(",") if name]
    found: dict[str, list[Result]] = {name: [] for name in chosen}
    for round_number in range(args.rounds):
        order = chosen[round_number % len(chosen) :] + chosen[: round_number % len(chosen)]
        for name in order:
            result = SYSTEMS[name](args, cluster)
            found[name].append(result)
            shown = " ".join(f"{key}={value:.4g}" for key, value in result.items())
            print(f"round {round_number + 1} {name}: {shown}", flush=True)
    medians = {
        name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for name, runs in found.items()
        if runs
    }
    print(f"\nmedians of {args.rounds} rounds, {args.tasks} tasks, {args.workers} workers:")
    for name, values in medians.items():
        print(f"  {name:14s} " + " ".join(f"{k}={v:.4g}" for k, v in values.items()))
    peers = [name for name in medians if name != "ours"]
    if "ours" in medians and peers:
        best = min(peers, key=lambda name: medians[name]["wall_s"])
        ours, peer = medians["ours"], medians[best]
        print(f"\nratios, ours vs the best peer ({best}):")
        print(f"  wall time for {args.tasks} tasks: {ours['wall_s'] / peer['wall_s']:.2f}x")
        for key in ("tasks_per_s", "chained_per_s", "p50_ms", "p99_ms", "ready_s"):
            print(f"  {key}: {ours[key] / peer[key]:.2f}x")
    if args.memory:
        held, dropped = memory_per_task(cluster, args.memory)
        print(f"\nclient memory, {args.memory} tasks: {held:.0f} B/task held,", end=" ")
        print(f"{dropped:.0f} B/task once the futures are dropped")
    cluster.close()


if __name__ == "__main__":
    main()
