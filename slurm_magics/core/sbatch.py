"""Render the batch script of one submission (pure; golden-file tested)."""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Sequence

from slurm_magics.core.resources import ResourceError, Resources

__all__ = [
    "MAX_SCRIPT_BYTES",
    "ScriptSpec",
    "check_path",
    "log_path",
    "render_script",
    "sanitise_job_name",
    "submission_comment",
]

#: slurmctld refuses larger batch scripts ("... parameter too long"; SLURM 22.05, measured)
MAX_SCRIPT_BYTES = 4 * 1024 * 1024
_UNSAFE_PATH = re.compile(r"[\s\"'\\$`#%]")
# sbatch reads #SBATCH values like a shell word: '#' starts a comment, '\\' escapes and
# double quotes group, so a value holding any of these (or whitespace) is quoted and escaped.
_NEEDS_QUOTES = re.compile(r'[\s"\\#]')


def check_path(path: str, *, what: str = "run folder") -> str:
    """Refuse paths that would need quoting inside #SBATCH lines."""
    if _UNSAFE_PATH.search(path):
        raise ValueError(
            f"the {what} {path!r} contains whitespace, quotes, '$', '#', '%' or a backslash, "
            "which sbatch cannot take in #SBATCH lines: choose a plain path "
            "(connect(..., root=...))."
        )
    return path


def submission_comment(tag: str) -> str:
    """The --comment that marks one sbatch call ("slurm_magics:RUN.SLICE")."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", tag):
        raise ValueError(f"a submission tag must be letters, digits, '_', '.', '-': {tag!r}")
    return f"slurm_magics:{tag}"


def sanitise_job_name(name: str) -> str:
    """A job name SLURM and shells take as it is (letters, digits, '_', '.', '-')."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "job"
    return cleaned[:64]


@dataclasses.dataclass(frozen=True)
class ScriptSpec:
    """Everything one sbatch call needs."""

    name: str
    resources: Resources
    run_dir: str
    runner_path: str
    python: str
    n_elements: int  # array size of this slice; 0 for a job that is not an array
    element_offset: int = 0  # the first element of this slice within the run
    max_concurrent: int | None = None
    dependency: str | None = None
    setup: Sequence[str] = ()
    #: marks the job as this submission (its --comment), to find it again after a lost reply
    tag: str = ""
    #: let SLURM requeue the job (``retries=`` needs it: ``scontrol requeue`` refuses
    #: --no-requeue jobs); otherwise --no-requeue, unless the user's extra= says otherwise
    requeue: bool = False

    @property
    def requeue_option(self) -> str | None:
        """The requeue line this script adds ("requeue", "no-requeue"), or None when the
        user's own extra= renders it (extra={"requeue": True} asks for SLURM's requeue)."""
        extra = self.resources.extra
        if extra.get("requeue") is False:
            return "no-requeue"
        if extra.get("requeue") or extra.get("no-requeue"):
            return None
        return "requeue" if self.requeue else "no-requeue"

    #: shell words put before the Python (a container launcher, see core.packaging)
    launcher: str = ""

    @property
    def sent_tag(self) -> str:
        """The tag as it reaches SLURM: none when the user's own --comment takes its place."""
        if "comment" in (option for option, _ in self.resources.sbatch_options()):
            return ""
        return self.tag


def render_script(spec: ScriptSpec) -> str:
    """The batch script: #SBATCH lines, optional setup lines, then exec of the runner."""
    check_path(spec.run_dir)
    lines = ["#!/bin/bash", f"#SBATCH --job-name={sanitise_job_name(spec.name)}"]
    if spec.n_elements:
        throttle = f"%{spec.max_concurrent}" if spec.max_concurrent else ""
        lines.append(f"#SBATCH --array=0-{spec.n_elements - 1}{throttle}")
        pattern = f"{spec.run_dir}/logs/%A_%a"
    else:
        pattern = f"{spec.run_dir}/logs/%j"
    lines += [f"#SBATCH --output={pattern}.out", f"#SBATCH --error={pattern}.err"]
    if spec.dependency:
        lines.append(f"#SBATCH --dependency={spec.dependency}")
    if spec.sent_tag:
        lines.append(f"#SBATCH --comment={submission_comment(spec.sent_tag)}")
    if spec.requeue_option:
        # SLURM requeues a job whose node failed by default and runs the function again
        # behind the user's back; how often it runs is what retries= says.
        lines.append(f"#SBATCH --{spec.requeue_option}")
    for option, value in spec.resources.sbatch_options():
        if value is None:
            lines.append(f"#SBATCH --{option}")
        elif _NEEDS_QUOTES.search(value):
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'#SBATCH --{option}="{escaped}"')
        else:
            lines.append(f"#SBATCH --{option}={value}")
    lines.append("")
    lines.extend(spec.setup)
    element = (
        f"$(( ${{SLURM_ARRAY_TASK_ID}} + {spec.element_offset} ))"
        if spec.n_elements
        else str(spec.element_offset)
    )
    launcher = f"{spec.launcher} " if spec.launcher else ""
    lines.append(
        f"exec {launcher}{shlex.quote(spec.python)} {shlex.quote(spec.runner_path)} "
        f"{shlex.quote(spec.run_dir)} {element}"
    )
    script = "\n".join(lines) + "\n"
    if len(script.encode()) > MAX_SCRIPT_BYTES:
        raise ResourceError(
            f"the job script is {len(script.encode())} bytes long: SLURM refuses scripts over "
            f"{MAX_SCRIPT_BYTES} bytes (4 MiB): shorten its extra options or setup lines (put "
            "long setup in a file on the cluster and `source` it)."
        )
    return script


def log_path(run_dir: str, slurm_job_id: str, *, stream: str = "out") -> str:
    """Where SLURM writes an element's stdout/stderr ("123" or "123_4")."""
    return f"{run_dir}/logs/{slurm_job_id}.{stream}"
