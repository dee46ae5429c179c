"""Setup lines past Linux's 128 KiB per-argument limit (MAX_ARG_STRLEN): connect's Python
check, the job scripts and the local backend take them, on every transport (a module list
and environment of a real site can be long). They once failed at connect with a raw
``OSError: [Errno 7] Argument list too long``."""

from __future__ import annotations

import os

import pytest

import slurm_magics as sm
from slurm_magics.jobs.engine import engine
from slurm_magics.transport import run_script
from tests.helpers import sibling

pytestmark = pytest.mark.cluster

#: ~200 KiB of setup: 2,500 exports of 80 bytes each
LONG_SETUP = [f"export SM_PAD_{i}={'x' * 64}" for i in range(2500)] + ["export SM_LAST=ran"]


def last_exported() -> tuple[str | None, str | None]:
    return os.environ.get("SM_LAST"), os.environ.get("SM_PAD_2499")


def test_setup_lines_past_the_argument_limit_connect_and_run(cluster: sm.Cluster) -> None:
    assert len("\n".join(LONG_SETUP).encode()) > 128 * 1024
    other = sibling(cluster, setup=LONG_SETUP)  # connect runs them with its Python check
    try:
        job = other.submit(last_exported)
        assert job.result(timeout=300) == ("ran", "x" * 64)
    finally:
        other.close()


def test_a_script_on_standard_input_runs_whole_and_its_commands_read_none_of_it(
    cluster: sm.Cluster,
) -> None:
    # `cat` would print the rest of the script if bash left it unread on its input
    script = "\n".join(["cat", "echo first", *LONG_SETUP, 'echo "$SM_LAST"', "exit 3"])
    result = engine.call(run_script(cluster.transport, script))
    assert (result.returncode, result.stdout.split()) == (3, ["first", "ran"])
