"""Sweep benchmark on a SLURM cluster: raw sbatch floor vs submitit vs slurm_magics.

Run on a login node (or the dev cluster)::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_sweep.py [--rounds 3] [--tasks 200]

Interleaved rounds (the order rotates each round) of four end-to-end measurements, each
from submission until every task's end is known to the client; medians and ratios vs the
floor are printed, then the task end -> future resolved latency, the client time of a
10,000-task ``.map()`` and the scheduler calls per second while 1 and 1,000 held jobs sit
idle. Results also go to ``benchmarks/results/<timestamp>.json``. Everything submitted
carries a per-run job name and is scancelled at exit, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import submitit

import slurm_magics as sm

MEMORY = "100M"
TIME_MIN = 5
ACTIVE = "PENDING,RUNNING,CONFIGURING,SUSPENDED,REQUEUED,RESIZING"  # COMPLETING = ended
RESULTS = Path(__file__).resolve().parent / "results"


def stamp(_item: int) -> float:
    """The benchmark task: its own end time (same machine, same clock as the client)."""
    return time.time()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def sh(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.n: int = args.tasks
        self.chunk: int = args.chunk_size or max(1, math.ceil(self.n / 16))
        self.tag = f"bsw{secrets.token_hex(3)}"
        self.user = getpass.getuser()
        self.names: set[str] = set()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        self.cluster = sm.connect(root=str(self.tmp / "sm"))
        self.task = sm.task(name=self.name("ours"), memory=MEMORY, time=TIME_MIN)(stamp)
        self.latencies: list[list[float]] = []

    def name(self, what: str) -> str:
        self.names.add(f"{self.tag}-{what}")
        return f"{self.tag}-{what}"

    def cleanup(self) -> None:
        """scancel everything this run submitted (by job name), then remove its files."""
        for name in sorted(self.names):  # scancel takes one --name at a time
            subprocess.run(
                ["scancel", "-u", self.user, f"--name={name}"], capture_output=True, check=False
            )
        try:
            self.cluster.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def others(self) -> int:
        """Active jobs/tasks of other people on the cluster right now (a noise indicator)."""
        out = sh(["squeue", "-h", "-r", "-t", ACTIVE + ",COMPLETING", "-o", "%j"])
        return sum(1 for line in out.splitlines() if not line.startswith(self.tag))

    def calls(self) -> int:
        counters = self.cluster.counters
        return counters.get("squeue", 0) + counters.get("sacct", 0)

    # -- the four end-to-end measurements -------------------------------------------------
    def floor(self, n: int) -> float:
        """Raw sbatch --array of `python -c "import cloudpickle"`, until no task is active."""
        logs = self.tmp / "floor"
        logs.mkdir(exist_ok=True)
        command = f"{shlex.quote(sys.executable)} -c 'import cloudpickle'"
        start = time.perf_counter()
        job_id = (
            sh(
                [
                    "sbatch",
                    "--parsable",
                    f"--array=0-{n - 1}",
                    f"--mem={MEMORY}",
                    f"--time={TIME_MIN}",
                    f"--job-name={self.name('floor')}",
                    f"--output={logs}/%A_%a.out",
                    "--wrap",
                    command,
                ]
            )
            .strip()
            .split(";")[0]
        )
        while True:
            probe = subprocess.run(
                ["squeue", "-h", "-j", job_id, "-t", ACTIVE, "-o", "%i"],
                capture_output=True,
                text=True,
                check=False,
            )
            if probe.returncode == 0 and not probe.stdout.strip():
                return time.perf_counter() - start
            time.sleep(0.1)

    def submitit(self, n: int) -> float:
        executor = submitit.AutoExecutor(folder=self.tmp / "submitit" / "%j", cluster="slurm")
        executor.update_parameters(
            slurm_mem=MEMORY,
            timeout_min=TIME_MIN,
            name=self.name("submitit"),
            slurm_array_parallelism=n,
        )
        start = time.perf_counter()
        jobs = executor.map_array(stamp, range(n))
        for job in jobs:
            job.result()
        return time.perf_counter() - start

    def ours(self, n: int, chunk: int = 1) -> float:
        task = self.task if chunk == 1 else self.task.with_options(chunk_size=chunk)
        resolved = [0.0] * n
        left = [n]
        lock, all_stamped = threading.Lock(), threading.Event()

        def on_done(index: int) -> Callable[[Any], None]:
            def callback(_job: Any) -> None:
                resolved[index] = time.time()
                with lock:
                    left[0] -= 1
                    if left[0] == 0:
                        all_stamped.set()

            return callback

        start = time.perf_counter()
        array = task.map(range(n))
        for index, job in enumerate(array):
            job.add_done_callback(on_done(index))
        ended: list[float] = array.result()
        elapsed = time.perf_counter() - start
        all_stamped.wait(10)  # the array resolves in the last job's first callback
        if chunk == 1:
            self.latencies.append([r - e for r, e in zip(resolved, ended, strict=True)])
        return elapsed

    # -- the other figures -------------------------------------------------------------------
    def submit_10k(self, n: int = 10_000) -> dict[str, Any]:
        held = self.task.with_options(name=self.name("sweep10k"), extra={"hold": True})
        before = self.cluster.counters.get("sbatch", 0)
        start = time.perf_counter()
        array = held.map(range(n))
        submit = time.perf_counter() - start
        sbatch_calls = self.cluster.counters.get("sbatch", 0) - before
        start = time.perf_counter()
        array.cancel()
        cancel = time.perf_counter() - start
        return {
            "tasks": n,
            "map_call_s": submit,
            "sbatch_calls": sbatch_calls,
            "array_ids": array.job_ids,
            "cancel_call_s": cancel,
        }

    def idle(self, n: int, settle: float, window: float) -> dict[str, Any]:
        held = self.task.with_options(name=self.name("idle"), extra={"hold": True})
        future: sm.Job | sm.JobArray = held(0) if n == 1 else held.map(range(n))
        time.sleep(settle)  # let the poller back off to its idle interval first
        calls, ticks, start = self.calls(), self.cluster.poller.ticks, time.monotonic()
        time.sleep(window)
        seconds = time.monotonic() - start
        calls, ticks = self.calls() - calls, self.cluster.poller.ticks - ticks
        future.cancel()
        return {
            "tracked": n,
            "seconds": seconds,
            "scheduler_calls": calls,
            "calls_per_s": calls / seconds,
            "poll_ticks_per_s": ticks / seconds,
        }


def fmt_row(label: str, values: list[float], floor: float | None, others: list[int]) -> str:
    median = statistics.median(values)
    ratio = f"{median / floor:9.2f}x" if floor else " " * 10
    cells = "".join(f"{v:8.1f}" for v in values)
    return f"{label:<24}{cells}{median:9.1f}{ratio}   {'/'.join(map(str, others))}"


def run(args: argparse.Namespace, bench: Bench) -> dict[str, Any]:
    n = bench.n
    methods: dict[str, Callable[[], float]] = {
        "floor (raw sbatch)": lambda: bench.floor(n),
        "submitit map_array": lambda: bench.submitit(n),
        "slurm_magics map": lambda: bench.ours(n),
        f"slurm_magics chunk={bench.chunk}": lambda: bench.ours(n, bench.chunk),
    }
    labels = list(methods)
    if not args.no_warmup:
        print("warm-up (16 tasks each of floor and ours, not recorded) ...", flush=True)
        bench.floor(16)
        bench.ours(16)
        bench.latencies.clear()
    times: dict[str, list[float]] = {label: [] for label in labels}
    others: dict[str, list[int]] = {label: [] for label in labels}
    for round_ in range(args.rounds):
        order = labels[round_ % len(labels) :] + labels[: round_ % len(labels)]
        for label in order:
            busy = bench.others()
            seconds = methods[label]()
            times[label].append(seconds)
            others[label].append(busy)
            print(
                f"round {round_ + 1}: {label:<24}{seconds:7.1f} s  "
                f"(other jobs active at start: {busy})",
                flush=True,
            )
            time.sleep(args.pause)
    print("idle polling: 1 held job ...", flush=True)
    idle = [bench.idle(1, args.settle, args.window)]
    print("idle polling: 1,000 held jobs ...", flush=True)
    idle.append(bench.idle(1000, args.settle, args.window))
    print("10,000-task map submission ...", flush=True)
    sweep = bench.submit_10k()
    return {"times": times, "others": others, "idle": idle, "sweep10k": sweep}


def report(bench: Bench, data: dict[str, Any]) -> dict[str, Any]:
    times: dict[str, list[float]] = data["times"]
    labels = list(times)
    floor = statistics.median(times[labels[0]])
    rounds = len(times[labels[0]])
    header = "".join(f"{f'r{i + 1}':>8}" for i in range(rounds))
    print(f"\n=== {bench.n} tasks, {rounds} interleaved rounds (seconds, end to end) ===")
    print(f"{'method':<24}{header}{'median':>9}{'vs floor':>10}   other jobs at start")
    for label in labels:
        print(
            fmt_row(
                label, times[label], None if label == labels[0] else floor, data["others"][label]
            )
        )
    summary: dict[str, Any] = {
        "medians_s": {label: statistics.median(v) for label, v in times.items()},
        "ratio_vs_floor": {label: statistics.median(v) / floor for label, v in times.items()},
    }
    pooled = [x for lat in bench.latencies for x in lat]
    if pooled:
        print(f"\ntask end -> future resolved ({len(bench.latencies)} rounds x {bench.n} tasks):")
        for i, lat in enumerate(bench.latencies):
            print(
                f"  round {i + 1}: median {statistics.median(lat):.3f} s, "
                f"p95 {percentile(lat, 95):.3f} s, max {max(lat):.3f} s"
            )
        print(
            f"  pooled : median {statistics.median(pooled):.3f} s, "
            f"p95 {percentile(pooled, 95):.3f} s   (target: < 0.5 s, < 1 s)"
        )
        summary["latency_s"] = {
            "median": statistics.median(pooled),
            "p95": percentile(pooled, 95),
            "max": max(pooled),
        }
    sweep = data["sweep10k"]
    print(
        f"\n10,000-task map: .map() took {sweep['map_call_s']:.3f} s with "
        f"{sweep['sbatch_calls']} sbatch call(s) (arrays {','.join(sweep['array_ids'])}); "
        f"cancel took {sweep['cancel_call_s']:.3f} s   (target: < 1 s, 1 call)"
    )
    print("\nscheduler calls (squeue + sacct) while held jobs sit idle:")
    for entry in data["idle"]:
        print(
            f"  {entry['tracked']:>5} tracked: {entry['scheduler_calls']} calls in "
            f"{entry['seconds']:.0f} s = {entry['calls_per_s']:.3f} calls/s "
            f"(poll ticks {entry['poll_ticks_per_s']:.1f}/s)   (target: equal, < 0.2/s)"
        )
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--chunk-size", type=int, default=0, help="default: ceil(tasks / 16)")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between measurements")
    parser.add_argument("--settle", type=float, default=30.0, help="idle test: wait before")
    parser.add_argument("--window", type=float, default=30.0, help="idle test: measured span")
    parser.add_argument("--no-warmup", action="store_true")
    args = parser.parse_args()

    def on_term(_signum: int, _frame: object) -> NoReturn:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    bench = Bench(args)
    started = time.strftime("%Y%m%d-%H%M%S")
    print(f"bench_sweep {bench.tag}: {bench.n} tasks, {args.rounds} rounds, files in {bench.tmp}")
    try:
        data = run(args, bench)
        summary = report(bench, data)
    except KeyboardInterrupt:
        print("\ninterrupted: cancelling everything this run submitted", file=sys.stderr)
        return 130
    finally:
        bench.cleanup()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{started}.json"
    payload = {
        "started": started,
        "args": vars(args),
        "tag": bench.tag,
        "python": sys.executable,
        "slurm_magics": sm.__version__,
        "submitit": submitit.__version__,
        "chunk_size": bench.chunk,
        **data,
        "summary": summary,
        "latencies_s": bench.latencies,
    }
    path.write_text(json.dumps(payload, indent=1))
    print(f"\nresults written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
