"""The shell lines packaging puts in job scripts (pure; golden-file tested).

Container launchers for Pyxis/enroot, Apptainer and podman with the image pinned by digest,
and the script that builds a wheel's venv on the cluster (built aside, renamed into place).
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterable, Sequence

from slurm_magics.core.packaging import RUNTIMES, PackagingError, Runtime

__all__ = [
    "pinned_reference",
    "render_container_launch",
    "render_venv_build",
    "venv_path",
    "wheel_digest",
]

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


# --- containers -------------------------------------------------------------------------------


def _split_registry(reference: str) -> tuple[str, str]:
    """("host:port", "path...") for a reference naming a registry host, else ("", reference)."""
    first, sep, rest = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "", reference


def pinned_reference(repository: str, digest: str) -> str:
    """``host:port/path@sha256:...`` from a repository (any tag or digest dropped)."""
    if not _DIGEST.fullmatch(digest):
        raise PackagingError(f"{digest!r} is not an image digest (sha256:<64 hex digits>).")
    name = repository.split("@", 1)[0]
    host, path = _split_registry(name)
    path = path.rsplit(":", 1)[0] if ":" in path else path
    return f"{host}/{path}@{digest}" if host else f"{path}@{digest}"


def render_container_launch(
    runtime: Runtime, image: str, mounts: Sequence[str], *, tls_verify: bool = True
) -> tuple[tuple[str, ...], str]:
    """(setup lines, launcher) that run the job's Python inside ``image`` with ``mounts``
    (absolute cluster folders) and the job's working directory at the same paths, that
    directory kept as the working directory (Apptainer binds it by itself)."""
    if "@sha256:" not in image:
        raise PackagingError(f"job scripts pin images by digest; {image!r} has no @sha256:.")
    binds = list(dict.fromkeys(mounts))
    if runtime == "pyxis":
        host, path = _split_registry(image)
        enroot = f"{host}#{path}" if host else path
        setup = () if tls_verify else ("export ENROOT_ALLOW_HTTP=yes",)
        words = [
            "srun", "--ntasks=1", f"--container-image={enroot}",
            f"--container-mounts={','.join(f'{b}:{b}' for b in binds)},",
        ]  # fmt: skip
        quoted = " ".join(shlex.quote(word) for word in words)
        return setup, f'{quoted}"$PWD:$PWD" --container-workdir="$PWD"'
    if runtime == "apptainer":
        words = ["apptainer", "exec", "--bind", ",".join(binds)]
        if not tls_verify:
            words.append("--no-https")
        quoted = " ".join(shlex.quote(word) for word in words)
        return (), f'{quoted} --pwd "$PWD" {shlex.quote("docker://" + image)}'
    if runtime == "podman":
        # --network=host: the job talks to the same hosts as without a container; SLURM_*
        # variables pass through; --quiet keeps pull progress out of the job's stderr.
        words = ["podman", "run", "--rm", "--quiet", "--network=host", "--env=SLURM_*"]
        if not tls_verify:
            words.append("--tls-verify=false")
        for bind in binds:
            words.append(f"--volume={bind}:{bind}")
        quoted = " ".join(shlex.quote(word) for word in words)
        return (), f'{quoted} --volume="$PWD:$PWD" --workdir="$PWD" {shlex.quote(image)}'
    raise PackagingError(f"runtime={runtime!r} must be one of {', '.join(RUNTIMES)}.")


# --- wheels -----------------------------------------------------------------------------------


def wheel_digest(members: Iterable[tuple[str, bytes]]) -> str:
    """A hex digest of a wheel's files (name and bytes), blind to zip timestamps, so the
    same project built twice gives the same digest."""
    digest = hashlib.sha256()
    for name, data in sorted(members):
        digest.update(f"{len(name)}:{name}:{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()


def venv_path(root: str, distribution: str, digest: str) -> str:
    """``<root>/venvs/<distribution>-<digest[:16]>``: one venv per wheel content."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", distribution)
    return f"{root}/venvs/{safe}-{digest[:16]}"


def render_venv_build(
    python: str, venv: str, wheel: str, *, system_site_packages: bool = True,
    requirements: Sequence[str] = (), unzip: bool = False,
) -> str:  # fmt: skip
    """A bash script that makes ``venv`` with ``wheel`` installed, unless it exists.

    It builds in a temporary sibling folder and renames it into place; when another build
    won the race the rename fails and its copy is dropped. Prints ``venv:built`` or
    ``venv:reused`` last. A pure-Python wheel (``unzip``) is unpacked into site-packages,
    which is all pip would do with it; others go through the cluster Python's pip.
    ``requirements`` (e.g. cloudpickle when the venv does not see the cluster Python's
    packages) are installed with pip.
    """
    q = shlex.quote
    flags = " --system-site-packages" if system_site_packages else ""
    pip = (
        f"{q(python)} -m pip install --quiet --disable-pip-version-check "
        '--target "$purelib" --no-compile'
    )
    lines = [
        "set -euo pipefail",
        f"final={q(venv)}",
        'if [ -x "$final/bin/python" ]; then echo venv:reused; exit 0; fi',
        'mkdir -p "$(dirname "$final")"',
        'tmp="$final.tmp-$$-$RANDOM"',
        "trap 'rm -rf \"$tmp\"' EXIT",
        # No pip inside the venv (ensurepip is slow): the base Python's pip fills it.
        f'{q(python)} -m venv --without-pip{flags} "$tmp"',
        'purelib=$("$tmp/bin/python" -c '
        "'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')",
    ]
    if system_site_packages:
        # --system-site-packages shows the base interpreter's packages only; when the
        # cluster's Python is itself a venv, a .pth file adds its site folders too.
        lines.append(
            f"{q(python)} -c 'import site; print(*site.getsitepackages(), sep=chr(10))' "
            '> "$purelib/_slurm_magics_base.pth"'
        )
    if unzip:
        lines.append(
            '"$tmp/bin/python" -c \'import sys, zipfile; '
            "zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "
            f'{q(wheel)} "$purelib"'
        )
    else:
        lines.append(f"{pip} --no-deps --no-index {q(wheel)}")
    if requirements:
        lines.append(f"{pip} {' '.join(q(r) for r in requirements)}")
    lines += [
        # rename(2) onto an existing non-empty folder fails: the first finished build wins.
        'if mv -T "$tmp" "$final" 2>/dev/null; then trap - EXIT; echo venv:built; '
        "else echo venv:reused; fi",
    ]
    return "\n".join(lines) + "\n"
