"""connect() on a machine without sbatch: the local backend, with a warning that says so
(issue 12: an untested path). A real process whose PATH has no SLURM commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

CODE = textwrap.dedent(
    """
    import json, sys, warnings
    import slurm_magics as sm

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cluster = sm.connect(root=sys.argv[1])
    job = sm.task(lambda x: x * 2)(21)
    try:
        sm.connect(root=sys.argv[1], backend="slurm")
        refused = ""
    except sm.ClusterError as error:
        refused = str(error)
    print(json.dumps({
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
        "scheduler": type(cluster.scheduler).__name__,
        "value": job.result(timeout=60),
        "refused": refused,
    }))
    """
)


def test_connect_without_sbatch_uses_the_local_backend_and_says_so(tmp_path: Path) -> None:
    tools = tmp_path / "bin"  # what a machine without SLURM has: a shell, no sbatch
    tools.mkdir()
    for name in ("bash", "id", "env"):
        found = shutil.which(name)
        assert found is not None, name
        (tools / name).symlink_to(found)
    assert shutil.which("sbatch", path=str(tools)) is None
    done = subprocess.run(
        [sys.executable, "-c", CODE, str(tmp_path / "root")],
        env={**os.environ, "PATH": str(tools)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["scheduler"] == "LocalScheduler"
    assert report["value"] == 42
    assert any(
        w.startswith("UserWarning: no `sbatch` on PATH: using the local backend")
        for w in report["warnings"]
    ), report["warnings"]
    assert "backend='slurm' but there is no `sbatch` on PATH" in report["refused"]
