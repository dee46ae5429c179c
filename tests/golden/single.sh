#!/bin/bash
#SBATCH --job-name=double
#SBATCH --output=/home/me/.slurm_magics/runs/s1-ab12/logs/%j.out
#SBATCH --error=/home/me/.slurm_magics/runs/s1-ab12/logs/%j.err
#SBATCH --comment=slurm_magics:s1-ab12.0
#SBATCH --no-requeue
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=00:10:00

exec /usr/bin/python3 /home/me/.slurm_magics/runner.py /home/me/.slurm_magics/runs/s1-ab12 0
