"""The four parallelization patterns, runnable on any cluster and comparable side by side.

    python -m slurm_magics.examples.parallelization_patterns --pattern all
    python -m slurm_magics.examples.parallelization_patterns --pattern sweep --backend local
    python -m slurm_magics.examples.parallelization_patterns --hostname login.hpc.org \\
        --username me --partition debug --pattern all --packaging container \\
        --packaging-registry registry:5000/parallel-patterns --packaging-platform linux/amd64 \\
        --packaging-tls-verify false

Each pattern prints its phases as they happen and a summary line: jobs submitted, array
tasks, wall time and the scheduler commands it cost.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import cloudpickle

import slurm_magics as sm
from slurm_magics.examples.cli import positive_int, run_main
from slurm_magics.examples.packaging_flags import add_packaging_arguments, packaging_from

__all__ = [
    "Summary",
    "aggregate",
    "coarse",
    "dynamic_deps",
    "export",
    "fanout",
    "main",
    "parse_args",
    "pipeline",
    "preprocess",
    "quick_check",
    "refine",
    "run",
    "run_pattern",
    "say",
    "simulate",
    "sweep",
    "train",
    "transform",
    "validate",
]

PATTERNS = ("fanout", "pipeline", "sweep", "dynamic-deps")


# -- the work (runs on the cluster; shipped by value, see main()) -----------------------------
def simulate(x: int) -> float:
    """A small numeric task: a few thousand steps of a damped oscillator."""
    position, speed = float(x), 0.0
    for _ in range(5000):
        speed += -0.01 * position - 0.001 * speed
        position += speed * 0.1
    return position


def aggregate(values: list[float]) -> dict[str, float]:
    return {"count": len(values), "mean": sum(values) / len(values), "max": max(values)}


def preprocess(n: int) -> list[float]:
    rng = random.Random(n)
    return [rng.gauss(0, 1) for _ in range(n)]


def transform(values: list[float]) -> list[float]:
    return [math.tanh(v) for v in values]


def validate(values: list[float]) -> list[float]:
    if not all(-1.0 <= v <= 1.0 for v in values):
        raise ValueError("transform produced values outside [-1, 1]")
    return values


def export(values: list[float]) -> str:
    return f"{len(values)} values, mean {sum(values) / len(values):+.4f}"


def train(lr: float, depth: int, seed: int = 0) -> dict[str, Any]:
    """A stand-in for model training: a loss with a known best configuration."""
    rng = random.Random(seed)
    loss = (math.log10(lr) + 2) ** 2 + 0.3 * (depth - 4) ** 2 + rng.random() * 0.05
    return {"lr": lr, "depth": depth, "loss": loss}


def quick_check(scale: int) -> float:
    return sum(simulate(i) for i in range(scale)) / scale


def refine(estimate: float, steps: int) -> float:
    return estimate + sum(simulate(i) * 1e-3 for i in range(steps))


def coarse(estimate: float) -> float:
    return round(estimate, 1)


# -- the patterns ----------------------------------------------------------------------------
@dataclasses.dataclass
class Summary:
    pattern: str
    jobs: int
    array_tasks: int
    seconds: float
    scheduler_calls: int
    outcome: str


def say(pattern: str, text: str) -> None:
    print(f"[{pattern}] {text}", flush=True)


def fanout(size: int) -> tuple[int, int, str]:
    """Fan-out / fan-in: one array job over the inputs, then one aggregating job."""
    runs = sm.task(simulate, memory="200M", time=5).map(range(size))
    say("fanout", f"submitted array {runs.job_id} of {len(runs)} tasks")
    stats = sm.task(aggregate, memory="200M", time=5)(runs)
    say("fanout", f"submitted aggregate {stats.job_id} (afterok on the array)")
    result = stats.result()
    return 1 + 1, size, f"mean {result['mean']:+.3f} over {result['count']} runs"


def pipeline(size: int) -> tuple[int, int, str]:
    """A four-stage pipeline: each stage receives the previous stage's job."""
    job = sm.task(preprocess, memory="200M", time=5)(size * 100)
    say("pipeline", f"preprocess -> {job.job_id}")
    for stage in (transform, validate, export):
        job = sm.task(stage, memory="200M", time=5)(job)
        say("pipeline", f"{stage.__name__} -> {job.job_id} (afterok)")
    return 4, 0, str(job.result())


