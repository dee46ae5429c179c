"""The JupyterLab extension is installed with the Python package and JupyterLab accepts it."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

LABEXTENSION_NAME = "slurm-magics"
# `jupyter labextension list` colours "enabled" and "OK" when it writes to a terminal.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def labextension_list() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # The listing goes to stderr (it is written by a logger); stdout is read too so a
    # change of stream in JupyterLab does not break the test.
    return ANSI_ESCAPE.sub("", result.stdout + result.stderr)


def test_labextension_is_enabled_and_ok() -> None:
    listing = labextension_list()
    line = re.search(rf"^\s*{re.escape(LABEXTENSION_NAME)} v(\S+) (.*)$", listing, re.MULTILINE)
    assert line is not None, f"{LABEXTENSION_NAME} is missing from the listing:\n{listing}"
    labextension_version, status = line.groups()
    assert status.startswith("enabled OK"), f"{LABEXTENSION_NAME} is not enabled and OK:\n{listing}"
    # package.json carries its own copy of the version; it must follow slurm_magics/_version.py.
    assert labextension_version == version("slurm-magics")


def test_labextension_is_installed_in_the_environment() -> None:
    # The wheel's shared-data puts it here, for editable installs too; no `labextension develop`.
    installed = Path(sys.prefix, "share", "jupyter", "labextensions", LABEXTENSION_NAME)
    assert (installed / "package.json").is_file()
    assert (installed / "install.json").is_file()
    assert list((installed / "static").glob("remoteEntry.*.js"))
