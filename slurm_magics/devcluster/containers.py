"""Containers on the dev cluster: podman's settings, a loopback registry and a base image.

Podman's default runtime (crun) and default ulimits fail in unprivileged sandboxes (no
CAP_SYS_RESOURCE, mixed cgroup v1 controllers), so a drop-in containers.conf makes runc and
modest ulimits the defaults for every podman call, including the ones job scripts make.
The registry is Debian's `docker-registry` with a config of our own (loopback, no auth).
No image can be pulled from the internet here, so the base image (Debian's python3 plus
this Python's cloudpickle) is made from a debootstrapped rootfs and cached in podman's
storage, keyed by its recipe.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import cloudpickle

from .config import CONFIG_HEADER, ClusterParams, Layout
from .errors import DevClusterError
from .procs import log_tail, run, running_pid, spawn, wait_until

__all__ = [
    "BASE_IMAGE",
    "CONTAINERS_CONF_PATH",
    "RECIPE_LABEL",
    "apt_mirror",
    "ensure_base_image",
    "registry_answers",
    "registry_config_path",
    "render_containers_conf",
    "render_registry_config",
    "start_registry",
    "write_containers_conf",
]

_log = logging.getLogger(__name__)
CONTAINERS_CONF_PATH = Path("/etc/containers/containers.conf.d/slurm-magics-devcluster.conf")
BASE_IMAGE = "localhost/slurm-magics/python-cloudpickle:latest"
RECIPE_LABEL = "org.slurm-magics.recipe"
# Bump when the recipe below changes: the cached image is rebuilt.
_RECIPE_VERSION = "1"
_BASE_PACKAGES = ("python3-minimal", "libpython3-stdlib")
# Dropped from the rootfs before import: documentation, translations and apt's caches.
_TRIM = ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info",
         "var/cache/apt", "var/lib/apt/lists")  # fmt: skip


def render_containers_conf() -> str:
    """The drop-in that makes podman work in a sandbox without CAP_SYS_RESOURCE."""
    return (
        "\n".join(
            [
                CONFIG_HEADER,
                "# runc, not crun (crun fails on setrlimit and on hybrid cgroups here); ulimits",
                "# within what the sandbox allows; cgroupfs and file events (no systemd).",
                "[containers]",
                'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
                "",
                "[engine]",
                'runtime = "runc"',
                'cgroup_manager = "cgroupfs"',
                'events_logger = "file"',
            ]
        )
        + "\n"
    )


def render_registry_config(params: ClusterParams) -> str:
    """docker-registry's config: loopback only, storage in the state folder, no auth."""
    lay = params.layout
    return (
        "\n".join(
            [
                CONFIG_HEADER,
                "version: 0.1",
                "log:",
                "  level: warn",
                "storage:",
                "  filesystem:",
                f"    rootdirectory: {lay.state_dir / 'registry'}",
                "  delete:",
                "    enabled: true",
                "http:",
                f"  addr: 127.0.0.1:{params.registry_port}",
            ]
        )
        + "\n"
    )


def _write_if_changed(path: Path, text: str) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def write_containers_conf() -> None:
    if _write_if_changed(CONTAINERS_CONF_PATH, render_containers_conf()):
        _log.info("podman: wrote %s (runtime runc, ulimits)", CONTAINERS_CONF_PATH)


def registry_config_path(layout: Layout) -> Path:
    return layout.etc_dir / "registry.yml"


