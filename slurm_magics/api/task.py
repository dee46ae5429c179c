"""``@sm.task``: a function that runs on the cluster when called, or per item with ``.map``."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Literal, ParamSpec, TypeVar, overload

from slurm_magics.api.connect import default_cluster
from slurm_magics.core.packaging import Packaging, coerce_packaging
from slurm_magics.core.resources import ResourceError, Resources, resources_from_options
from slurm_magics.jobs.array import JobArray
from slurm_magics.jobs.cache import cached
from slurm_magics.jobs.cluster import Cluster, Condition
from slurm_magics.jobs.collector import collector_paused
from slurm_magics.jobs.job import Call, Job
from slurm_magics.jobs.pool.payloads import settle_pool_tasks
from slurm_magics.jobs.pool.pool import WorkerPool
from slurm_magics.jobs.retries import DEFAULT_RETRY_ON, check_retry_on

__all__ = ["Task", "task"]

P = ParamSpec("P")
R = TypeVar("R")
Scope = Literal["map", "element"]
ResourcesSpec = Resources | Callable[..., Resources]
_TASK_OPTIONS = (
    "name", "scope", "chunk_size", "max_concurrent", "resources_variable", "retries", "retry_on",
    "cache", "packaging",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class _Settings:
    name: str
    resources: ResourcesSpec
    overrides: Resources
    scope: Scope
    chunk_size: int
    max_concurrent: int | None
    resources_variable: str | None
    cluster: Cluster | None
    after: tuple[Job | JobArray, ...]
    condition: Condition
    retries: int = 0
    retry_on: frozenset[str] = DEFAULT_RETRY_ON
    cache: bool = False
    packaging: Packaging | None = None  # None: the cluster's own
    pool: WorkerPool | None = None  # set by .on(pool): calls go to its workers


def _check_settings(function: Callable[..., Any], settings: _Settings) -> None:
    if settings.scope not in ("map", "element"):
        raise ResourceError(f'scope={settings.scope!r} must be "map" or "element".')
    for option in ("chunk_size", "max_concurrent"):
        value = getattr(settings, option)
        if value is None and option == "max_concurrent":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ResourceError(f"{option}={value!r} must be a whole number of at least 1.")
    retries = settings.retries
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ResourceError(f"retries={retries!r} must be a whole number of at least 0.")
    check_retry_on(settings.retry_on)
    if not isinstance(settings.cache, bool):
        raise ResourceError(f"cache={settings.cache!r} must be True or False.")
    if settings.condition not in ("afterok", "afterany"):
        raise ResourceError(f'condition={settings.condition!r} must be "afterok" or "afterany".')
    if not (callable(settings.resources) or isinstance(settings.resources, Resources)):
        raise ResourceError(
            f"resources={settings.resources!r} must be sm.Resources(...) or a function of the "
            "call's arguments that returns one."
        )
    variable = settings.resources_variable
    if variable is not None:
        if not variable.isidentifier():
            raise ResourceError(f"resources_variable={variable!r} is not a Python name.")
        parameters = inspect.signature(function).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        if variable not in parameters and not takes_kwargs:
            raise ResourceError(
                f"resources_variable={variable!r}: {function.__qualname__} has no parameter of "
                "that name; add it to the function's signature."
            )


def _as_resources(value: object, source: str) -> Resources:
    if isinstance(value, Resources):
        return value
    if isinstance(value, Mapping):
        return resources_from_options(**value)
    raise ResourceError(f"{source} returned {value!r}; it must return sm.Resources(...) or a dict.")


class Task(Generic[P, R]):
    """A function bound to resources; calling it submits a job and returns its ``Job``."""

    def __init__(self, function: Callable[P, R], settings: _Settings) -> None:
        _check_settings(function, settings)
        self.function = function
        self._settings = settings
        functools.update_wrapper(self, function)

    def __repr__(self) -> str:
        return f"<Task {self._settings.name}>"

    @property
    def name(self) -> str:
        return self._settings.name

    def _replace(self, **changes: Any) -> Task[P, R]:
        return Task(self.function, dataclasses.replace(self._settings, **changes))

    # -- variants ------------------------------------------------------------------------
    def with_options(self, **options: Any) -> Task[P, R]:
        """The same task with other resources or options for the next calls (per call).

        Besides resources and task options, ``packaging=`` ("none", "wheel" or
        ``sm.Packaging.container(...)``) runs these calls with another packaging than the
        cluster's; it is prepared at the first call (PackagingError then, before submission).
        """
        task_options = {k: options.pop(k) for k in list(options) if k in _TASK_OPTIONS}
        if "retry_on" in task_options:
            task_options["retry_on"] = check_retry_on(task_options["retry_on"])
        if "packaging" in task_options:  # checked now; prepared on the cluster at first use
            task_options["packaging"] = coerce_packaging(task_options["packaging"])
        extra = self._settings.overrides.merged(resources_from_options(**options))
        return self._replace(overrides=extra, **task_options)

    def after(self, *jobs: Job | JobArray, condition: Condition = "afterok") -> Task[P, R]:
        """The same task, started only after ``jobs`` (afterok: when all succeeded)."""
        for job in jobs:
            if not isinstance(job, Job | JobArray):
                raise TypeError(f".after() takes jobs and job arrays, not {job!r}.")
        return self._replace(after=self._settings.after + jobs, condition=condition)

    def on(self, cluster: Cluster | WorkerPool) -> Task[P, R]:
        """The same task, submitted to ``cluster`` instead of the default one, or run by
        the workers of a ``WorkerPool`` (same futures, milliseconds per call)."""
        if isinstance(cluster, WorkerPool):
            return self._replace(pool=cluster)
        return self._replace(cluster=cluster)

    # -- submission ----------------------------------------------------------------------
    def _resources_of(self, *args: Any, **kwargs: Any) -> Resources:
        spec = self._settings.resources
        if isinstance(spec, Resources):
            base = spec
        else:
            base = _as_resources(spec(*args, **kwargs), f"the resources function of {self.name}")
        return base.merged(self._settings.overrides)

    def _cluster(self) -> Cluster:
        return self._settings.cluster or default_cluster()

    def __call__(self, *args: Any, **kwargs: Any) -> Job:
        """Submit one call now; returns its Job (await it or call ``.result()``).

        Any argument may be a Job or JobArray (also inside lists, tuples and dicts): the
        call then waits for it (afterok) and receives its result; so arguments are typed
        ``Any`` rather than the function's own parameter types.
        """
        pool = self._settings.pool
        if pool is not None:
            run = pool.submit_calls(
                self.function, [(args, kwargs)], name=self.name, after=self._settings.after
            )
            return run.jobs[0]
        resources = self._resources_of(*args, **kwargs)
        cluster = self._cluster()

        def submit() -> Job:
            run = cluster.submit_calls(
                self.function,
                [(args, kwargs)],
                name=self.name,
                resources=resources,
                resources_variable=self._settings.resources_variable,
                after=settle_pool_tasks(self._settings.after),
                condition=self._settings.condition,
                retries=self._settings.retries,
                retry_on=self._settings.retry_on,
                packaging=self._settings.packaging,
            )
            return run.jobs[0]

        if not self._settings.cache:
            return submit()
        scope = self._cache_scope(cluster, repr(resources))
        found = cached(cluster, self.function, [(args, kwargs)], scope, submit, is_array=False)
        assert isinstance(found, Job)
        return found

    def _cache_scope(self, cluster: Cluster, resources: str) -> str:
        """What besides code and arguments a cached call's key covers."""
        settings = self._settings
        after = ",".join(job.job_id for job in settings.after)
        return (
            f"{cluster.defaults!r}|{resources}|{settings.chunk_size}|{settings.resources_variable}"
            f"|{settings.condition}:{after}"
        )

    @collector_paused()  # one future per item: 100,000 of them without GC passes
    def map(self, iterable: Iterable[Any], /, *iterables: Iterable[Any]) -> JobArray:
        """Submit one call per item as ONE array job; returns a JobArray (results in order).

        Zips like the builtin ``map``: each item is one positional argument (a tuple is one
        argument); with a single iterable, a dict item becomes keyword arguments.
        """
        calls: list[Call] = []
        firsts = list(iterable)
        # bounded by the first: a later iterable may be endless (itertools.repeat)
        others = [list(itertools.islice(more, len(firsts))) for more in iterables]
        if others:
            calls = [(tuple(items), {}) for items in zip(firsts, *others, strict=False)]
        else:
            for item in firsts:
                calls.append(((), dict(item)) if isinstance(item, Mapping) else ((item,), {}))
        settings = self._settings
        if not calls:
            return JobArray([], [])
        if settings.pool is not None:
            pooled = settings.pool.submit_calls(
                self.function, calls, name=self.name, after=settings.after
            )
            array = JobArray(pooled.jobs, [pooled])
            array.calls = (self.function, calls)
            return array
        cluster = self._cluster()
        if settings.cache:
            uncached = self._replace(cache=False)
            spec = settings.resources
            described = repr(spec) if isinstance(spec, Resources) else spec.__qualname__
            spec_text = f"{described}|{settings.scope}|{settings.overrides!r}"
            found = cached(
                cluster,
                self.function,
                calls,
                self._cache_scope(cluster, spec_text),
                lambda: uncached.map(firsts, *others),
                is_array=True,
            )
            assert isinstance(found, JobArray)
            return found
        groups: dict[str, tuple[Resources, list[int]]] = {}
        if settings.scope == "element" and not isinstance(settings.resources, Resources):
            for index, (args, kwargs) in enumerate(calls):
                resources = self._resources_of(*args, **kwargs)
                key = repr(resources)
                groups.setdefault(key, (resources, []))[1].append(index)
        else:
            if isinstance(settings.resources, Resources):
                resources = settings.resources.merged(settings.overrides)
            else:
                columns = [list(column) for column in zip(*(c[0] for c in calls), strict=True)]
                resources = (
                    self._resources_of(*columns)
                    if columns
                    else self._resources_of([c[1] for c in calls])
                )
            groups[""] = (resources, list(range(len(calls))))
        jobs: list[Job | None] = [None] * len(calls)
        runs = []
        for resources, indices in groups.values():
            run = cluster.submit_calls(
                self.function,
                [calls[i] for i in indices],
                name=self.name,
                resources=resources,
                array=True,
                chunk_size=settings.chunk_size,
                max_concurrent=settings.max_concurrent,
                resources_variable=settings.resources_variable,
                after=settle_pool_tasks(settings.after),
                condition=settings.condition,
                retries=settings.retries,
                retry_on=settings.retry_on,
                packaging=settings.packaging,
            )
            runs.append(run)
            for index, job in zip(indices, run.jobs, strict=True):
                jobs[index] = job
        array = JobArray([job for job in jobs if job is not None], runs)
        array.calls = (self.function, calls)
        if len(runs) == 1:
            cluster.live_arrays[runs[0].run_id] = array
        return array


