"""The connect-time check of the cluster's Python: found, same major.minor, cloudpickle.

Jobs and results travel as cloudpickle payloads, which need the same Python major.minor and
the same cloudpickle major version on both sides. Checking once at connect time (with the
job scripts' own setup lines) turns what would be a failure of every job into one error
that says what to install where.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from collections.abc import Sequence

import cloudpickle

from slurm_magics.core.errors import ClusterError
from slurm_magics.transport import Transport, run_script

__all__ = ["RemoteEnvironment", "check_environment"]

_TAG = "slurm_magics-environment:"
# Runs under any Python (even 2.7, to say it is the wrong one): stdlib only.
_PROBE = f"""
import json, sys
info = {{"executable": sys.executable, "version": list(sys.version_info[:2])}}
try:
    import cloudpickle
    info["cloudpickle"] = cloudpickle.__version__
except Exception as error:
    info["cloudpickle"] = None
    info["error"] = "%s: %s" % (type(error).__name__, error)
print("{_TAG}" + json.dumps(info))
"""


@dataclasses.dataclass(frozen=True)
class RemoteEnvironment:
    """What the cluster's Python said about itself."""

    executable: str
    version: tuple[int, int]
    cloudpickle: str | None


async def check_environment(
    transport: Transport,
    python: str,
    setup: Sequence[str] = (),
    *,
    launcher: str = "",
    timeout: float = 120.0,
) -> RemoteEnvironment:
    """Run the setup lines and ``python -c ...`` there (after ``launcher``, e.g. a
    container's ``podman run ... IMAGE``); ClusterError unless jobs can run."""
    where = _where(transport)
    command = f"{launcher} " if launcher else ""
    script = "\n".join([*setup, f"{command}{shlex.quote(python)} -c {shlex.quote(_PROBE)}"])
    result = await run_script(transport, script, timeout=timeout)
    found = [line for line in result.stdout.splitlines() if line.startswith(_TAG)]
    ran = f" after the setup lines {_shown(setup)}" if setup else ""
    if not found:
        said = (result.stderr or result.stdout).strip()[-1500:]
        if result.returncode == 127 or "not found" in said or "No such file" in said:
            raise ClusterError(
                f"Python `{python}` was not found on {where}{ran}: install Python "
                f"{_local_version()} with cloudpickle=={cloudpickle.__version__} there, or "
                "pass connect(..., python='/path/to/python3') or setup=['module load ...']."
                + (f"\nIt said: {said}" if said else "")
            )
        raise ClusterError(
            f"checking Python `{python}` on {where}{ran} failed with exit code "
            f"{result.returncode}" + (f": {said}" if said else "")
        )
    info = json.loads(found[-1][len(_TAG) :])
    version = info.get("cloudpickle")
    remote = RemoteEnvironment(
        executable=str(info["executable"]),
        version=(int(info["version"][0]), int(info["version"][1])),
        cloudpickle=None if version is None else str(version),
    )
    install = (
        f"`{remote.executable or python} -m pip install cloudpickle=={cloudpickle.__version__}`"
    )
    if remote.version != sys.version_info[:2]:
        raise ClusterError(
            f"the cluster's Python `{remote.executable}` on {where} is "
            f"{remote.version[0]}.{remote.version[1]}, the notebook's is {_local_version()}: "
            "functions and results travel as cloudpickle payloads, which need the same "
            f"major.minor on both sides. Pass python= a Python {_local_version()} on {where} "
            f"(or a setup line such as 'module load python/{_local_version()}'), or run the "
            f"notebook with Python {remote.version[0]}.{remote.version[1]}."
        )
    if remote.cloudpickle is None:
        raise ClusterError(
            f"cloudpickle is not importable by `{remote.executable}` on {where}{ran} "
            f"({info.get('error', 'ImportError')}): run {install} on {where}."
        )
    if remote.cloudpickle.split(".")[0] != cloudpickle.__version__.split(".")[0]:
        raise ClusterError(
            f"`{remote.executable}` on {where} has cloudpickle {remote.cloudpickle}, the "
            f"notebook has {cloudpickle.__version__}: payloads need the same major version; "
            f"run {install} on {where}."
        )
    return remote


def _where(transport: Transport) -> str:
    description = transport.description
    if description == "local":
        return "this machine"
    return description.removeprefix("ssh://")


def _local_version() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def _shown(setup: Sequence[str], limit: int = 400) -> str:
    """The setup lines as a message shows them: all of them, or the first few and a count."""
    whole = repr(list(setup))
    if len(whole) <= limit:
        return whole
    shown = repr(list(setup[:3]))[:limit]
    return f"{shown[:-1]}, ... ({len(setup)} lines, {sum(map(len, setup))} characters)]"
