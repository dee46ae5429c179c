"""Build, push and pin a container image with podman or docker, here (where the code is).

Build output streams as a progress bar (one step per Dockerfile instruction); a failing
build or push raises ``PackagingError`` with its last lines (the registry's own answer).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from slurm_magics.core.launch_scripts import pinned_reference
from slurm_magics.core.packaging import ContainerOptions, PackagingError

__all__ = ["BuildProgress", "build_image", "find_builder", "push_image", "resolve_image"]

_TAIL_LINES = 30
_STEP = re.compile(r"^(?:STEP|Step) (\d+)/(\d+)\s*:?\s*(.*)")  # podman / docker (legacy)
_DOCKER_PUSH_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def find_builder(name: str | None) -> str:
    """The path of podman or docker (``name``, or the first found); PackagingError if none."""
    for candidate in (name,) if name else ("podman", "docker"):
        path = shutil.which(candidate)
        if path:
            return path
    wanted = name or "podman or docker"
    raise PackagingError(
        f"no container runtime found to build the image: {wanted} is not on PATH here. "
        "Install podman (e.g. `apt-get install podman`) or docker, or pass "
        "Packaging.container(image='name@sha256:...') to use an image built elsewhere."
    )


class BuildProgress:
    """Turns build output lines into a tqdm bar over the Dockerfile's steps."""

    def __init__(self, description: str, *, show: bool = True) -> None:
        self.description = description
        self.show = show
        self.steps: list[str] = []
        self._bar: tqdm | None = None

    def __call__(self, line: str) -> None:
        match = _STEP.match(line)
        if match is None:
            return
        step, total, text = int(match.group(1)), int(match.group(2)), match.group(3)
        self.steps.append(line)
        if not self.show:
            return
        if self._bar is None:
            self._bar = tqdm(total=total, desc=self.description, unit="step", leave=False)
        self._bar.n = step - 1
        self._bar.set_postfix_str(text[:50], refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.n = self._bar.total
            self._bar.close()


async def _stream(argv: Sequence[str], on_line: Callable[[str], None]) -> tuple[int, list[str]]:
    """Run argv, call on_line per output line (stdout and stderr); (exit code, last lines)."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert process.stdout is not None
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip()
        tail.append(line)
        on_line(line)
    return await process.wait(), list(tail)


def _build_tag(options: ContainerOptions) -> str:
    assert options.registry is not None
    name = options.registry.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def _build_paths(options: ContainerOptions) -> tuple[Path, Path]:
    assert options.dockerfile is not None
    dockerfile = Path(options.dockerfile).resolve()
    context = Path(options.context).resolve() if options.context else dockerfile.parent
    if not dockerfile.is_file():
        raise PackagingError(
            f"the Dockerfile {options.dockerfile!r} does not exist (looked at {dockerfile})."
        )
    return dockerfile, context


async def build_image(
    builder: str, options: ContainerOptions, progress: Callable[[str], None]
) -> str:
    """Build ``options.dockerfile`` and return the tag it got (the registry's name)."""
    dockerfile, context = _build_paths(options)
    tag = _build_tag(options)
    argv = [builder, "build", "--file", str(dockerfile), "--tag", tag]
    if options.platform:
        argv += ["--platform", options.platform]
    for key, value in options.build_args:
        argv += ["--build-arg", f"{key}={value}"]
    code, tail = await _stream([*argv, str(context)], progress)
    if code != 0:
        raise PackagingError(
            f"`{Path(builder).name} build` of {dockerfile} failed (exit code {code}); "
            "its last lines:\n" + "\n".join(tail)
        )
    return tag


async def push_image(builder: str, tag: str, *, tls_verify: bool) -> str:
    """Push ``tag`` and return the digest the registry stored (``sha256:...``)."""
    name = Path(builder).name
    with tempfile.TemporaryDirectory(prefix="slurm-magics-push-") as folder:
        digest_file = Path(folder) / "digest"
        if name == "docker":  # docker's TLS settings live in its daemon's config
            argv = [builder, "push", tag]
        else:
            argv = [builder, "push", f"--tls-verify={str(tls_verify).lower()}",
                    "--digestfile", str(digest_file), tag]  # fmt: skip
        code, tail = await _stream(argv, lambda line: None)
        if code != 0:
            hint = (
                " The registry speaks plain HTTP or has a self-signed certificate? Pass "
                "tls_verify=False."
                if tls_verify and any("http" in line.lower() for line in tail)
                else ""
            )
            raise PackagingError(
                f"the registry refused the push of {tag} (`{name} push` exit code {code}).{hint} "
                "It answered:\n" + "\n".join(tail)
            )
        text = _read_text(digest_file) or "\n".join(tail)
    found = re.search(r"sha256:[0-9a-f]{64}", text)
    if found is None:
        raise PackagingError(f"`{name} push {tag}` did not report a digest:\n{text}")
    return found.group(0)


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


async def resolve_image(options: ContainerOptions, progress: Callable[[str], None]) -> str:
    """The image reference job scripts use, pinned by digest: built and pushed, or given."""
    if options.image is not None and "@sha256:" in options.image:
        name, _, digest = options.image.partition("@")
        return pinned_reference(name, digest)
    if options.registry is None or not options.push:
        raise PackagingError(
            f"image={options.image!r} is not pinned by digest: pass "
            "image='name@sha256:...', or registry='host[:port]/name' (with push=True) to "
            "push it there and pin what the registry stored."
        )
    builder = find_builder(options.builder)
    if options.dockerfile is not None:
        tag = await build_image(builder, options, progress)
    else:
        assert options.image is not None
        tag = _build_tag(options)
        code, tail = await _stream([builder, "tag", options.image, tag], lambda line: None)
        if code != 0:
            raise PackagingError(f"`tag {options.image} {tag}` failed:\n" + "\n".join(tail))
    digest = await push_image(builder, tag, tls_verify=options.tls_verify)
    return pinned_reference(tag, digest)
