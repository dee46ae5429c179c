#!/bin/bash
#SBATCH --job-name=quotes
#SBATCH --array=0-2
#SBATCH --output=/tmp/sm/runs/s2-0001/logs/%A_%a.out
#SBATCH --error=/tmp/sm/runs/s2-0001/logs/%A_%a.err
#SBATCH --no-requeue
#SBATCH --comment="say \"hi\" #1 \\ ok"
#SBATCH --mail-user=me@example.org

exec python3 /tmp/sm/runner.py /tmp/sm/runs/s2-0001 $(( ${SLURM_ARRAY_TASK_ID} + 0 ))
