"""A first run: one function as a job, then a 100-element array, on the default cluster.

python -m slurm_magics.examples.quickstart [--partition debug]
"""

from __future__ import annotations

import argparse
import socket
import time

import slurm_magics as sm
from slurm_magics.examples.cli import positive_int, run_main

__all__ = ["main", "run", "square", "where"]


def where(x: int) -> str:
    """Runs on a compute node: say where."""
    return f"{x} squared is {x * x}, computed on {socket.gethostname()}"


def square(x: int) -> int:
    return x * x


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--partition", default=None, help="SLURM partition (default: the cluster's)"
    )
    parser.add_argument("--tasks", type=positive_int, default=100, help="array size (default 100)")
    options = parser.parse_args(argv)
    return run_main(lambda: run(options))


def run(options: argparse.Namespace) -> int:
    started = time.monotonic()
    cluster = sm.connect(partition=options.partition) if options.partition else sm.connect()
    print(f"connected to {cluster!r}")

    job = sm.task(where, memory="200M", time="00:05:00")(7)
    print(f"submitted job {job.job_id}; waiting ...")
    print(f"  -> {job.result()}")

    squares = sm.task(square, memory="200M", time="00:05:00").map(range(options.tasks))
    print(f"submitted array {squares.job_id} of {len(squares)} tasks (one sbatch call)")
    squares.wait(progress=True)
    values = squares.result()
    print(f"  -> first results {values[:5]}, sum {sum(values)}")
    print(f"done in {time.monotonic() - started:.1f} s; scheduler calls: {cluster.counters}")
    cluster.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
