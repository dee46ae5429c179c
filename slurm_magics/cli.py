"""The `slurm-magics` command line: `slurm-magics devcluster up|down|status`."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence

from slurm_magics import devcluster
from slurm_magics.devcluster.cluster import daemon_pids

__all__ = ["main"]

EXIT_ERROR = 1
EXIT_NOT_ALL_RUNNING = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slurm-magics",
        description="Tools around slurm_magics.",
    )
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    devcluster = groups.add_parser(
        "devcluster",
        help="a one-node SLURM cluster on this machine for development and tests",
        description=(
            "A one-node SLURM cluster with accounting (slurmdbd + MariaDB) and its own sshd "
            "on a loopback port. Needs root on Debian/Ubuntu. State lives in "
            "$SLURM_MAGICS_DEVCLUSTER_DIR (default /var/lib/slurm-magics-devcluster)."
        ),
    )
    actions = devcluster.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("up", help="install what is missing and start what is not running")
    actions.add_parser("down", help="stop the daemons that `up` started")
    actions.add_parser("status", help="show each daemon; exit 0 if all run, 3 otherwise")
    return parser


def _print_up_summary() -> None:
    info = devcluster.load_info()
    ssh = info.ssh
    ssh_command = shlex.join(
        [
            "ssh",
            "-i",
            str(ssh.key_path),
            "-o",
            f"UserKnownHostsFile={ssh.known_hosts_path}",
            "-p",
            str(ssh.port),
            f"{ssh.user}@{ssh.host}",
        ]
    )
    partitions = ", ".join(
        f"{name} (default)" if name == info.default_partition else name for name in info.partitions
    )
    daemons = ", ".join(f"{name} {pid}" for name, pid in info.pids.items())
    containers = info.containers
    images = (
        f"  registry:   {containers.registry} (plain HTTP: push with tls_verify=False); "
        f"base image {containers.base_image}\n"
        if containers
        else ""
    )
    print(
        f"dev cluster {info.cluster_name!r} is up: SLURM {info.slurm_version}, "
        f"node {info.hostname}\n"
        f"  partitions: {partitions}\n"
        f"  config:     {info.slurm_conf} (sbatch, squeue, sacct work without extra env)\n"
        f"  daemons:    {daemons}\n"
        f"  logs:       {info.state_dir / 'log'}\n"
        f"  ssh:        {ssh_command}\n"
        f"{images}"
        f"  details:    {info.state_dir / 'cluster.json'}"
    )


def _print_status(running: dict[str, bool]) -> None:
    pids = daemon_pids()
    for name, is_running in running.items():
        pid = pids.get(name)
        if is_running and pid is not None:
            print(f"{name:<10} running  pid {pid}")
        elif is_running:
            print(f"{name:<10} running  (not started by the dev cluster)")
        else:
            print(f"{name:<10} stopped")


def _devcluster(action: str) -> int:
    if action == "up":
        devcluster.up()
        _print_up_summary()
        return 0
    if action == "down":
        devcluster.down()
        print("dev cluster stopped")
        return 0
    running = devcluster.status()
    _print_status(running)
    return 0 if all(running.values()) else EXIT_NOT_ALL_RUNNING


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Progress of `up`/`down` goes to stderr, results to stdout.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("slurm_magics.devcluster")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        return _devcluster(args.action)
    except (devcluster.DevClusterError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
