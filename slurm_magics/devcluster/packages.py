"""Preflight checks and installation of the Debian packages the dev cluster needs."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from .errors import DevClusterError
from .procs import run

__all__ = ["REQUIRED_PACKAGES", "check_debian", "check_root", "ensure_packages", "missing_packages"]

REQUIRED_PACKAGES = (
    "slurm-wlm", "munge", "slurmdbd", "mariadb-server", "openssh-server",
    # containers (packaging tests): podman with runc, a registry, debootstrap for the base image
    "podman", "runc", "docker-registry", "debootstrap",
)  # fmt: skip

_log = logging.getLogger(__name__)


_WHY_ROOT = {
    "up": "it installs packages, writes /etc/slurm/slurm.conf and starts system daemons",
    "down": "it stops daemons that run as root",
}


def check_root(action: str) -> None:
    if os.geteuid() != 0:
        why = _WHY_ROOT.get(action, "it manages system daemons")
        raise DevClusterError(
            f"`slurm-magics devcluster {action}` must run as root ({why}); you are uid "
            f"{os.geteuid()}. Run it as root, e.g. `sudo slurm-magics devcluster {action}`."
        )


def check_debian() -> None:
    if not Path("/etc/debian_version").exists() or shutil.which("apt-get") is None:
        raise DevClusterError(
            "the dev cluster supports Debian/Ubuntu only (needs /etc/debian_version, apt-get "
            "and dpkg-query); on other systems point slurm_magics at an existing SLURM cluster "
            "or run the dev cluster in a Debian container."
        )


def _is_installed(package: str) -> bool:
    proc = run(["dpkg-query", "-W", "-f=${Status}", package], check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "install ok installed"


def missing_packages(packages: Sequence[str] = REQUIRED_PACKAGES) -> list[str]:
    return [package for package in packages if not _is_installed(package)]


def ensure_packages(packages: Sequence[str] = REQUIRED_PACKAGES) -> list[str]:
    """Install whichever of `packages` is missing (apt only then); returns what was installed."""
    missing = missing_packages(packages)
    if not missing:
        return []
    _log.info("installing %s (apt-get) ...", " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    hint = (
        "check the network / apt sources, or install them by hand: "
        f"`apt-get update && apt-get install -y {' '.join(missing)}`"
    )
    try:
        run(["apt-get", "update"], env=env, timeout=600)
        run(["apt-get", "install", "-y", *missing], env=env, timeout=1800)
    except DevClusterError as exc:
        raise DevClusterError(f"installing {', '.join(missing)} failed: {exc}\n{hint}") from exc
    still_missing = missing_packages(missing)
    if still_missing:
        raise DevClusterError(f"apt-get did not install {', '.join(still_missing)}; {hint}")
    return missing
