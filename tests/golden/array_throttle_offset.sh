#!/bin/bash
#SBATCH --job-name=train_model
#SBATCH --array=0-99%4
#SBATCH --output=/scratch/sm/runs/s1-cd34/logs/%A_%a.out
#SBATCH --error=/scratch/sm/runs/s1-cd34/logs/%A_%a.err
#SBATCH --comment=slurm_magics:s1-cd34.1000
#SBATCH --no-requeue
#SBATCH --mem=500M
#SBATCH --partition=debug

exec python3 /scratch/sm/runner.py /scratch/sm/runs/s1-cd34 $(( ${SLURM_ARRAY_TASK_ID} + 1000 ))
