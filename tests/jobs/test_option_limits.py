"""Options SLURM refuses past a length are refused here first, naming the option and the
limit, with nothing submitted; the limits are SLURM's own (checked against sbatch)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

import slurm_magics as sm
from slurm_magics.core.resources import LENGTH_LIMITS
from slurm_magics.core.sbatch import MAX_SCRIPT_BYTES

pytestmark = pytest.mark.cluster

TOO_LONG = "too long"  # slurmctld: "Pathname of a file, directory or other parameter too long"


def echo(x: str) -> int:
    return len(x)


def test_a_comment_past_slurms_limit_is_refused_before_sbatch(cluster: sm.Cluster) -> None:
    before = cluster.counters.get("sbatch", 0)
    with pytest.raises(sm.ResourceError, match=r"comment=.*1025 bytes.*more than 1024 bytes"):
        sm.task(echo, memory="100M", extra={"comment": "C" * 1025}).on(cluster)("x")
    with pytest.raises(sm.ResourceError, match="--mail-user"):
        sm.task(echo).with_options(extra={"mail_user": "m" * 1025}).on(cluster)("x")
    assert cluster.counters.get("sbatch", 0) == before  # nothing submitted
    job = sm.task(echo, memory="100M", extra={"comment": "C" * 1024}).on(cluster)("abc")
    assert job.result(timeout=120) == 3


def test_a_script_past_slurms_limit_is_refused_before_sbatch(cluster: sm.Cluster) -> None:
    before = cluster.counters.get("sbatch", 0)
    huge = sm.task(echo, memory="100M", extra={"export": "A" * MAX_SCRIPT_BYTES}).on(cluster)
    with pytest.raises(sm.ResourceError, match=r"job script is \d+ bytes long.*4 MiB"):
        huge("x")
    assert cluster.counters.get("sbatch", 0) == before
    # the refused call leaves nothing behind: the next call on the same cluster runs
    assert sm.task(echo, memory="100M").on(cluster)("after").result(timeout=120) == 5


def _sbatch_test_only(option: str, value: str) -> str:
    sbatch = shutil.which("sbatch")
    assert sbatch is not None
    argv = [sbatch, "--test-only", "--mem=10", f"--{option}={value}", "--wrap=true"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout + done.stderr


@pytest.mark.parametrize("option", sorted(LENGTH_LIMITS))
def test_the_limits_are_slurms(option: str) -> None:
    # --test-only asks slurmctld to check a job without queueing it.
    limit = LENGTH_LIMITS[option]
    filler = "/" if option == "input" else "c"
    assert TOO_LONG not in _sbatch_test_only(option, filler * limit)
    assert TOO_LONG in _sbatch_test_only(option, filler * (limit + 1))
    named = option in ("account", "qos", "partition", "constraint")  # keywords, not extra

    def asking(length: int) -> sm.Resources:
        if named:
            return sm.Resources(**{option: "c" * length})
        return sm.Resources(extra={option: filler * length})

    asking(limit)
    with pytest.raises(sm.ResourceError, match=f"--{option}; shorten"):
        asking(limit + 1)
