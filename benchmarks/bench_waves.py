"""Sweeps at scale: client time and memory per task of a held ``.map()`` of 10k and 100k.

Run on a login node (or the dev cluster)::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_waves.py [--sizes 10000,100000]

Each size runs in a fresh Python process: it connects, submits ``task.map(range(N))`` with
``--hold`` (nothing runs), and reports the client time of the call and the growth of the
process's resident memory per tracked task after one poll of the held array; then it
cancels the array. Two baselines are measured in the same run: a raw
``sbatch --array=0-999 --hold`` (the controller's own cost per 1,000 tasks), and,
in the same process just before the map, the time to make N standard
``concurrent.futures.Future`` objects (what any client with one future per task pays on
this machine at this moment; the machine is shared, so read ratios, not seconds).

Every array task is a job record until MinJobAge after it ends, for every user: the
benchmark first reads MaxJobCount and the records already there, and refuses to run when
its own records would take the cluster past 70 % of MaxJobCount.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

MEMORY = "50M"
RAW = 1000  # tasks of the raw sbatch baseline
SHARE = 0.7  # of MaxJobCount this benchmark may fill (counting what is already there)

CHILD = r"""
import concurrent.futures, gc, json, sys, time
import slurm_magics as sm

def rss_kb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")

def held(x):
    return x

n = int(sys.argv[1])
cluster = sm.connect(partition="debug")
task = sm.task(held, memory="MEMORY", time=5, extra={"hold": True})
warm = task.map(range(10))  # imports, first sbatch and the poller are paid before measuring
warm.cancel()
items = list(range(n))
start = time.perf_counter()
floor = [concurrent.futures.Future() for _ in items]  # one standard future per item
floor_s = time.perf_counter() - start
del floor
gc.collect()
before = rss_kb()
start = time.perf_counter()
array = task.map(items)
client = time.perf_counter() - start
ticks = cluster.poller.ticks
deadline = time.monotonic() + 60
while cluster.poller.ticks < ticks + 2 and time.monotonic() < deadline:
    time.sleep(0.2)  # the poller has seen the held tasks at least once
gc.collect()
after = rss_kb()
waves = len(array.job_ids)
array.cancel()
cluster.close()
print(json.dumps({
    "n": n, "client_s": client, "floor_s": floor_s, "rss_kb": after - before, "sbatch_calls": waves
}))
""".replace("MEMORY", MEMORY)


def config_value(key: str) -> int:
    out = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, check=True
    ).stdout
    for line in out.splitlines():
        if line.split("=", 1)[0].strip() == key:
            return int(line.split("=", 1)[1].split()[0])
    raise SystemExit(f"scontrol show config has no {key}")


def records_now() -> int:
    out = subprocess.run(
        ["squeue", "-h", "-r", "--states=all", "-o", "%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return len(out.split())


def raw_sbatch(n: int) -> float:
    argv = ["sbatch", "--parsable", f"--array=0-{n - 1}", "--hold", f"--mem={MEMORY}"]
    argv += ["-J", "bench_waves_raw", "--wrap", "true"]
    start = time.perf_counter()
    job = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    elapsed = time.perf_counter() - start
    subprocess.run(["scancel", job.split(";")[0]], check=False)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    sizes = [int(size) for size in parser.parse_args().sizes.split(",")]
    limit, max_array = config_value("MaxJobCount"), config_value("MaxArraySize")
    there = records_now()
    needed = sum(sizes) + RAW + 10 * len(sizes)
    print(f"MaxJobCount {limit}, MaxArraySize {max_array}, records now {there}, needed {needed}")
    if there + needed > SHARE * limit:
        raise SystemExit(
            f"{there} records + {needed} of this benchmark would pass {SHARE:.0%} of "
            f"MaxJobCount {limit}: run it when the cluster is quieter, or with --sizes smaller"
        )
    baseline = raw_sbatch(RAW)
    print(f"raw sbatch --array of {RAW} held tasks: {baseline * 1000:.0f} ms")
    results = []
    for n in sizes:
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True, check=True
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        results.append(result)
        print(
            f"{n:>7} held tasks: client {result['client_s']:.2f} s "
            f"({result['client_s'] / result['floor_s']:.1f}x making {n} standard futures, "
            f"{result['client_s'] / baseline:.1f}x the raw sbatch of {RAW}), "
            f"{result['rss_kb'] * 1024 / n:.0f} B/task RSS "
            f"({result['rss_kb'] * 1024 / n / 2048:.2f}x the 2 KB target), "
            f"{result['sbatch_calls']} sbatch call(s)"
        )
    print(json.dumps({"baseline_s": baseline, "results": results}))


if __name__ == "__main__":
    main()
