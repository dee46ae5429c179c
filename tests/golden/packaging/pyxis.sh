#!/bin/bash
#SBATCH --job-name=simulate
#SBATCH --array=0-99
#SBATCH --output=/home/me/.slurm_magics/runs/s1-ab12/logs/%A_%a.out
#SBATCH --error=/home/me/.slurm_magics/runs/s1-ab12/logs/%A_%a.err
#SBATCH --comment=slurm_magics:s1-ab12.0
#SBATCH --no-requeue
#SBATCH --cpus-per-task=1
#SBATCH --mem=1G

export OMP_NUM_THREADS=1
exec srun --ntasks=1 '--container-image=registry.example.org:5000#team/patterns@sha256:ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12' --container-mounts=/home/me/.slurm_magics:/home/me/.slurm_magics,/scratch/data:/scratch/data,"$PWD:$PWD" --container-workdir="$PWD" python3 /home/me/.slurm_magics/runner-0123456789ab.py /home/me/.slurm_magics/runs/s1-ab12 $(( ${SLURM_ARRAY_TASK_ID} + 0 ))
