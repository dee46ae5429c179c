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
.venv/bin/python -m pytest "$@"
