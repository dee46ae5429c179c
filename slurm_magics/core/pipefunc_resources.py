"""pipefunc's resource requests as ``sm.Resources`` (pure; pipefunc itself not needed).

One conversion, field by field, of ``pipefunc.resources.Resources`` (or a dict of its
fields) onto what sbatch is asked for; anything that cannot be honoured is a
``ResourceError`` naming the field, raised before anything is submitted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from slurm_magics.core.resources import ResourceError, Resources, parse_time

__all__ = ["PIPEFUNC_FIELDS", "resources_from_pipefunc"]

#: the fields of pipefunc.resources.Resources, all of which are converted
PIPEFUNC_FIELDS = (
    "cpus", "cpus_per_node", "nodes", "memory", "gpus", "time", "partition", "extra_args",
    "parallelization_mode",
)  # fmt: skip
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?B)$")
# SLURM reads memory units as powers of 1024 (what pipefunc's own --mem=2GB asks for).
_MEGABYTES = {"B": 2.0**-20, "KB": 2.0**-10, "MB": 1, "GB": 2**10, "TB": 2**20, "PB": 2**30}
_OWN_FIELD = {
    "mem": "memory",
    "time": "time",
    "gres": "gpus",
    "gpus": "gpus",
    "partition": "partition",
    "nodes": "nodes",
    "cpus-per-task": "cpus",
}
_MANAGED = ("array", "output", "error", "parsable", "wrap", "dependency", "chdir", "job-name",
            "open-mode")  # fmt: skip
_OPTIONS_OF_OURS = ("account", "qos", "constraint")


def _option_name(key: object) -> str:
    return str(key).removeprefix("--").replace("_", "-")


def _convert_extra(extra: object, changes: dict[str, Any]) -> None:
    if not isinstance(extra, Mapping):
        raise ResourceError(
            f"pipefunc resources extra_args={extra!r} must be a dict of sbatch options, "
            "e.g. {'mail-type': 'END'}."
        )
    options: dict[str, Any] = {}
    for key, value in extra.items():
        option = _option_name(key)
        if option == "executor-type":
            raise ResourceError(
                f"pipefunc resources extra_args[{key!r}]={value!r} chooses adaptive_scheduler's "
                "worker pool; sm.SlurmExecutor runs each call in one Python process per SLURM "
                "task: remove it (parallelism comes from the array, or from the function "
                "itself with parallelization_mode='internal')."
            )
        if option in _OWN_FIELD:
            raise ResourceError(
                f"pipefunc resources extra_args[{key!r}]={value!r}: set it as pipefunc's "
                f"{_OWN_FIELD[option]}= field instead, so sm.SlurmExecutor can merge it with "
                "the executor's defaults."
            )
        if option in _MANAGED:
            raise ResourceError(
                f"pipefunc resources extra_args[{key!r}]={value!r}: slurm_magics sets --{option} "
                "itself to track the job; remove it."
            )
        if option in _OPTIONS_OF_OURS:
            changes[option.replace("-", "_")] = str(value)
        else:
            options[option] = value
    if options:
        changes["extra"] = {**changes.get("extra", {}), **options}


def _memory_mb(value: object) -> int:
    match = _MEMORY.match(value.upper()) if isinstance(value, str) else None
    if match is None:
        raise ResourceError(
            f"pipefunc resources memory={value!r} is not a memory size: use a number and a "
            "unit B, KB, MB, GB, TB or PB, e.g. '500MB' or '2GB'."
        )
    number, unit = match.groups()
    return max(1, math.ceil(float(number) * _MEGABYTES[unit]))


def _slurm_time(value: object) -> int:
    if isinstance(value, str) and value.count(":") == 3:
        raise ResourceError(
            f"pipefunc resources time={value!r} has four fields, which SLURM does not read: "
            "give hours, minutes and seconds (e.g. '26:03:04' for a day and 2 hours)."
        )
    return parse_time(value, name="pipefunc resources time")  # type: ignore[arg-type]


def resources_from_pipefunc(value: object) -> Resources:
    """``sm.Resources`` for a pipefunc ``Resources`` (or a dict of its fields).

    Args:
        value: ``pipefunc.resources.Resources``, a dict with its field names (cpus,
            cpus_per_node, nodes, memory, gpus, time, partition, extra_args,
            parallelization_mode), or an ``sm.Resources`` (returned as it is).

    Returns:
        The same request as ``sm.Resources``: cpus -> --cpus-per-task; nodes with
        cpus_per_node -> --nodes, one task per node with that many CPUs; memory ("2GB",
        read as SLURM reads units, 1 GB = 1024 MB) -> --mem in MB; gpus -> --gres=gpu:N;
        time ("HH:MM:SS", "MM:SS") -> --time; partition; extra_args -> account, qos,
        constraint or extra sbatch options. parallelization_mode needs no option: the job
        has the CPUs either way.

    Raises:
        ResourceError: naming any field or extra_args option that cannot be honoured (an
            unknown field, adaptive_scheduler's executor_type, an option slurm_magics sets
            itself) or a malformed value.
    """
    if isinstance(value, Resources):
        return value
    if isinstance(value, Mapping):
        fields = dict(value)
    else:
        fields = {name: getattr(value, name, None) for name in PIPEFUNC_FIELDS}
    unknown = sorted(set(fields) - set(PIPEFUNC_FIELDS))
    if unknown:
        raise ResourceError(
            f"pipefunc resources field(s) {', '.join(map(repr, unknown))} are not pipefunc's: "
            f"use {', '.join(PIPEFUNC_FIELDS)}."
        )
    changes: dict[str, Any] = {}
    for name in ("cpus", "nodes", "gpus", "partition"):
        if fields.get(name) is not None:
            changes[name] = fields[name]
    per_node = fields.get("cpus_per_node")
    if per_node is not None:
        if fields.get("nodes") is None or fields.get("cpus") is not None:
            raise ResourceError(
                f"pipefunc resources cpus_per_node={per_node!r} needs nodes= and no cpus= "
                "(as pipefunc's own Resources requires)."
            )
        changes["cpus"] = per_node
        changes["extra"] = {"ntasks-per-node": "1"}
    if fields.get("memory") is not None:
        changes["memory"] = _memory_mb(fields["memory"])
    if fields.get("time") is not None:
        changes["time"] = timedelta(seconds=_slurm_time(fields["time"]))
    mode = fields.get("parallelization_mode")
    if mode not in (None, "internal", "external"):
        raise ResourceError(
            f"pipefunc resources parallelization_mode={mode!r} must be 'internal' or 'external'."
        )
    if fields.get("extra_args"):
        _convert_extra(fields["extra_args"], changes)
    try:
        return Resources(**changes)
    except ResourceError as error:
        raise ResourceError(f"pipefunc resources {fields!r}: {error}") from None
