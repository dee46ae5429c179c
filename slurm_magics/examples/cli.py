"""What the example scripts share: argument checks and how they end on an error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from slurm_magics.core.errors import SlurmMagicsError
from slurm_magics.core.resources import ResourceError

__all__ = ["positive_int", "run_main"]


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too small: give 1 or more")
    return value


def run_main(body: Callable[[], int]) -> int:
    """Run an example; a cluster, submission or job error ends it with one clear line
    (and exit status 1) instead of a traceback."""
    try:
        return body()
    except (SlurmMagicsError, ResourceError) as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
