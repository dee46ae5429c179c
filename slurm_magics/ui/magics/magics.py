"""The IPython magics: ``%%slurm``, ``%slurm_connect``, ``%slurm_jobs``, ``%squeue``,
``%scancel`` and ``%slurm_logs`` (``%load_ext slurm_magics``)."""

from __future__ import annotations

import io
import itertools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand

from slurm_magics.api.connect import connect, default_cluster
from slurm_magics.api.task import task
from slurm_magics.core.errors import ClusterError, SlurmMagicsError
from slurm_magics.core.parsing import SLURM_ID
from slurm_magics.core.resources import ResourceError
from slurm_magics.core.states import normalise_state
from slurm_magics.jobs.array import JobArray, slurm_ids_of
from slurm_magics.jobs.cache import CACHE_IDENTITY
from slurm_magics.jobs.engine import engine
from slurm_magics.jobs.job import Job
from slurm_magics.ui.magics.cell import CellError, analyse_cell, make_cell_function
from slurm_magics.ui.magics.namespace import (
    job_named,
    job_variable,
    map_items,
    pool_variable,
    shipped,
)
from slurm_magics.ui.magics.options import (
    OptionsError,
    cancel_parser,
    cell_parser,
    connect_parser,
    logs_parser,
    no_options_parser,
    parse_cancel,
    parse_cell,
    parse_connect,
    parse_logs,
    parse_no_options,
    parse_squeue,
    squeue_parser,
)
from slurm_magics.ui.magics.queue import QueueTable, group_queue, waiting_lines, with_starts
from slurm_magics.ui.magics.waiting import described, wait
from slurm_magics.ui.session import JobRegistry, session_jobs
from slurm_magics.ui.widgets import JobsPanel, remember_arguments, show, widgets_available
from slurm_magics.ui.widgets.text import cache_text

__all__ = ["SlurmMagics"]

F = TypeVar("F", bound=Callable[..., Any])
Tracked = Job | JobArray

_JOBS_HELP = "Show every job of this kernel live: state, elapsed, Cancel, log tail, graph."


def _documented(parser: Callable[[], Any]) -> Callable[[F], F]:
    """Give a magic its parser's --help text as docstring (``%%slurm?`` shows it)."""

    def decorate(function: F) -> F:
        function.__doc__ = parser().format_help()
        return function

    return decorate


def _cancel_one(item: Job | JobArray, label: str) -> str:
    """Cancel one job or array of the session; what to print. Raises ClusterError when
    SLURM refuses (the job is then left as it was)."""
    if isinstance(item, JobArray):
        unfinished = sum(not job.done() for job in item.jobs)
        if not unfinished:
            return f"{described(item, label)} had already finished: nothing to cancel"
        item.cancel()
        return f"cancelled {described(item, label)}: {unfinished} unfinished tasks"
    if item.cancel():
        return f"cancelled {described(item, label)}"
    return f"{described(item, label)} had already finished ({item.state.value})"


def _finished(slurm_state: str) -> bool:
    try:
        return normalise_state(slurm_state).finished
    except ValueError:
        return False


