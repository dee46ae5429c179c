"""Parse the magics' option lines (pure): argparse for the syntax, ``Resources`` for the values.

Resource values (``--mem 4G``, ``--time 01:00:00``, ...) are validated by
``slurm_magics.core.resources`` exactly as ``@sm.task(...)`` validates them: one parser of sizes
and times, not two. Every error names the option and the value given.
"""

from __future__ import annotations

import argparse
import dataclasses
import keyword
import re
import shlex
from typing import Any, NoReturn

from slurm_magics.core.resources import ResourceError, Resources, resources_from_options

__all__ = [
    "CancelOptions",
    "CellOptions",
    "ConnectOptions",
    "LogsOptions",
    "OptionsError",
    "SqueueOptions",
    "cancel_parser",
    "cell_parser",
    "connect_parser",
    "logs_parser",
    "no_options_parser",
    "parse_cancel",
    "parse_cell",
    "parse_connect",
    "parse_logs",
    "parse_no_options",
    "parse_squeue",
    "squeue_parser",
]


class OptionsError(ValueError):
    """A magic's options are wrong; the message names the option and the value."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting, and knows no abbreviations."""

    def __init__(self, prog: str, description: str, epilog: str = "") -> None:
        super().__init__(
            prog=prog,
            description=description,
            epilog=epilog,
            add_help=False,
            allow_abbrev=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.add_argument("-h", "--help", action="store_true", help="show this help")

    def error(self, message: str) -> NoReturn:
        raise OptionsError(f"{self.prog}: {message} (see {self.prog} --help).")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise OptionsError(f"{self.prog}: {message or 'bad options'}")


def _parse(parser: _Parser, words: list[str]) -> argparse.Namespace:
    return parser.parse_args(words)


def _split(prog: str, line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as error:  # an unclosed quote
        raise OptionsError(f"{prog}: cannot read the options {line!r} ({error}).") from None


def _variable(prog: str, option: str, value: str) -> str:
    if not value.isidentifier() or keyword.iskeyword(value):
        raise OptionsError(f"{prog}: {option} {value!r} is not a Python variable name.")
    return value


# -- %%slurm ------------------------------------------------------------------------------------
_CELL_FLAGS = ("-o", "--cpus", "--mem", "--time", "--gpus", "--partition", "--name")
_CELL_FLAGS_MORE = ("--after", "--map", "--pool", "--wait", "-h", "--help")
_NEXT_FLAG = re.compile(
    r"\s(?:" + "|".join(map(re.escape, _CELL_FLAGS + _CELL_FLAGS_MORE)) + r")(?=[\s=]|$)"
)
_MAP_FLAG = re.compile(r"(?:^|\s)--map(?:=|\s+|$)")


@dataclasses.dataclass(frozen=True)
class CellOptions:
    """What ``%%slurm ...`` asked for."""

    output: str | None = None
    resources: Resources = dataclasses.field(default_factory=Resources)
    name: str | None = None
    after: tuple[str, ...] = ()
    pool: str | None = None  # the variable holding the WorkerPool that runs the cell
    map_name: str | None = None
    map_expression: str | None = None
    wait: bool = False
    cache: bool = False
    show_help: bool = False


def cell_parser() -> _Parser:
    parser = _Parser(
        "%%slurm",
        "Run the cell on the SLURM cluster as a job; the cell returns at once with a live\n"
        "status display (unless --wait). The names the cell reads from the notebook are\n"
        "found by analysing it and shipped by value (modules are imported by name there);\n"
        "a name that holds a job becomes a dependency and holds that job's result. The\n"
        "value of the last expression is the job's result; print output comes back.",
        "examples:\n"
        "  %%slurm -o job --cpus 4 --mem 8G --time 01:00:00\n"
        "  %%slurm --map cfg=configs --after prep --wait\n"
        "  %%slurm --map x=[1, 2, 3]      (the expression may contain spaces)",
    )
    parser.add_argument("-o", dest="output", metavar="VAR", help="bind the job to VAR")
    parser.add_argument("--cpus", metavar="N", help="CPUs per task")
    parser.add_argument("--mem", metavar="SIZE", help='memory: MB as a number, or "4G", "500M"')
    parser.add_argument("--time", metavar="T", help='time limit: minutes, "HH:MM:SS", "D-HH"')
    parser.add_argument("--gpus", metavar="N", help="GPUs per task")
    parser.add_argument("--partition", metavar="P", help="SLURM partition")
    parser.add_argument("--name", metavar="NAME", help="job name (default: VAR or 'cell')")
    parser.add_argument(
        "--after",
        metavar="VAR[,VAR...]",
        action="append",
        default=[],
        help="start after these jobs succeeded (afterok), without passing their values",
    )
    parser.add_argument("--pool", metavar="VAR", help="run on the workers of the WorkerPool VAR")
    parser.add_argument(
        "--map",
        metavar="NAME=EXPR",
        help="an array job: one task per element of EXPR, each with NAME bound to it",
    )
    parser.add_argument(
        "--wait", action="store_true", help="block until done; the result is the cell's value"
    )
    parser.add_argument(
        "--cache",
        action="store_true",
        help="reuse an earlier successful run of the same cell, values and resources (no "
        "sbatch), or the same run still in flight; the cache key is printed",
    )
    return parser


def _take_map(line: str) -> tuple[str, str | None]:
    """Cut ``--map NAME=EXPR`` out of the line by hand: EXPR may hold spaces and quotes."""
    found = _MAP_FLAG.search(line)
    if found is None:
        return line, None
    rest = line[found.end() :]
    following = _NEXT_FLAG.search(rest)
    value = rest[: following.start()] if following else rest
    remaining = line[: found.start()] + (rest[following.start() :] if following else "")
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return remaining, value


def _map_option(prog: str, value: str) -> tuple[str, str]:
    name, equals, expression = value.partition("=")
    name, expression = name.strip(), expression.strip()
    if not equals or not expression or expression.startswith("="):
        raise OptionsError(f"{prog}: --map {value!r} must look like NAME=EXPR, e.g. x=range(10).")
    _variable(prog, "--map", name)
    try:
        compile(expression, "<--map>", "eval")
    except SyntaxError as error:
        raise OptionsError(
            f"{prog}: --map {value!r}: {expression!r} is not a Python expression ({error.msg})."
        ) from None
    return name, expression


def _number(text: str) -> int | str:
    """An int when the text is one; else the text, for ``Resources`` to refuse by name."""
    stripped = text.strip()
    return int(stripped) if re.fullmatch(r"-?\d+", stripped) else text


def _resources(prog: str, namespace: argparse.Namespace) -> Resources:
    given: dict[str, Any] = {}
    for flag, field, value in (
        ("--cpus", "cpus", namespace.cpus),
        ("--mem", "memory", namespace.mem),
        ("--time", "time", namespace.time),
        ("--gpus", "gpus", namespace.gpus),
        ("--partition", "partition", namespace.partition),
    ):
        if value is None:
            continue
        converted = _number(value) if field in ("cpus", "gpus") else value
        try:
            resources_from_options(**{field: converted})
        except ResourceError as error:
            raise OptionsError(f"{prog}: {flag} {value!r}: {error}") from None
        given[field] = converted
    return resources_from_options(**given)


def parse_cell(line: str) -> CellOptions:
    """Parse the ``%%slurm`` line (without the ``%%slurm`` itself)."""
    parser = cell_parser()
    prog = parser.prog
    rest, map_value = _take_map(line)
    if _MAP_FLAG.search(rest):
        raise OptionsError(f"{prog}: give --map once (one array job per cell).")
    namespace = _parse(parser, _split(prog, rest))
    if namespace.help:
        return CellOptions(show_help=True)
    output = None if namespace.output is None else _variable(prog, "-o", namespace.output)
    after: list[str] = []
    for value in namespace.after:
        names = filter(None, (part.strip() for part in value.split(",")))
        after.extend(_variable(prog, "--after", name) for name in names)
    if namespace.after and not after:
        raise OptionsError(f"{prog}: --after needs variable names, e.g. --after prep,train.")
    map_name = map_expression = None
    if map_value is not None:
        map_name, map_expression = _map_option(prog, map_value)
    name = namespace.name
    if name is not None and not name.strip():
        raise OptionsError(f"{prog}: --name {name!r} is empty.")
    return CellOptions(
        output=output,
        resources=_resources(prog, namespace),
        name=name,
        after=tuple(after),
        pool=None if namespace.pool is None else _variable(prog, "--pool", namespace.pool),
        map_name=map_name,
        map_expression=map_expression,
        wait=namespace.wait,
        cache=namespace.cache,
    )


# -- %slurm_connect ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ConnectOptions:
    host: str | None = None
    user: str | None = None
    port: int | None = None
    partition: str | None = None
    backend: str | None = None
    show_help: bool = False


def connect_parser() -> _Parser:
    parser = _Parser(
        "%slurm_connect",
        "Connect to a SLURM cluster and make it the default for %%slurm and every task:\n"
        "this machine's SLURM without HOST, else HOST over SSH.",
        "examples:\n  %slurm_connect --partition debug\n  %slurm_connect login.hpc.org --user me",
    )
    parser.add_argument("host", nargs="?", metavar="HOST", help="login node to reach over SSH")
    parser.add_argument("--user", metavar="U", help="SSH user name")
    parser.add_argument("--port", metavar="P", type=int, help="SSH port")
    parser.add_argument("--partition", metavar="P", help="default partition of every job")
    parser.add_argument(
        "--backend", choices=("slurm", "local"), help="slurm (default) or local (no SLURM)"
    )
    return parser


def parse_connect(line: str) -> ConnectOptions:
    parser = connect_parser()
    namespace = _parse(parser, _split(parser.prog, line))
    if namespace.help:
        return ConnectOptions(show_help=True)
    if namespace.partition is not None:
        try:
            resources_from_options(partition=namespace.partition)
        except ResourceError as error:
            raise OptionsError(f"{parser.prog}: --partition: {error}") from None
    return ConnectOptions(
        host=namespace.host,
        user=namespace.user,
        port=namespace.port,
        partition=namespace.partition,
        backend=namespace.backend,
    )


# -- %scancel -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CancelOptions:
    targets: tuple[str, ...] = ()
    all: bool = False
    show_help: bool = False


def cancel_parser() -> _Parser:
    parser = _Parser(
        "%scancel",
        "Cancel jobs at once, without asking: variables holding jobs or job arrays, SLURM\n"
        "job ids, or --all (every unfinished job of this kernel session). Says what it\n"
        "cancelled.",
        "examples:\n  %scancel job\n  %scancel sweep 12345\n  %scancel --all",
    )
    parser.add_argument("targets", nargs="*", metavar="VAR|JOBID", help="what to cancel")
    parser.add_argument(
        "--all", action="store_true", help="every unfinished job of this kernel session"
    )
    return parser


def parse_cancel(line: str) -> CancelOptions:
    parser = cancel_parser()
    namespace = _parse(parser, _split(parser.prog, line))
    if namespace.help:
        return CancelOptions(show_help=True)
    if namespace.all == bool(namespace.targets):
        raise OptionsError(
            f"{parser.prog}: give variables or job ids to cancel, or --all (not both)."
        )
    return CancelOptions(targets=tuple(namespace.targets), all=namespace.all)


# -- %slurm_logs --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LogsOptions:
    target: str = ""
    stderr: bool = False
    tail: int | None = None
    show_help: bool = False


def logs_parser() -> _Parser:
    parser = _Parser(
        "%slurm_logs",
        "Print a job's standard output (or --stderr) so far. VAR is a variable holding a\n"
        "job, an array task (VAR[INDEX]), or a SLURM job id of this session.",
        "examples:\n  %slurm_logs job\n  %slurm_logs sweep[3] --stderr --tail 20",
    )
    parser.add_argument("target", metavar="VAR", help="the job")
    parser.add_argument("--stderr", action="store_true", help="standard error instead")
    parser.add_argument("--tail", metavar="N", type=int, help="only the last N lines")
    return parser


def parse_logs(line: str) -> LogsOptions:
    parser = logs_parser()
    words = _split(parser.prog, line)
    if "-h" in words or "--help" in words:
        return LogsOptions(show_help=True)
    namespace = _parse(parser, words)
    if namespace.tail is not None and namespace.tail < 1:
        raise OptionsError(f"{parser.prog}: --tail {namespace.tail} must be at least 1.")
    return LogsOptions(target=namespace.target, stderr=namespace.stderr, tail=namespace.tail)


# -- %squeue ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SqueueOptions:
    all: bool = False
    start: bool = False
    show_help: bool = False


def squeue_parser() -> _Parser:
    parser = _Parser(
        "%squeue",
        "Show your jobs in the SLURM queue as a table, array tasks grouped by state; jobs\n"
        "of this session are named as in the notebook.",
    )
    parser.add_argument(
        "--all", action="store_true", help="also the jobs that ended recently (squeue -t all)"
    )
    parser.add_argument(
        "--start",
        action="store_true",
        help="why pending jobs wait, in words, and when SLURM expects them to start "
        "(squeue --start: asked only now)",
    )
    return parser


def parse_squeue(line: str) -> SqueueOptions:
    parser = squeue_parser()
    namespace = _parse(parser, _split(parser.prog, line))
    return SqueueOptions(all=namespace.all, start=namespace.start, show_help=namespace.help)


# -- %slurm_jobs -------------------------------------------------------------------------
def no_options_parser(prog: str, description: str) -> _Parser:
    return _Parser(prog, description)


def parse_no_options(parser: _Parser, line: str) -> bool:
    """True when --help was asked for; an error for anything else."""
    return bool(_parse(parser, _split(parser.prog, line)).help)