def registry_answers(port: int) -> bool:
    """True if the registry's API root answers on 127.0.0.1:`port`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as answer:
            return int(answer.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def start_registry(params: ClusterParams, executable: str) -> int:
    """Start `docker-registry serve` (it stays in the foreground) and return its pid."""
    lay = params.layout
    config = registry_config_path(lay)
    _write_if_changed(config, render_registry_config(params))
    (lay.state_dir / "registry").mkdir(parents=True, exist_ok=True)
    pid_file, log = lay.pid_file("registry"), lay.log("registry")
    # The registry writes no pid file: the shell records its own pid, then becomes it.
    script = 'echo $$ > "$1"; exec "$2" serve "$3"'
    spawn(["sh", "-c", script, "sh", str(pid_file), executable, str(config)], log, detach=True)
    if not wait_until(
        lambda: (
            running_pid(pid_file, executable) is not None and registry_answers(params.registry_port)
        ),
        20,
    ):
        raise DevClusterError(
            f"the registry did not answer on 127.0.0.1:{params.registry_port} within 20 s; "
            f"see {log}\n{log_tail(log)}"
        )
    pid = running_pid(pid_file, executable)
    assert pid is not None
    return pid


# --- the base image ---------------------------------------------------------------------------


def apt_mirror(sources: str) -> str | None:
    """The first Debian mirror in apt sources text: deb822 ``URIs: http://.../debian`` or a
    one-line ``deb [options] http://.../debian suite ...``; None if there is none."""
    found = re.search(r"^(?:URIs:|deb\b).*?(https?://\S+/debian)/?(?:\s|$)", sources, re.M)
    return found.group(1) if found else None


def _debian_suite_and_mirror() -> tuple[str, str]:
    """This machine's Debian suite (VERSION_CODENAME) and its first apt mirror."""
    release = Path("/etc/os-release").read_text()
    match = re.search(r"^VERSION_CODENAME=\"?([a-z]+)", release, re.MULTILINE)
    suite = match.group(1) if match else "bookworm"
    mirror = "http://deb.debian.org/debian"
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        found = apt_mirror(text)
        if found:
            mirror = found
            break
    return suite, mirror


def _recipe(suite: str) -> str:
    text = f"{_RECIPE_VERSION}|{suite}|{','.join(_BASE_PACKAGES)}|{cloudpickle.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cached_recipe() -> str | None:
    proc = run(
        ["podman", "image", "inspect", "--format", f'{{{{ index .Labels "{RECIPE_LABEL}" }}}}',
         BASE_IMAGE],
        check=False,
    )  # fmt: skip
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_base_image(layout: Layout) -> str:
    """Build BASE_IMAGE unless podman already holds one of the same recipe; returns its name.

    Debian's python3 (minimal) from debootstrap, trimmed, with this Python's cloudpickle
    (pure Python) added; about 115 MB and a minute or two the first time.
    """
    suite, mirror = _debian_suite_and_mirror()
    recipe = _recipe(suite)
    if _cached_recipe() == recipe:
        _log.info("base image %s: cached (recipe %s)", BASE_IMAGE, recipe)
        return BASE_IMAGE
    _log.info("base image %s: building from %s %s (debootstrap) ...", BASE_IMAGE, suite, mirror)
    work = Path(tempfile.mkdtemp(prefix="base-image-", dir=layout.state_dir))
    rootfs = work / "rootfs"
    try:
        run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(_BASE_PACKAGES)}",
             suite, str(rootfs), mirror],
            timeout=1200,
        )  # fmt: skip
        for trimmed in _TRIM:
            shutil.rmtree(rootfs / trimmed, ignore_errors=True)
        run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
             "--disable-pip-version-check", "--target",
             str(rootfs / "usr/lib/python3/dist-packages"),
             f"cloudpickle=={cloudpickle.__version__}"],
            timeout=600,
        )  # fmt: skip
        tarball = work / "rootfs.tar"
        run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], timeout=600)
        run(
            ["podman", "import", "--change", f"LABEL {RECIPE_LABEL}={recipe}",
             "--change", 'CMD ["python3"]', str(tarball), BASE_IMAGE],
            timeout=600,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    probe = run(["podman", "run", "--rm", BASE_IMAGE, "python3", "-c", "import cloudpickle"],
                check=False, timeout=120)  # fmt: skip
    if probe.returncode != 0:
        raise DevClusterError(
            f"the base image {BASE_IMAGE} was built but cannot import cloudpickle: "
            f"{probe.stderr.strip()[-1500:]}"
        )
    _log.info("base image %s: built (recipe %s)", BASE_IMAGE, recipe)
    return BASE_IMAGE
