"""Pure code, no I/O: errors, job states, resources, parsers of SLURM output, sbatch
rendering, outcomes, the payload format and the compute-node runner (stdlib + cloudpickle).

Imports nothing else of the package (checked by import-linter)."""

__all__: list[str] = []
