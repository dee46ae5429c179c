"""map() zips like the builtin map: a later iterable may be endless (%%slurm --map passes
itertools.repeat(...) for the cell's values), and the shortest iterable wins."""

from __future__ import annotations

import itertools

import pytest

import slurm_magics as sm

pytestmark = pytest.mark.cluster


def add(x: int, y: int) -> int:
    return x + y


def test_map_takes_an_endless_later_iterable(cluster: sm.Cluster) -> None:
    array = sm.task(add, memory="100M").on(cluster).map([1, 2, 3], itertools.repeat(10))
    assert array.result(timeout=120) == [11, 12, 13]
    shorter = sm.task(add, memory="100M").on(cluster).map([1, 2, 3], [100])
    assert shorter.result(timeout=120) == [101]
