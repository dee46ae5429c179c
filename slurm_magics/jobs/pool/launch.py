"""What a pool puts on the cluster: the worker's code, its settings and secret, its entry.

The workers are ordinary array tasks of one submission: the runner calls the entry
function made here (pickled by value, so the cluster needs no slurm_magics), which imports
the shipped worker from the pool's code folder and serves until told to stop.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Callable

import cloudpickle

from slurm_magics.core import pool_protocol, pool_relay, pool_worker, runner

__all__ = ["code_files", "pool_files", "worker_entry"]


@functools.cache
def _source(path: str) -> bytes:
    with open(path, "rb") as stream:
        return stream.read()


def code_files(root: str) -> tuple[str, dict[str, bytes]]:
    """The code folder (named by its content's hash) and its files: worker, protocol, relay,
    and the runner (the outcome format and version checks the worker shares with jobs)."""
    files = {
        "pool_worker.py": _source(pool_worker.__file__),
        "pool_protocol.py": _source(pool_protocol.__file__),
        "pool_relay.py": _source(pool_relay.__file__),
        "runner.py": _source(runner.__file__),
    }
    digest = hashlib.sha256(b"".join(files[name] for name in sorted(files))).hexdigest()[:12]
    folder = f"{root}/pool-code-{digest}"
    return folder, {f"{folder}/{name}": data for name, data in files.items()}


def pool_files(
    pool_dir: str,
    address: tuple[str, int],
    secret: bytes,
    *,
    heartbeat: float,
    heartbeat_timeout: float,
) -> dict[str, bytes]:
    """pool.json (where to connect, heartbeats, the versions pickles need) and the secret."""
    settings = {
        "address": list(address),
        "heartbeat": heartbeat,
        "heartbeat_timeout": heartbeat_timeout,
        "connect_timeout": heartbeat_timeout,
        "python": list(sys.version_info[:2]),
        "cloudpickle": cloudpickle.__version__,
    }
    return {
        f"{pool_dir}/pool.json": json.dumps(settings, indent=1).encode(),
        f"{pool_dir}/secret": secret,
    }


def worker_entry() -> Callable[[str, str], int]:
    """The function each worker task runs: ``entry(code_folder, pool_dir)`` -> exit code.

    Made inside this function so cloudpickle ships it by value (a module-level function
    would be imported by name on the cluster, which has no slurm_magics).
    """

    def start_pool_worker(code_folder: str, pool_dir: str) -> int:
        import sys  # noqa: PLC0415  (runs on the compute node, inside the runner)

        if code_folder not in sys.path:
            sys.path.insert(0, code_folder)
        worker = __import__("pool_worker")  # the shipped copy, found on code_folder
        code: int = worker.serve(pool_dir)
        if code:
            raise SystemExit(code)
        return code

    return start_pool_worker
