"""What pipefunc hands an executor, read by slurm_magics (no cluster needed).

The work items come from real pipefunc runs on a real thread pool that records each
``submit``. These tests fail loudly when pipefunc changes how it packs a ``PipeFunc``
into a work item or how its automatic chunk size asks an executor for cores: then
``read_work_item`` / ``teach_core_count`` in slurm_magics/api/pipefunc.py need an update.
"""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Callable
from typing import Any

import pytest
from pipefunc import PipeFunc, Pipeline, pipefunc
from pipefunc.map import _run as pipefunc_run
from pipefunc.resources import Resources as PipefuncResources

import slurm_magics as sm
from slurm_magics.api.pipefunc import placement, read_work_item, teach_core_count


class RecordingPool(concurrent.futures.ThreadPoolExecutor):
    """A real thread pool that keeps every (fn, args) pipefunc submits to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.items: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def submit(  # type: ignore[override]
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        assert not kwargs  # pipefunc passes positional arguments only
        self.items.append((fn, args))
        return super().submit(fn, *args)


@pipefunc(output_name="y", mapspec="x[i] -> y[i]", resources={"cpus": 2, "memory": "300MB"})
def double(x: int) -> int:
    return 2 * x


@pipefunc(
    output_name="z",
    mapspec="y[i] -> z[i]",
    resources=lambda kwargs: {"cpus": 1 + int(kwargs["y"]) % 3},
    resources_scope="element",
)
def plus_one(y: int) -> int:
    return y + 1


@pipefunc(
    output_name="w",
    mapspec="y[i] -> w[i]",
    resources=lambda kwargs: PipefuncResources(memory=f"{100 + kwargs['y'].shape[0]}MB"),
    resources_scope="map",
)
def minus_one(y: int) -> int:
    return y - 1


@pipefunc(output_name="total", resources=lambda kwargs: {"cpus": kwargs["z"].shape[0]})
def total(z: Any, w: Any) -> int:
    return int(sum(z) + sum(w))


def _recorded_run(chunksizes: int | None = 1) -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
    pool = RecordingPool()
    with pool:
        results = Pipeline([double, plus_one, minus_one, total]).map(
            {"x": range(4)}, executor=pool, chunksizes=chunksizes, parallel=True, storage="dict"
        )
    assert results["total"].output == sum(2 * x + 1 for x in range(4)) + sum(
        2 * x - 1 for x in range(4)
    )
    return pool.items


def _by_output(items: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for fn, args in items:
        work = read_work_item(fn, args)
        assert work is not None, f"pipefunc's work item {fn!r} was not recognised"
        assert isinstance(work.function, PipeFunc)
        found.setdefault(work.function.output_name, []).append((fn, args, work))
    return found


def test_every_work_item_of_a_pipeline_names_its_pipefunc() -> None:
    found = _by_output(_recorded_run())
    assert {name: len(items) for name, items in found.items()} == {
        "y": 4, "z": 4, "w": 4, "total": 1,
    }  # fmt: skip
    assert sorted(work.indices for _, _, work in found["y"]) == [(0,), (1,), (2,), (3,)]
    (_, _, single) = found["total"][0]
    assert single.indices is None
    assert single.evaluated == PipefuncResources(cpus=4)  # pipefunc evaluated it already
    # one element's arguments, as pipefunc's own worker would select them
    _, _, element = found["z"][3]
    assert element.element_arguments is not None
    assert element.element_arguments(3)["y"] == 6


def test_other_callables_are_not_pipefunc_work() -> None:
    assert read_work_item(print, ("hello",)) is None
    assert read_work_item(functools.partial(print, "a"), ((0,),)) is None


def test_placement_follows_scope_and_precedence() -> None:
    found = _by_output(_recorded_run())
    defaults = sm.Resources(memory=100, time=10, cpus=1)
    where = [
        placement(fn, args, {}, defaults=defaults, chunk_size=5, name="ex")
        for fn, args, _ in found["y"]
    ]
    # static, map scope: function resources over the executor's, all chunks in one group
    assert {w.key for w in where} == {where[0].key}
    assert where[0].resources == sm.Resources(cpus=2, memory=300, time=10)
    assert where[0].chunk_size == 5 and where[0].name == "y"
    # dynamic, element scope: per element (x -> y = 0, 2, 4, 6 -> cpus 1, 3, 2, 1)
    cpus = [
        placement(fn, args, {}, defaults=defaults, chunk_size=5, name="ex").resources.cpus
        for fn, args, _ in sorted(found["z"], key=lambda item: item[2].indices)
    ]
    assert cpus == [1, 3, 2, 1]
    assert {
        placement(fn, a, {}, defaults=defaults, chunk_size=5, name="ex").chunk_size
        for fn, a, _ in found["z"]
    } == {1}
    # dynamic, map scope: evaluated once with the whole map's arguments (4 elements)
    memory = {
        placement(fn, args, {}, defaults=defaults, chunk_size=5, name="ex").resources.memory
        for fn, args, _ in found["w"]
    }
    assert memory == {104}
    # a single call: its evaluated resources
    fn, args, _ = found["total"][0]
    single = placement(fn, args, {}, defaults=defaults, chunk_size=5, name="ex")
    assert single.resources == sm.Resources(cpus=4, memory=100, time=10)
    assert single.shared is None
    # anything else: the executor's own
    other = placement(print, ("x",), {}, defaults=defaults, chunk_size=5, name="ex")
    assert (other.name, other.resources, other.shared) == ("ex", defaults, None)


def test_a_chunk_of_elements_asks_for_the_widest() -> None:
    found = _by_output(_recorded_run(chunksizes=4))
    ((fn, args, work),) = found["z"]
    assert work.indices == (0, 1, 2, 3)
    where = placement(fn, args, {}, defaults=sm.Resources(), chunk_size=1, name="ex")
    assert where.resources.cpus == 3


def test_resources_we_cannot_honour_fail_at_submit_naming_the_function() -> None:
    @pipefunc(output_name="bad", resources={"extra_args": {"executor_type": "loky"}})
    def bad(a: int) -> int:
        return a

    pool = RecordingPool()
    with pool:
        Pipeline([bad]).map({"a": 1}, executor=pool, parallel=True, storage="dict")
    fn, args = pool.items[0]
    with pytest.raises(
        sm.ResourceError, match=r"^bad: pipefunc resources extra_args\['executor_type'\]"
    ):
        placement(fn, args, {}, defaults=sm.Resources(), chunk_size=1, name="ex")


def test_pipefuncs_chunk_size_heuristic_asks_our_executor_without_warning(
    cluster: sm.Cluster,
) -> None:
    executor = sm.SlurmExecutor(cluster)
    assert executor.max_workers == min(cluster.max_array_size, 10_000)
    # warnings are errors in these tests: pipefunc's "Automatic chunksize calculation
    # failed" would raise here
    assert pipefunc_run._get_optimal_chunk_size(200, executor) == 1
    many = 20 * executor.max_workers * 3
    assert pipefunc_run._get_optimal_chunk_size(many, executor) == 3
    # every other executor still gets pipefunc's own answer
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        assert pipefunc_run.get_ncores(pool) == 2
    assert teach_core_count(sm.SlurmExecutor, lambda ex: ex.max_workers)  # idempotent


@pipefunc(output_name="v", mapspec="x[i] -> v[i]")
def fails_on_one(x: int) -> int:
    if x == 1:
        raise ValueError("one")
    return x


@pipefunc(
    output_name="u",
    mapspec="v[i] -> u[i]",
    resources=lambda kwargs: {"cpus": kwargs["v"] + 1},
    resources_scope="element",
)
def after_failure(v: int) -> int:
    return v


def test_error_handling_continue_sends_elements_whose_inputs_failed() -> None:
    pool = RecordingPool()
    with pool:
        results = Pipeline([fails_on_one, after_failure]).map(
            {"x": range(3)},
            executor=pool,
            chunksizes=1,
            parallel=True,
            storage="dict",
            error_handling="continue",
        )
    assert results["u"].output[0] == 0 and results["u"].output[2] == 2
    found = _by_output(pool.items)
    cpus = {}
    for fn, args, work in found["u"]:
        assert work.error_handling == "continue"
        where = placement(fn, args, {}, defaults=sm.Resources(), chunk_size=1, name="ex")
        cpus[work.indices] = where.resources.cpus
    # the failed element's resources cannot be evaluated: it goes with the executor's own
    assert cpus == {(0,): 1, (1,): None, (2,): 3}
