"""``packaging="wheel"``: build the user's project as a wheel here, install it once per
content hash into a venv on the cluster, and run jobs with that venv's Python."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import cloudpickle

from slurm_magics.core.launch_scripts import render_venv_build, venv_path, wheel_digest
from slurm_magics.core.packaging import Launch, PackagingError, WheelOptions
from slurm_magics.jobs.environment import check_environment
from slurm_magics.transport import Transport, run_script

__all__ = ["BuiltWheel", "build_wheel", "find_project", "prepare_wheel"]

_TAIL_LINES = 25


@dataclasses.dataclass(frozen=True)
class BuiltWheel:
    """A wheel built here: its file name, bytes, content digest and top-level modules."""

    filename: str
    data: bytes
    digest: str
    distribution: str
    top_level: tuple[str, ...]
    pure: bool  # only pure-Python files for site-packages: installed by unzipping


def find_project(start: str | None = None) -> Path:
    """The folder holding ``pyproject.toml`` at or above ``start`` (default: the working
    directory). Raises PackagingError when there is none."""
    origin = Path(start or os.getcwd()).resolve()
    for folder in (origin, *origin.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    raise PackagingError(
        f"packaging='wheel' builds the project whose pyproject.toml is at or above the "
        f"notebook, but there is none at or above {origin}: add a pyproject.toml to the "
        "project, pass sm.Packaging.wheel('/path/to/project'), or use packaging='none'."
    )


def _top_level(names: list[str]) -> tuple[str, ...]:
    found: set[str] = set()
    for name in names:
        first = name.split("/", 1)[0]
        if first.endswith((".dist-info", ".data")):
            continue
        found.add(first.removesuffix(".py") if "/" not in name else first)
    return tuple(sorted(module for module in found if module.isidentifier()))


async def _pip_wheel(project: Path, out: str, *flags: str) -> tuple[int | None, bytes]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
        "--quiet", *flags, "--wheel-dir", out, str(project),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    return process.returncode, output


async def build_wheel(project: Path) -> BuiltWheel:
    """``pip wheel --no-deps`` of ``project``; PackagingError with pip's last lines when it
    fails. The build backend installed here is used when it satisfies the project's
    build requirements (seconds); otherwise pip builds in isolation (it fetches them)."""
    with tempfile.TemporaryDirectory(prefix="slurm-magics-wheel-") as out:
        code, output = await _pip_wheel(
            project, out, "--no-build-isolation", "--check-build-dependencies"
        )
        if code != 0:
            code, output = await _pip_wheel(project, out)
        wheel = _read_wheel(Path(out)) if code == 0 else None
    if wheel is None:
        tail = "\n".join(output.decode(errors="replace").splitlines()[-_TAIL_LINES:])
        raise PackagingError(
            f"building a wheel of {project} failed (`pip wheel --no-deps {project}` exit "
            f"code {code}); fix the project's build, last lines:\n{tail}"
        )
    return wheel


def _read_wheel(folder: Path) -> BuiltWheel | None:
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        return None
    data = wheels[0].read_bytes()
    with zipfile.ZipFile(wheels[0]) as archive:
        names = archive.namelist()
        digest = wheel_digest((name, archive.read(name)) for name in names)
        metadata = next((n for n in names if n.endswith(".dist-info/WHEEL")), "")
        purelib = metadata and b"Root-Is-Purelib: true" in archive.read(metadata)
    return BuiltWheel(
        filename=wheels[0].name,
        data=data,
        digest=digest,
        distribution=wheels[0].name.split("-", 1)[0],
        top_level=_top_level(names),
        pure=bool(purelib) and not any(".data/" in name for name in names),
    )


async def prepare_wheel(
    options: WheelOptions,
    *,
    transport: Transport,
    root: str,
    python: str,
    setup: tuple[str, ...],
    events: dict[str, int],
) -> Launch:
    """Build the wheel, and unless its venv exists on the cluster (one check), upload it and
    build the venv there; returns the Launch running the venv's Python.

    ``events`` counts ``wheel_uploads``, ``venv_builds`` and ``venv_reuses``.
    """
    wheel = await build_wheel(find_project(options.project))
    venv = venv_path(root, wheel.distribution, wheel.digest)
    venv_python = f"{venv}/bin/python"
    exists = await transport.run(["test", "-x", venv_python])
    if exists.returncode == 0:
        events["venv_reuses"] = events.get("venv_reuses", 0) + 1
    else:
        folder = f"{root}/wheels/{wheel.digest[:16]}"
        await transport.make_dirs(folder)
        wheel_path = f"{folder}/{wheel.filename}"
        await transport.write_files({wheel_path: wheel.data})
        events["wheel_uploads"] = events.get("wheel_uploads", 0) + 1
        requirements = (
            () if options.system_site_packages else (f"cloudpickle=={cloudpickle.__version__}",)
        )
        script = render_venv_build(
            python,
            venv,
            wheel_path,
            system_site_packages=options.system_site_packages,
            requirements=requirements,
            unzip=wheel.pure,
        )
        setup_lines = "\n".join(setup)
        result = await run_script(transport, f"{setup_lines}\n{script}", timeout=600.0)
        said = result.stdout.strip().splitlines()
        if result.returncode != 0 or not said or not said[-1].startswith("venv:"):
            tail = "\n".join((result.stderr or result.stdout).splitlines()[-_TAIL_LINES:])
            raise PackagingError(
                f"installing {wheel.filename} into a venv at {venv} with `{python} -m venv` "
                f"failed (exit code {result.returncode}); check that {python} there has the "
                f"venv module (e.g. Debian's python3-venv). It said:\n{tail}"
            )
        key = "venv_builds" if said[-1] == "venv:built" else "venv_reuses"
        events[key] = events.get(key, 0) + 1
    await check_environment(transport, venv_python, setup)
    return Launch(python=venv_python, by_reference=wheel.top_level)
