"""A run folder this process cannot read never hangs a future nor stalls other jobs
(issue 12, failure 7): a non-root user reattaches to two jobs of an ended session, one of
whose result folders was made mode 000; the other resolves at once, and the unreadable
one fails after a short retry naming the path and the OS error."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import require_cluster, squeue_ids, wait_for

pytestmark = pytest.mark.cluster

READER = "slurm-magics-reader"  # a user of this machine created for the test, not root

#: submits two jobs and dies before they end (nothing of this session follows them)
SUBMIT = textwrap.dedent(
    """
    import json, os, sys
    import slurm_magics as sm

    cluster = sm.connect(root=sys.argv[1], partition="debug")
    first = sm.task(lambda: "first", memory="100M", name="unreadable").on(cluster)()
    second = sm.task(lambda: "second", memory="100M", name="readable").on(cluster)()
    print(json.dumps({"unreadable": [first.job_id, first.run.run_dir],
                      "readable": [second.job_id, second.run.run_dir]}), flush=True)
    os._exit(0)
    """
)

#: reattaches to both jobs by id; how long each took to resolve, and how
ATTACH = textwrap.dedent(
    """
    import json, sys, time
    import slurm_magics as sm
    from slurm_magics.api.history import attach

    cluster = sm.connect(root=sys.argv[1], partition="debug")
    start = time.monotonic()
    readable = attach(sys.argv[3], cluster=cluster)
    unreadable = attach(sys.argv[2], cluster=cluster)
    report = {"readable": readable.result(timeout=60),
              "readable_after": time.monotonic() - start}
    try:
        unreadable.result(timeout=90)
        report["unreadable"] = "no error"
    except Exception as error:
        report["unreadable"] = f"{type(error).__name__}: {error}"
        report["state"] = str(getattr(error, "state", ""))
        report["cause"] = type(error.__cause__).__name__
    report["unreadable_after"] = time.monotonic() - start
    print(json.dumps(report), flush=True)
    cluster.close()
    """
)


@pytest.fixture(scope="module")
def reader() -> pwd.struct_passwd:
    """A non-root user of this machine (created once, kept: creating users is slow)."""
    if os.geteuid() != 0:
        pytest.fail("this test makes files unreadable to another user: run it as root")
    try:
        return pwd.getpwnam(READER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--create-home", "--shell", "/bin/bash", READER], check=True
        )
        return pwd.getpwnam(READER)


@pytest.fixture
def reader_root(reader: pwd.struct_passwd) -> Iterator[Path]:
    """A folder the reader owns (runs, its registry)."""
    folder = Path(tempfile.mkdtemp(prefix="slurm-magics-reader-"))
    os.chown(folder, reader.pw_uid, reader.pw_gid)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def reader_python() -> str:
    """A Python the reader may run (this venv's lives under root's home): the system's,
    of the same minor version (same ABI), given this venv's packages as its user site."""
    system = shutil.which("python3", path="/usr/bin:/bin")
    wanted = "{}.{}".format(*sys.version_info[:2])
    if system is None:
        pytest.fail("no /usr/bin/python3 for the non-root reader: apt-get install python3")
    version = "import sys; print('%d.%d' % sys.version_info[:2])"
    found = subprocess.run([system, "-c", version], capture_output=True, text=True, check=True)
    if found.stdout.strip() != wanted:
        pytest.fail(f"/usr/bin/python3 is {found.stdout.strip()}; the reader needs {wanted}")
    return system


def as_reader(reader: pwd.struct_passwd, root: Path, code: str, *args: str) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": reader.pw_dir,
        "USER": reader.pw_name,
        "LOGNAME": reader.pw_name,
        "SLURM_MAGICS_REGISTRY": str(root / "registry.db"),
        # the venv's site-packages as the user site: "installed" (imported by name on the
        # cluster), and the editable install's .pth puts this checkout on the path
        "PYTHONUSERBASE": sys.prefix,
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),  # as the tests import it
    }
    done = subprocess.run(
        [reader_python(), "-c", code, str(root), *args],
        user=reader.pw_uid,
        group=reader.pw_gid,
        extra_groups=[],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done
    return done.stdout.strip().splitlines()[-1]


def test_an_unreadable_result_folder_fails_its_job_clearly_and_stalls_no_other(
    reader: pwd.struct_passwd, reader_root: Path
) -> None:
    require_cluster()
    submitted = json.loads(as_reader(reader, reader_root, SUBMIT))
    (bad_id, bad_dir), (good_id, good_dir) = submitted["unreadable"], submitted["readable"]
    results = Path(bad_dir) / "results"
    wait_for(
        lambda: (
            not {bad_id, good_id} & squeue_ids()
            and (results / "0.pkl").exists()
            and (Path(good_dir) / "results" / "0.pkl").exists()
        ),
        120,
        "both jobs to end with their results written",
    )
    results.chmod(0)  # root may; the reader may no longer list or read it
    probe = subprocess.run(
        ["cat", str(results / "0.pkl")], user=reader.pw_uid, capture_output=True, check=False
    )
    assert probe.returncode != 0 and b"Permission denied" in probe.stderr

    start = time.monotonic()
    report = json.loads(as_reader(reader, reader_root, ATTACH, bad_id, good_id))
    took = time.monotonic() - start
    assert report["readable"] == "second"
    assert report["readable_after"] < 15, report  # not stalled behind the unreadable one
    assert report["unreadable"].startswith("JobFailedError:"), report
    assert f"{results}/0.pkl" in report["unreadable"], report
    assert "PermissionError" in report["unreadable"], report
    assert "Permission denied" in report["unreadable"], report
    assert report["state"] == "FAILED" and report["cause"] == "PermissionError", report
    assert report["unreadable_after"] < 45, report
    print(
        f"readable after {report['readable_after']:.1f} s, unreadable failed after "
        f"{report['unreadable_after']:.1f} s (process {took:.1f} s)"
    )