def sweep(size: int) -> tuple[int, int, str]:
    """A hyperparameter sweep over configuration dicts as ONE array job; pick the best."""
    configs = [
        {"lr": lr, "depth": depth, "seed": seed}
        for lr in (1e-3, 1e-2, 1e-1)
        for depth in (2, 4, 6)
        for seed in range(max(1, size // 9))
    ]
    trials = sm.task(train, memory="200M", time=5).map(configs)
    say("sweep", f"submitted array {trials.job_id}: {len(configs)} configurations")
    trials.wait(progress=True)
    best = min(trials.result(), key=lambda r: r["loss"])
    return 1, len(configs), f"best lr={best['lr']} depth={best['depth']} loss={best['loss']:.3f}"


def dynamic_deps(size: int) -> tuple[int, int, str]:
    """Await a first result, then decide which branch to submit."""
    first = sm.task(quick_check, memory="200M", time=5)(max(2, size // 4))
    say("dynamic-deps", f"submitted quick check {first.job_id}; waiting for it")
    estimate = first.result()
    if abs(estimate) > 0.1:
        say("dynamic-deps", f"estimate {estimate:+.3f} is large: refining in 4 parallel jobs")
        parts = [sm.task(refine, memory="200M", time=5)(first, s) for s in (10, 20, 30, 40)]
        values = sm.gather(*parts).result()
        return 1 + len(parts), 0, f"refined to {sum(values) / len(values):+.4f}"
    say("dynamic-deps", f"estimate {estimate:+.3f} is small: one coarse job")
    return 2, 0, f"coarse {sm.task(coarse, memory='200M', time=5)(first).result()}"


RUNNERS: dict[str, Callable[[int], tuple[int, int, str]]] = {
    "fanout": fanout,
    "pipeline": pipeline,
    "sweep": sweep,
    "dynamic-deps": dynamic_deps,
}


def run_pattern(name: str, cluster: sm.Cluster, size: int) -> Summary:
    say(name, (RUNNERS[name].__doc__ or "").strip().splitlines()[0])
    before = sum(cluster.counters.get(c, 0) for c in ("squeue", "sacct", "sbatch", "scancel"))
    started = time.monotonic()
    jobs, tasks, outcome = RUNNERS[name](size)
    seconds = time.monotonic() - started
    after = sum(cluster.counters.get(c, 0) for c in ("squeue", "sacct", "sbatch", "scancel"))
    say(name, f"done in {seconds:.1f} s: {outcome}")
    return Summary(name, jobs, tasks, seconds, after - before, outcome)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run the four parallelization patterns on a SLURM cluster."
    )
    parser.add_argument("--pattern", choices=("all", *PATTERNS), default="all")
    parser.add_argument("--hostname", help="login node to reach over SSH (default: this machine)")
    parser.add_argument("--username", help="user name on the login node (SSH)")
    parser.add_argument("--port", type=int, help="SSH port")
    parser.add_argument("--partition", help="SLURM partition (default: the cluster's)")
    parser.add_argument("--backend", choices=("slurm", "local"), help="local: no SLURM needed")
    parser.add_argument(
        "--size", type=positive_int, default=40, help="work per pattern (default 40)"
    )
    add_packaging_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    return run_main(lambda: run(options))


def run(options: argparse.Namespace) -> int:
    # The functions above go by value, so the cluster needs no slurm_magics install.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    resources = {"partition": options.partition} if options.partition else {}
    cluster = sm.connect(
        options.hostname,
        user=options.username,
        port=options.port,
        backend=options.backend,
        packaging=packaging_from(options),
        **resources,
    )
    print(f"connected to {cluster!r}")
    chosen = PATTERNS if options.pattern == "all" else (options.pattern,)
    summaries = [run_pattern(name, cluster, options.size) for name in chosen]
    print(f"\n{'pattern':<14}{'jobs':>6}{'array tasks':>13}{'wall s':>9}{'sched calls':>13}")
    for s in summaries:
        print(
            f"{s.pattern:<14}{s.jobs:>6}{s.array_tasks:>13}{s.seconds:>9.1f}{s.scheduler_calls:>13}"
        )
    cluster.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
