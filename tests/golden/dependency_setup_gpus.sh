#!/bin/bash
#SBATCH --job-name=add_all
#SBATCH --output=/scratch/sm/runs/s1-ef56/logs/%j.out
#SBATCH --error=/scratch/sm/runs/s1-ef56/logs/%j.err
#SBATCH --dependency=afterok:123:124
#SBATCH --no-requeue
#SBATCH --cpus-per-task=1
#SBATCH --gres=gpu:2
#SBATCH --time=1-00:00:00
#SBATCH --exclusive
#SBATCH --comment="fan in"

module load python/3.11
export OMP_NUM_THREADS=1
exec '/opt/my env/bin/python' /scratch/sm/runner.py /scratch/sm/runs/s1-ef56 0
