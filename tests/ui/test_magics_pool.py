"""``%%slurm --pool VAR``: the cell runs on a WorkerPool's workers, in an IPython shell."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import slurm_magics as sm
from slurm_magics.api.connect import default_cluster
from slurm_magics.ui.magics.options import OptionsError, parse_cell


def test_the_pool_option_takes_a_variable_name() -> None:
    assert parse_cell("-o out --pool workers").pool == "workers"
    assert parse_cell("-o out").pool is None
    with pytest.raises(OptionsError, match="--pool"):
        parse_cell("--pool 3x")


@pytest.mark.cluster
def test_a_cell_runs_on_the_pool_named_by_pool(cluster: sm.Cluster) -> None:
    assert default_cluster() is cluster  # the magics use the default cluster
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "slurm_magics")
    with sm.WorkerPool(2, memory="200M", time="00:10:00", cluster=cluster, name="cellpool") as pool:
        pool.ready(1).result(timeout=300)
        shell.user_ns["workers"] = pool
        shell.user_ns["base"] = 20
        assert shell.run_cell_magic("slurm", "-o out --pool workers --wait", "base + 22") == 42
        job = shell.user_ns["out"]
        assert job.job_id.startswith(f"{pool.job_id}/")
        shell.user_ns["not_a_pool"] = 3
        with pytest.raises(UsageError, match="not a WorkerPool"):
            shell.run_cell_magic("slurm", "--pool not_a_pool", "1")
