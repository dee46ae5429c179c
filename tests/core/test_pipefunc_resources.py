"""pipefunc's Resources onto sm.Resources, field by field (pure; real pipefunc objects)."""

from __future__ import annotations

import pytest
from pipefunc.resources import Resources as PipefuncResources

import slurm_magics as sm
from slurm_magics.core.pipefunc_resources import PIPEFUNC_FIELDS, resources_from_pipefunc


def test_every_pipefunc_field_is_known() -> None:
    # A new field in pipefunc's Resources must get a conversion (or a clear error) here.
    assert set(PIPEFUNC_FIELDS) == set(PipefuncResources.__dataclass_fields__)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"cpus": 3}, sm.Resources(cpus=3)),
        ({"nodes": 2}, sm.Resources(nodes=2)),
        (
            {"nodes": 2, "cpus_per_node": 4},
            sm.Resources(nodes=2, cpus=4, extra={"ntasks-per-node": "1"}),
        ),
        ({"memory": "300MB"}, sm.Resources(memory=300)),
        ({"memory": "2GB"}, sm.Resources(memory=2048)),  # as SLURM reads --mem=2GB
        ({"memory": "1.5gb"}, sm.Resources(memory=1536)),
        ({"memory": "512KB"}, sm.Resources(memory=1)),  # rounded up, never zero
        ({"memory": "1TB"}, sm.Resources(memory=1024 * 1024)),
        ({"gpus": 2}, sm.Resources(gpus=2)),
        ({"gpus": 0}, sm.Resources(gpus=0)),
        ({"time": "2:00:00"}, sm.Resources(time="02:00:00")),
        ({"time": "48:00:00"}, sm.Resources(time="2-00:00:00")),
        ({"time": "00:30"}, sm.Resources(time="00:00:30")),  # MM:SS, as SLURM reads it
        ({"partition": "debug"}, sm.Resources(partition="debug")),
        ({"parallelization_mode": "internal", "cpus": 2}, sm.Resources(cpus=2)),
        (
            {"extra_args": {"account": "proj", "qos": "high", "constraint": "intel"}},
            sm.Resources(account="proj", qos="high", constraint="intel"),
        ),
        (
            {"extra_args": {"mail-type": "END", "--exclusive": True, "mail_user": "a@b.c"}},
            sm.Resources(extra={"mail-type": "END", "exclusive": True, "mail-user": "a@b.c"}),
        ),
    ],
)
def test_each_field_converts(fields: dict[str, object], expected: sm.Resources) -> None:
    assert resources_from_pipefunc(PipefuncResources(**fields)) == expected  # type: ignore[arg-type]
    assert resources_from_pipefunc(fields) == expected  # a plain dict of the same fields


def test_converted_resources_render_as_sbatch_options() -> None:
    converted = resources_from_pipefunc(
        PipefuncResources(cpus=2, memory="300MB", time="1:30:00", gpus=1, partition="debug")
    )
    assert dict(converted.sbatch_options()) == {
        "cpus-per-task": "2",
        "mem": "300M",
        "time": "01:30:00",
        "gres": "gpu:1",
        "partition": "debug",
    }


def test_sm_resources_pass_through_and_empty_is_empty() -> None:
    ours = sm.Resources(cpus=4)
    assert resources_from_pipefunc(ours) is ours
    assert resources_from_pipefunc(PipefuncResources()) == sm.Resources()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"extra_args": {"executor_type": "process-pool"}}, r"executor_type.*adaptive_scheduler"),
        ({"extra_args": {"mem": "4G"}}, r"extra_args\['mem'\].*memory= field"),
        ({"extra_args": {"cpus-per-task": 2}}, r"cpus= field"),
        ({"extra_args": {"array": "0-3"}}, r"--array itself"),
        ({"extra_args": {"dependency": "afterok:1"}}, r"--dependency itself"),
        ({"time": "1:02:03:04"}, r"time='1:02:03:04' has four fields"),
        ({"partition": "no spaces"}, r"partition='no spaces'"),
    ],
)
def test_fields_we_cannot_honour_are_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(sm.ResourceError, match=message):
        resources_from_pipefunc(PipefuncResources(**fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cores": 2}, r"'cores' are not pipefunc's"),
        ({"memory": "4 gigs"}, r"memory='4 gigs' is not a memory size"),
        ({"memory": 4096}, r"memory=4096 is not a memory size"),
        ({"cpus_per_node": 2}, r"cpus_per_node=2 needs nodes="),
        ({"parallelization_mode": "both"}, r"parallelization_mode='both'"),
        ({"extra_args": ["--exclusive"]}, r"extra_args=\['--exclusive'\] must be a dict"),
        ({"cpus": 0}, r"cpus=0 must be at least 1"),
    ],
)
def test_malformed_dicts_are_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(sm.ResourceError, match=message):
        resources_from_pipefunc(fields)
