"""`python -m slurm_magics.devcluster up|down|status`."""

from __future__ import annotations

import sys

from slurm_magics.cli import main

if __name__ == "__main__":
    sys.exit(main(["devcluster", *sys.argv[1:]]))