@overload
def task(
    function: Callable[P, R],
    /,
    *,
    name: str | None = None,
    resources: ResourcesSpec | None = None,
    scope: Scope = "map",
    chunk_size: int = 1,
    max_concurrent: int | None = None,
    resources_variable: str | None = None,
    cluster: Cluster | None = None,
    retries: int = 0,
    retry_on: Iterable[str] | str = DEFAULT_RETRY_ON,
    cache: bool = False,
    **resource_options: Any,
) -> Task[P, R]: ...
@overload
def task(
    function: None = None,
    /,
    *,
    name: str | None = None,
    resources: ResourcesSpec | None = None,
    scope: Scope = "map",
    chunk_size: int = 1,
    max_concurrent: int | None = None,
    resources_variable: str | None = None,
    cluster: Cluster | None = None,
    retries: int = 0,
    retry_on: Iterable[str] | str = DEFAULT_RETRY_ON,
    cache: bool = False,
    **resource_options: Any,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...
def task(
    function: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    resources: ResourcesSpec | None = None,
    scope: Scope = "map",
    chunk_size: int = 1,
    max_concurrent: int | None = None,
    resources_variable: str | None = None,
    cluster: Cluster | None = None,
    retries: int = 0,
    retry_on: Iterable[str] | str = DEFAULT_RETRY_ON,
    cache: bool = False,
    **resource_options: Any,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Make a function a task: ``@sm.task(cpus=2, memory="4G", time="00:10:00")``.

    Resource keywords: cpus, memory, gpus, time, partition, nodes, account, qos,
    constraint, extra. ``resources`` may also be an ``sm.Resources`` or a function of the
    call's arguments returning one (``scope="element"``: per item of a map, ``"map"``:
    once per map, with each argument given as the list of its values). ``retries=N``
    runs a task again after a cluster failure in ``retry_on`` (NODE_FAIL and PREEMPTED by
    default; add "TIMEOUT", "OUT_OF_MEMORY" or "exception" for Python errors).

    Args:
        function: the function to run on the cluster (also usable as ``@sm.task`` bare).
        name: SLURM's job name (default: the function's name).
        resources: an ``sm.Resources``, a dict of resource keywords, or a callable of the
            call's arguments returning one of those.
        scope: when ``resources`` is a callable: "map" (once per ``.map()``) or "element"
            (per item; items with equal resources share one array).
        chunk_size: items packed into one array element (tiny tasks), >= 1.
        max_concurrent: at most this many array tasks running at once (``--array=...%N``).
        resources_variable: a parameter of ``function`` that receives the job's
            ``sm.Resources`` (for functions that parallelise internally).
        cluster: where calls are submitted (default: the default cluster at call time).
        retries: how often one item may run again after a failure in ``retry_on``, >= 0.
        retry_on: SLURM states (and "exception") that trigger a retry.
        cache: a call whose code, arguments and resources match an earlier successful
            run returns that run's job without submitting; one matching a run in flight
            (in any process of this user) returns that job (see ``sm.cache_clear``).
        **resource_options: cpus (int), memory (int MB or "4G"/"500M"), gpus (int),
            time (int minutes, "HH:MM:SS", "D-HH:MM:SS" or a timedelta), partition, nodes,
            account, qos, constraint, extra (dict of further sbatch options).

    Returns:
        A ``Task`` (or, as ``@sm.task(...)``, a decorator making one): a call submits at
        once and returns an ``sm.Job``, ``.map(...)`` an ``sm.JobArray``.

    Raises:
        ResourceError: an invalid resource value (named, with a fix), before any submit.
    """
    overrides = resources_from_options(**resource_options)  # validated now, not at submit

    def wrap(fn: Callable[P, R]) -> Task[P, R]:
        settings = _Settings(
            name=name or str(getattr(fn, "__name__", "task")),
            resources=resources if resources is not None else Resources(),
            overrides=overrides,
            scope=scope,
            chunk_size=chunk_size,
            max_concurrent=max_concurrent,
            resources_variable=resources_variable,
            cluster=cluster,
            after=(),
            condition="afterok",
            retries=retries,
            retry_on=check_retry_on(retry_on),
            cache=cache,
        )
        return Task(fn, settings)

    return wrap(function) if function is not None else wrap
