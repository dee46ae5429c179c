#!/usr/bin/env bash
# Set everything up, then run the demo on the dev cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m slurm_magics.examples.quickstart "$@"
