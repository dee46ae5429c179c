"""Live output of array tasks: print -> seen in the notebook, p50/p95, against a baseline.

Run on a login node (or the dev cluster)::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_tails.py [--rounds 3] [--tasks 4]

Each round runs one array whose tasks print a time-stamped line every 0.3 s. While it
runs, the baseline (a tight loop reading the log files straight from disk every 10 ms:
the best a client on this machine could do, at ~100 reads per second) and slurm_magics's
``TailFollower`` (one batched read every 0.5 s for all files; locally, and over SSH to
the dev cluster's sshd) watch the same files. For each line: when it was printed (its
stamp) and when each watcher first had it. Printed: p50/p95 latency per watcher, their
ratio to the baseline, and reads per second. Same machine, same clock.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import slurm_magics as sm
from slurm_magics.devcluster.info import load_info
from slurm_magics.jobs.tails import TailFollower
from slurm_magics.transport import SSHTransport

PAUSE = 0.3
LINES = 20


@sm.task(memory="100M", time=5)
def printer(task: int) -> int:
    """Print LINES numbered, time-stamped lines, PAUSE seconds apart (no explicit flush)."""
    for line in range(LINES):
        print(f"{task} {line} {time.time():.4f}")
        time.sleep(PAUSE)
    return task


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def seen_lines(
    text: str, seen: dict[tuple[int, int], float], stamps: dict[tuple[int, int], float]
) -> None:
    now = time.time()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            key = (int(parts[0]), int(parts[1]))
            seen.setdefault(key, now)
            stamps[key] = float(parts[2])


def baseline(paths: list[str], stop: threading.Event, seen: dict, stamps: dict) -> int:
    reads = 0
    while not stop.is_set():
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                seen_lines(Path(path).read_text(), seen, stamps)
            reads += 1
        time.sleep(0.01)
    return reads


def watch(
    follower: TailFollower, paths: list[str], stop: threading.Event, seen: dict, stamps: dict
) -> None:
    tails = [follower.follow(path, full=True) for path in paths]
    while not stop.is_set():
        for tail in tails:
            seen_lines(tail.text, seen, stamps)
        time.sleep(0.01)
    follower.unfollow(paths)


def one_round(cluster: sm.Cluster, ssh: SSHTransport | None, tasks: int) -> dict[str, object]:
    arr = printer.on(cluster).map(range(tasks))
    while not all(job.started_at for job in arr) and not arr.done():
        time.sleep(0.05)
    paths = [job.log_paths()[0] for job in arr]
    stop = threading.Event()
    stamps: dict[tuple[int, int], float] = {}
    seen: dict[str, dict[tuple[int, int], float]] = {"baseline": {}, "local": {}, "ssh": {}}
    followers = {"local": TailFollower(cluster.transport)}
    if ssh is not None:
        followers["ssh"] = TailFollower(ssh)
    reads = {}
    threads = [
        threading.Thread(
            target=lambda: reads.update(baseline=baseline(paths, stop, seen["baseline"], stamps))
        )
    ]
    threads += [
        threading.Thread(target=watch, args=(f, paths, stop, seen[name], stamps))
        for name, f in followers.items()
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    arr.result(timeout=600)
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    reads.update({name: f.reads for name, f in followers.items()})
    out: dict[str, object] = {}
    for name, found in seen.items():
        if not found:
            continue
        latencies = [found[key] - stamps[key] for key in found]
        out[name] = (latencies, reads.get(name, 0) / elapsed, len(found))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=4)
    args = parser.parse_args()
    cluster = sm.connect(partition=os.environ.get("PARTITION", "debug"))
    ssh = None
    try:
        info = load_info().ssh  # the dev cluster's own sshd on loopback
        ssh = SSHTransport(
            info.host,
            user=info.user,
            port=info.port,
            known_hosts=info.known_hosts_path,
            client_keys=[info.key_path],
        )
    except Exception as error:  # not the dev cluster: the benchmark measures the local side
        print(f"no SSH measurement: {error}", file=sys.stderr)
    totals: dict[str, list[float]] = {}
    rates: dict[str, list[float]] = {}
    for index in range(args.rounds):
        result = one_round(cluster, ssh, args.tasks)
        for name, (latencies, rate, count) in result.items():  # type: ignore[misc]
            totals.setdefault(name, []).extend(latencies)
            rates.setdefault(name, []).append(rate)
            print(
                f"round {index + 1} {name:8s} {count} lines  p50 {percentile(latencies, 0.5):.3f} s"
                f"  p95 {percentile(latencies, 0.95):.3f} s  {rate:.1f} reads/s"
            )
    base50 = percentile(totals["baseline"], 0.5)
    base95 = percentile(totals["baseline"], 0.95)
    print("\nall rounds (print -> seen):")
    for name, latencies in totals.items():
        p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
        print(
            f"  {name:8s} p50 {p50:.3f} s (x{p50 / base50:.1f} baseline)  p95 {p95:.3f} s "
            f"(x{p95 / base95:.1f})  {statistics.median(rates[name]):.1f} reads/s "
            f"for {args.tasks} files"
        )
    cluster.close()


if __name__ == "__main__":
    main()
