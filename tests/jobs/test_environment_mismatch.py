"""connect() refuses a cluster Python that cannot read the notebook's payloads, before
anything is submitted (issue 12: untested paths): another Python minor version, and
cloudpickle of another major version. Both are real interpreters on this machine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest

import slurm_magics as sm
from tests.helpers import require_cluster

pytestmark = pytest.mark.cluster

OURS = "{}.{}".format(*sys.version_info[:2])
#: a cloudpickle of another major version than the one here (installed once, cached)
OTHER_CLOUDPICKLE = "2.2.1" if not cloudpickle.__version__.startswith("2.") else "3.1.1"


def _candidates(minor: int) -> list[str]:
    """python3.MINOR on PATH, and pyenv's installs of it (its shims run only selected ones)."""
    found = [shutil.which(f"python3.{minor}") or ""]
    pyenv = shutil.which("pyenv")
    if pyenv is not None:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        versions = Path(root.stdout.strip()) / "versions"
        found += sorted(str(p) for p in versions.glob(f"3.{minor}.*/bin/python3.{minor}"))
    return [path for path in found if path]


def another_python() -> str:
    """A Python 3 of another minor version on PATH or in pyenv (fails without one)."""
    for minor, found in ((m, p) for m in range(8, 16) for p in _candidates(m)):
        if f"3.{minor}" == OURS:
            continue
        said = subprocess.run(
            [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if said.returncode == 0 and said.stdout.strip() == f"3.{minor}":
            return found
    pytest.fail(f"no python3.N other than {OURS} on PATH: install one (e.g. Debian's or pyenv's)")


def with_other_cloudpickle() -> Path:
    """A venv of this Python with cloudpickle of another major version (built once)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    venv = cache / "slurm-magics-tests" / f"py{OURS}-cloudpickle-{OTHER_CLOUDPICKLE}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        installed = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"cloudpickle=={OTHER_CLOUDPICKLE}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if installed.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            pytest.fail(f"cannot install cloudpickle {OTHER_CLOUDPICKLE}: {installed.stderr}")
    return python


def test_another_python_minor_version_is_refused_at_connect(tmp_path: Path) -> None:
    require_cluster()
    other = another_python()
    with pytest.raises(sm.ClusterError) as refused:
        sm.connect(python=other, root=str(tmp_path / "root"), partition="debug")
    message = str(refused.value)
    assert re.search(
        rf"the cluster's Python `[^`]+` on .* is 3\.\d+, the notebook's is {OURS}", message
    )
    assert f"Pass python= a Python {OURS}" in message
    assert not (tmp_path / "root" / "runs").exists()  # nothing submitted


def test_another_cloudpickle_major_version_is_refused_at_connect(tmp_path: Path) -> None:
    require_cluster()
    python = with_other_cloudpickle()
    with pytest.raises(sm.ClusterError) as refused:
        sm.connect(python=str(python), root=str(tmp_path / "root"), partition="debug")
    message = str(refused.value)
    assert (
        f"has cloudpickle {OTHER_CLOUDPICKLE}, the notebook has {cloudpickle.__version__}"
        in message
    )
    assert f"pip install cloudpickle=={cloudpickle.__version__}" in message
    assert not (tmp_path / "root" / "runs").exists()