@magics_class
class SlurmMagics(Magics):
    """``%%slurm`` and the line magics that go with it."""

    def __init__(self, shell: Any, registry: JobRegistry | None = None) -> None:
        super().__init__(shell)
        self.registry: JobRegistry = registry if registry is not None else session_jobs
        #: the live display of the last %%slurm cell (None outside widget front ends)
        self.last_view: Any = None

    @property
    def _namespace(self) -> dict[str, Any]:
        assert self.shell is not None, "the magics are used outside IPython"
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    # -- %%slurm -----------------------------------------------------------------------------
    @cell_magic
    @no_var_expand
    @_documented(cell_parser)
    def slurm(self, line: str, cell: str) -> Any:
        __tracebackhide__ = True  # IPython hides this frame in tracebacks
        try:
            options = parse_cell(line)
        except OptionsError as error:
            raise UsageError(str(error)) from None
        if options.show_help:
            print(cell_parser().format_help())
            return None
        if not cell.strip():
            raise UsageError("%%slurm: the cell is empty; write the code to run below the line.")
        prebound = [options.map_name] if options.map_name else []
        try:
            analysis = analyse_cell(cell, prebound=prebound)
        except CellError as error:
            raise UsageError(f"%%slurm: {error}") from None
        after = [job_variable(self._namespace, "--after", name) for name in options.after]
        values, jobs = shipped(self._namespace, analysis)
        items = None
        if options.map_name is not None and options.map_expression is not None:
            items = map_items(self._namespace, options.map_name, options.map_expression)
        name = options.name or options.output or "cell"
        function = make_cell_function(
            cell,
            name=name,
            returns_value=analysis.returns_value,
            values=values,
            map_name=options.map_name,
        )
        if options.cache:  # keyed by the cell's text and values, not by the name it gets
            identity = (cell, analysis.returns_value, options.map_name, values)
            setattr(function, CACHE_IDENTITY, identity)
        runner = task(name=name, resources=options.resources, cache=options.cache)(function)
        if after:
            runner = runner.after(*after)
        if options.pool is not None:
            runner = runner.on(pool_variable(self._namespace, options.pool))
        try:
            submitted: Tracked
            if items is None:
                submitted = runner(jobs)
            else:
                submitted = runner.map(items, itertools.repeat(jobs))
                assert options.map_name is not None
                remember_arguments(submitted, options.map_name, items)
        except (ClusterError, ResourceError) as error:
            raise UsageError(f"%%slurm: {error}") from None
        except SlurmMagicsError as error:  # DependencyError, SubmissionError: as they are
            raise error.with_traceback(None)  # noqa: B904  (no internal frames to show)
        if submitted.cache is not None:
            print(cache_text(submitted))
        self.registry.add(submitted, label=options.output or name, source="%%slurm")
        if options.output:
            self._namespace[options.output] = submitted
        self._namespace["_slurm_last"] = submitted
        self.last_view = show(submitted, show_output=not options.wait)
        if not options.wait:
            return None
        return wait(submitted)

    # -- %slurm_connect ------------------------------------------------------------------------
    @line_magic
    @_documented(connect_parser)
    def slurm_connect(self, line: str) -> None:
        try:
            options = parse_connect(line)
        except OptionsError as error:
            raise UsageError(str(error)) from None
        if options.show_help:
            print(connect_parser().format_help())
            return
        keywords: dict[str, Any] = {
            key: value
            for key, value in (
                ("user", options.user),
                ("port", options.port),
                ("backend", options.backend),
                ("partition", options.partition),
            )
            if value is not None
        }
        try:
            cluster = connect(options.host, **keywords)
        except (ClusterError, ResourceError) as error:
            raise UsageError(f"%slurm_connect: {error}") from None
        print(f"connected to {cluster!r}: %%slurm cells and tasks run there.")

    # -- %slurm_jobs ---------------------------------------------------------------------------
    @line_magic
    @_documented(lambda: no_options_parser("%slurm_jobs", _JOBS_HELP))
    def slurm_jobs(self, line: str) -> Any:
        parser = no_options_parser("%slurm_jobs", _JOBS_HELP)
        if self._no_options(parser, line):
            return None
        self.scan_namespace()
        panel = JobsPanel(self.registry)
        if widgets_available():
            from IPython.display import display  # noqa: PLC0415

            display(panel)  # type: ignore[no-untyped-call]
        else:
            print(panel.text())
        return None

    # -- %squeue -------------------------------------------------------------------------------
    @line_magic
    @_documented(squeue_parser)
    def squeue(self, line: str) -> QueueTable | None:
        try:
            options = parse_squeue(line)
        except OptionsError as error:
            raise UsageError(str(error)) from None
        if options.show_help:
            print(squeue_parser().format_help())
            return None
        try:
            cluster = default_cluster()
            rows = engine.call(cluster.scheduler.queue())
            user = engine.call(cluster.scheduler.whoami())
        except ClusterError as error:
            raise UsageError(f"%squeue: {error}") from None
        names: dict[str, str] = {}
        for entry in self.registry.entries():
            item = entry.item
            for slurm_id in slurm_ids_of(item):
                names[slurm_id] = entry.label
        if not options.all:
            rows = [row for row in rows if not _finished(row.state)]
        waiting = waiting_lines(engine.call(cluster.waves.waiting()))  # not in SLURM yet
        lines = group_queue(rows, names)
        if options.start:
            pending = {row.array_job_id for row in rows if row.state == "PENDING"}
            try:
                lines = with_starts(lines, cluster.start_estimates(sorted(pending)))
            except ClusterError as error:
                raise UsageError(f"%squeue --start: {error}") from None
        return QueueTable(lines + waiting, user)

    @staticmethod
    def _no_options(parser: Any, line: str) -> bool:
        try:
            wants_help = parse_no_options(parser, line)
        except OptionsError as error:
            raise UsageError(str(error)) from None
        if wants_help:
            print(parser.format_help())
        return wants_help

    # -- %scancel ------------------------------------------------------------------------------
    @line_magic
    @_documented(cancel_parser)
    def scancel(self, line: str) -> None:
        try:
            options = parse_cancel(line)
        except OptionsError as error:
            raise UsageError(str(error)) from None
        if options.show_help:
            print(cancel_parser().format_help())
            return
        targets: list[tuple[Tracked | None, str]]
        if options.all:
            targets = [(e.item, e.label) for e in self.registry.entries() if not e.item.done()]
            if not targets:
                print("nothing to cancel: every job of this session has finished.")
                return
        else:
            targets = [self._cancel_target(target) for target in options.targets]
        refused: list[str] = []  # SLURM's refusals: the others are still cancelled
        foreign = [label for item, label in targets if item is None]
        if foreign:
            try:
                engine.call(default_cluster().scheduler.cancel(foreign))
            except ClusterError as error:
                refused.append(f"{', '.join(foreign)}: {error}")
            else:
                for slurm_id in foreign:
                    print(f"cancelled job {slurm_id} (not from this session)")
        for item, label in targets:
            if item is None:
                continue
            try:
                print(_cancel_one(item, label))
            except ClusterError as error:
                refused.append(f"{described(item, label)}: {error}")
        if refused:
            raise UsageError("%scancel: not cancelled (SLURM refused):\n" + "\n".join(refused))

    def _cancel_target(self, target: str) -> tuple[Tracked | None, str]:
        """(job, label) for a variable, ``VAR[i]`` or a SLURM id; (None, id) for a foreign id."""
        if SLURM_ID.fullmatch(target):
            entry = self.registry.find(target)
            if entry is not None:
                return entry.item, entry.label
            task_ = self.registry.find_task(target)
            return (task_, target) if task_ is not None else (None, target)
        return job_named(self._namespace, "%scancel", target, allow_array=True), target

    # -- %slurm_logs ---------------------------------------------------------------------------
    @line_magic
    @_documented(logs_parser)
    def slurm_logs(self, line: str) -> None:
        try:
            options = parse_logs(line)
        except OptionsError as error:
            raise UsageError(str(error)) from None
        if options.show_help:
            print(logs_parser().format_help())
            return
        job: Job | None
        if SLURM_ID.fullmatch(options.target):
            job = self.registry.find_task(options.target)
            if job is None:
                raise UsageError(
                    f"%slurm_logs: no job {options.target} in this session (its logs are in "
                    "the run folder under the cluster's root)."
                )
        else:
            found = job_named(self._namespace, "%slurm_logs", options.target, allow_array=False)
            assert isinstance(found, Job)
            job = found
        stream = 1 if options.stderr else 0
        text = job.stderr() if options.stderr else job.stdout()
        if options.tail is not None:
            text = "".join(io.StringIO(text).readlines()[-options.tail :])
        if not text:
            what = "stderr" if options.stderr else "stdout"
            print(f"(job {job.job_id} has written nothing to {what}: {job.log_paths()[stream]})")
            return
        sys.stdout.write(text if text.endswith("\n") else text + "\n")

    # -- the session's jobs --------------------------------------------------------------------
    def scan_namespace(self, *_: Any) -> None:
        """Track the jobs the notebook's variables hold (run after every cell)."""
        for name, value in list(self._namespace.items()):
            if not name.startswith("_") and isinstance(value, Job | JobArray):
                self.registry.add(value, label=name, source="namespace")
