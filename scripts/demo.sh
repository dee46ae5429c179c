#!/usr/bin/env bash
# Set everything up, then run the demo on the dev cluster: the four parallelization
# patterns (fan-out/fan-in over 100 inputs, a pipeline, a sweep, dynamic dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m slurm_magics.examples.parallelization_patterns --partition debug --size 100 "$@"
