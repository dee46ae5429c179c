"""pipefunc pipelines through ``sm.SlurmExecutor``: each function's resources reach SLURM.

pipefunc (the optional extra ``slurm-magics[pipefunc]``; never imported here unless the
user's program already did) hands an executor plain work items,
``executor.submit(callable, *args)``. ``read_work_item`` is the one function that knows
how pipefunc packs a ``PipeFunc`` into such a work item; everything else reads the
``PipeFunc``'s public attributes (``resources``, ``resources_scope``, ``output_name``) and
the fields of ``pipefunc.resources.Resources``.

How a pipeline's work becomes SLURM jobs (``placement``):

- ``resources_scope="map"``: the map's resources (evaluated once when dynamic) apply to
  every element; all its elements go in ONE array job, ``chunk_size`` elements per task.
- ``resources_scope="element"``: resources per element; elements with equal resources
  share one array job, one element per task.
- a function without a mapspec: one job (calls of a burst with equal resources share an
  array).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from slurm_magics.core.pipefunc_resources import resources_from_pipefunc
from slurm_magics.core.resources import ResourceError, Resources

__all__ = [
    "PipefuncWork",
    "Placement",
    "placement",
    "read_work_item",
    "teach_core_count",
]


# -- what a work item runs ----------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PipefuncWork:
    """What one pipefunc work item runs, read from the callable pipefunc submits."""

    #: the ``pipefunc.PipeFunc`` (public: resources, resources_scope, output_name, ...)
    function: Any
    #: the map elements this item computes (a chunk); None for a function without mapspec
    indices: tuple[int, ...] | None
    #: a single call's keyword arguments, or a map's (whole arrays)
    arguments: Mapping[str, Any]
    #: one element's keyword arguments (maps only)
    element_arguments: Callable[[int], Mapping[str, Any]] | None = None
    #: the resources pipefunc evaluated already for a single call, if any
    evaluated: Any = None
    #: pipefunc's error_handling: "continue" records errors instead of raising them
    error_handling: str = "raise"


_unreadable_warned = False


def read_work_item(fn: Callable[..., Any], args: Sequence[Any]) -> PipefuncWork | None:
    """The PipeFunc behind ``executor.submit(fn, *args)`` when pipefunc submitted it, else None.

    The only code that knows pipefunc's internals (checked against pipefunc 0.93 by
    tests/api/test_pipefunc_work_item.py, which fails when pipefunc changes them): a map's
    chunk is ``partial(_process_chunk, process_index=partial(_run_iteration_and_process,
    func=PipeFunc, kwargs=..., shape=..., shape_mask=...))`` called with a tuple of element
    indices, a single call is ``_execute_single(PipeFunc, kwargs, store, cache, mode)``.
    A pipefunc callable of another shape warns once (its resources are not applied).
    """
    run = sys.modules.get("pipefunc.map._run")
    if run is None:  # the program never imported pipefunc: not its work
        return None
    pipefunc_class = sys.modules["pipefunc"].PipeFunc
    if fn is getattr(run, "_execute_single", None) and isinstance(args[0], pipefunc_class):
        arguments = args[1]
        evaluated = arguments.get(getattr(run, "_EVALUATED_RESOURCES", ""))
        return PipefuncWork(args[0], None, arguments, None, evaluated, str(args[4]))
    if isinstance(fn, functools.partial) and fn.func is getattr(run, "_process_chunk", None):
        index = fn.keywords.get("process_index")
        if isinstance(index, functools.partial) and isinstance(
            index.keywords.get("func"), pipefunc_class
        ):
            keywords = index.keywords
            element = functools.partial(
                run._select_kwargs,
                keywords["func"],
                keywords["kwargs"],
                keywords["shape"],
                keywords["shape_mask"],
            )
            return PipefuncWork(
                keywords["func"],
                tuple(args[0]),
                keywords["kwargs"],
                element,
                error_handling=str(keywords["error_handling"]),
            )
    global _unreadable_warned  # noqa: PLW0603  (warn once per process)
    module = str(getattr(getattr(fn, "func", fn), "__module__", ""))
    if module.startswith("pipefunc.") and not _unreadable_warned:
        _unreadable_warned = True
        warnings.warn(
            f"slurm_magics cannot read the work items of this pipefunc version "
            f"({getattr(sys.modules['pipefunc'], '__version__', '?')}): the functions' "
            "resources are not applied, only the executor's. Install the pipefunc version "
            "the slurm-magics[pipefunc] extra names.",
            RuntimeWarning,
            stacklevel=3,
        )
    return None


# -- where a call goes ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Placement:
    """How one submitted call is sent: SLURM job name, resources, calls per array task."""

    name: str
    resources: Resources
    chunk_size: int = 1
    #: for a map's chunks: the callable they share (pickled once; only their arguments
    #: differ); None: each call is sent whole
    shared: Callable[..., Any] | None = None

    @property
    def key(self) -> tuple[object, ...]:
        """Calls with equal keys go in one array job."""
        shared = None if self.shared is None else id(self.shared)
        return (self.name, repr(self.resources), self.chunk_size, shared)


_map_resources: weakref.WeakKeyDictionary[Any, Resources] = weakref.WeakKeyDictionary()
_map_lock = threading.Lock()


def _output_name(function: Any) -> str:
    name = function.output_name
    return "-".join(name) if isinstance(name, tuple) else str(name)


def _evaluate(work: PipefuncWork, arguments: Mapping[str, Any]) -> Resources:
    return resources_from_pipefunc(work.function.resources(dict(arguments)))


def _widest(requests: Sequence[Resources]) -> Resources:
    """One request that fits every element of a chunk (the largest of each amount)."""
    first = requests[0]
    if all(request == first for request in requests):
        return first
    changes: dict[str, Any] = {}
    for name in ("cpus", "memory", "gpus", "nodes"):
        values = [getattr(r, name) for r in requests if getattr(r, name) is not None]
        if values:
            changes[name] = max(values)
    times = [r.time_seconds for r in requests if r.time_seconds is not None]
    if times:
        changes["time"] = timedelta(seconds=max(times))
    for name in ("partition", "account", "qos", "constraint", "extra"):
        if len({repr(getattr(r, name)) for r in requests}) > 1:
            raise ResourceError(
                f"the elements of one pipefunc chunk ask for different {name} "
                f"({', '.join(sorted({repr(getattr(r, name)) for r in requests}))}): with "
                'resources_scope="element" leave chunksizes unset (or 1) so each element '
                "is its own job."
            )
    return dataclasses.replace(first, **changes)


def _function_resources(fn: Callable[..., Any], work: PipefuncWork) -> Resources:
    spec = work.function.resources
    if spec is None:
        return Resources()
    if not callable(spec):
        return resources_from_pipefunc(spec)
    if work.indices is None:
        if work.evaluated is not None:
            return resources_from_pipefunc(work.evaluated)
        return _evaluate(work, work.arguments)
    if work.function.resources_scope == "map":  # once per map, shared by all its chunks
        with _map_lock:
            cached = _map_resources.get(fn)
            if cached is None:
                cached = _map_resources[fn] = _evaluate(work, work.arguments)
        return cached
    return _widest([_element_resources(work, index) for index in work.indices])


def _element_resources(work: PipefuncWork, index: int) -> Resources:
    assert work.element_arguments is not None
    try:
        return _evaluate(work, work.element_arguments(index))
    except Exception:  # e.g. an element whose inputs failed upstream
        if work.error_handling != "continue":
            raise
        # pipefunc records the error in the job itself, which needs nothing special
        return Resources()


def placement(
    fn: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    defaults: Resources,
    chunk_size: int,
    name: str,
) -> Placement:
    """How ``executor.submit(fn, *args, **kwargs)`` is sent to SLURM.

    Args:
        fn, args, kwargs: the submitted call.
        defaults: the executor's resources; a pipefunc function's own take precedence.
        chunk_size: calls per array task for calls that may share one (map scope).
        name: the job name of calls that are not pipefunc's.

    Returns:
        A ``Placement``: pipefunc work is named after its output and carries the
        function's resources merged over ``defaults`` (see the module docstring).

    Raises:
        ResourceError: a function's resources cannot be honoured (named in the message),
            before anything is submitted.
    """
    work = None if kwargs or not args else read_work_item(fn, args)
    if work is None:
        return Placement(name, defaults, chunk_size)
    try:
        own = _function_resources(fn, work)
    except ResourceError as error:
        raise ResourceError(f"{_output_name(work.function)}: {error}") from None
    resources = defaults.merged(own)
    if work.indices is None:
        return Placement(_output_name(work.function), resources, chunk_size)
    per_task = chunk_size if work.function.resources_scope == "map" else 1
    return Placement(_output_name(work.function), resources, per_task, shared=fn)


# -- pipefunc's automatic chunk size --------------------------------------------------------
_cores_lock = threading.Lock()


def teach_core_count(executor_class: type, cores: Callable[[Any], int]) -> bool:
    """Let pipefunc's automatic chunk size ask executors of ``executor_class`` for cores.

    ``pipeline.map`` without ``chunksizes`` divides each map by ``get_ncores(executor)``,
    which knows a fixed list of executor classes and warns "Automatic chunksize
    calculation failed" for any other. This wraps pipefunc's function once: executors of
    the taught classes answer ``cores(executor)``, every other executor gets pipefunc's
    own answer. Returns whether it is in place: False when pipefunc is not imported (yet),
    or no longer has that function (then the warning comes back and
    tests/api/test_pipefunc_work_item.py fails).
    """
    run = sys.modules.get("pipefunc.map._run")
    original = getattr(run, "get_ncores", None)
    if run is None or original is None:
        return False
    with _cores_lock:
        taught: dict[type, Callable[[Any], int]] | None = getattr(original, "taught", None)
        if taught is not None:
            taught[executor_class] = cores
            return True
        taught = {executor_class: cores}

        def get_ncores(executor: Any) -> int:
            for known, count in taught.items():
                if isinstance(executor, known):
                    return count(executor)
            return int(original(executor))

        get_ncores.taught = taught  # type: ignore[attr-defined]
        vars(run)["get_ncores"] = get_ncores
        return True
