"""Resources a job asks SLURM for: parsing, validation and merging (pure, no I/O).

Units follow SLURM: memory as an int is megabytes, as a string takes K/M/G/T with an
optional trailing B; time as an int is minutes, as a string any SLURM time format, or a
``timedelta``. Every value is checked when the ``Resources`` is built, so a bad value
fails before anything is submitted, with a message naming the value.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

__all__ = [
    "LENGTH_LIMITS",
    "ResourceError",
    "Resources",
    "check_length",
    "format_duration",
    "format_memory",
    "format_time",
    "parse_memory",
    "parse_time",
    "resources_from_options",
]

MemoryLike = int | str
TimeLike = int | str | timedelta
Scope = Literal["map", "element"]

_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*$", re.IGNORECASE)
_MEMORY_FACTORS = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
_CONSTRAINT_RE = re.compile(r"^[A-Za-z0-9_.&|\[\]()*:!,-]+$")
_OPTION_RE = re.compile(r"^[a-z][a-z0-9-]*$")
# Options the submission layer owns; letting ``extra`` set them would break tracking.
_RESERVED_OPTIONS = frozenset(
    {
        "array",
        "output",
        "error",
        "parsable",
        "wrap",
        "dependency",
        "chdir",
        "job-name",
        "cpus-per-task",
        "mem",
        "time",
        "gres",
        "gpus",
        "partition",
        "nodes",
        "account",
        "qos",
        "constraint",
        "open-mode",
    }
)

# Lengths (bytes) past which slurmctld refuses a job with "Pathname of a file, directory or
# other parameter too long", naming no option; measured with `sbatch --test-only` on SLURM
# 22.05 (the limit passes, one more byte is refused). The job name needs none: it is cut to
# 64 characters. Scripts have their own limit (core.sbatch).
LENGTH_LIMITS: Mapping[str, int] = {
    "account": 1024,
    "bb": 8192,
    "cluster-constraint": 1024,
    "comment": 1024,
    "constraint": 1024,
    "input": 4096,
    "licenses": 1024,
    "mail-user": 1024,
    "mcs-label": 1024,
    "network": 1024,
    "partition": 1024,
    "qos": 1024,
    "reservation": 1024,
    "wckey": 1024,
}


def check_length(option: str, text: str) -> str:
    """Return ``text``, or raise ResourceError when SLURM would refuse it as too long for
    the sbatch option ``option`` (see ``LENGTH_LIMITS``)."""
    limit = LENGTH_LIMITS.get(option)
    size = len(text.encode())
    if limit is not None and size > limit:
        raise ResourceError(
            f"{option}={text[:40]!r}... is {size} bytes long: SLURM refuses more than {limit} "
            f"bytes for --{option}; shorten it."
        )
    return text


class ResourceError(ValueError):
    """A resource value is invalid; the message names the value and what to do."""


def parse_memory(value: MemoryLike, *, name: str = "memory") -> int:
    """Return megabytes for ``value``: an int of MB or a string such as "4G", "500M", "1.5GB"."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ResourceError(
            f"{name}={value!r} ({type(value).__name__}) is not a memory size: "
            'give megabytes as an int (4096) or a string like "4G", "500M" or "1.5GB".'
        )
    if isinstance(value, int):
        megabytes = value
    else:
        match = _MEMORY_RE.match(value)
        if match is None:
            raise ResourceError(
                f"{name}={value!r} is not a memory size: use a number with an optional "
                'unit K, M, G or T (and optional B), e.g. "4G", "4GB", "500M", "1.5G".'
            )
        number, unit = match.groups()
        megabytes = math.ceil(float(number) * _MEMORY_FACTORS[unit.upper()])
    if megabytes <= 0:
        raise ResourceError(f"{name}={value!r} must be more than zero megabytes.")
    return megabytes


def format_memory(megabytes: int) -> str:
    """Render megabytes the way sbatch reads them ("4G" when whole gigabytes, else "500M")."""
    if megabytes % 1024 == 0:
        return f"{megabytes // 1024}G"
    return f"{megabytes}M"


def _time_fields(text: str) -> tuple[int, int, int, int]:
    """Split a SLURM time string into (days, hours, minutes, seconds); ValueError if malformed."""
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text)
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 1:  # days-hours
            return days, parts[0], 0, 0
        if len(parts) == 2:  # days-hours:minutes
            return days, parts[0], parts[1], 0
        if len(parts) == 3:  # days-hours:minutes:seconds
            return days, parts[0], parts[1], parts[2]
        raise ValueError(text)
    parts = [int(p) for p in text.split(":")]
    if len(parts) == 1:  # minutes
        return 0, 0, parts[0], 0
    if len(parts) == 2:  # minutes:seconds
        return 0, 0, parts[0], parts[1]
    if len(parts) == 3:  # hours:minutes:seconds
        return 0, parts[0], parts[1], parts[2]
    raise ValueError(text)


def parse_time(value: TimeLike, *, name: str = "time") -> int:
    """Return seconds for ``value``: minutes as an int, a SLURM time string or a timedelta."""
    if isinstance(value, bool) or not isinstance(value, int | str | timedelta):
        raise ResourceError(
            f"{name}={value!r} ({type(value).__name__}) is not a time limit: give minutes as "
            'an int, a string like "30", "01:30:00" or "2-00:00:00", or a timedelta.'
        )
    if isinstance(value, timedelta):
        seconds = math.ceil(value.total_seconds())
    elif isinstance(value, int):
        seconds = value * 60
    else:
        text = value.strip()
        if not re.fullmatch(r"([0-9]+-)?[0-9]+(:[0-9]+){0,2}", text):
            raise ResourceError(
                f'{name}={value!r} is not a SLURM time: use minutes ("30"), "MM:SS", '
                '"HH:MM:SS", "D-HH", "D-HH:MM" or "D-HH:MM:SS".'
            )
        try:
            days, hours, minutes, secs = _time_fields(text)
        except ValueError:
            raise ResourceError(
                f'{name}={value!r} is not a SLURM time: use minutes ("30"), "MM:SS", '
                '"HH:MM:SS", "D-HH", "D-HH:MM" or "D-HH:MM:SS".'
            ) from None
        has_hours = text.count(":") == 2 or "-" in text
        if secs >= 60 or (has_hours and minutes >= 60) or ("-" in text and hours >= 24):
            raise ResourceError(
                f"{name}={value!r} has a field out of range (seconds and minutes below 60, "
                "hours below 24 when days are given)."
            )
        seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    if seconds <= 0:
        raise ResourceError(f"{name}={value!r} must be a positive time limit.")
    return seconds


def format_duration(seconds: float, *, hours: bool = False, day_separator: str = "-") -> str:
    """Render a duration the way SLURM prints one.

    Args:
        seconds: the duration (negative counts as 0; fractions are dropped).
        hours: always show two-digit hours ("00:05:00", as sbatch's ``--time``); otherwise
            as squeue's elapsed time ("5:00", "1:05:00").
        day_separator: between days and hours ("-" as SLURM, "d " for people).

    Returns:
        e.g. "2-04:00:00", "1:02:05", "0:07", or "00:00:07" with ``hours=True``.
    """
    total = max(int(seconds), 0)
    days, rest = divmod(total, 86400)
    whole_hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}{day_separator}{whole_hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{whole_hours:02d}:{minutes:02d}:{secs:02d}"
    if whole_hours:
        return f"{whole_hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def format_time(seconds: int) -> str:
    """Render seconds as SLURM's "D-HH:MM:SS" (or "HH:MM:SS" under a day)."""
    return format_duration(seconds, hours=True)


def _positive_int(name: str, value: object, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ResourceError(
            f"{name}={value!r} ({type(value).__name__}) must be a whole number, e.g. {name}=4."
        )
    if value < 0 or (value == 0 and not allow_zero):
        least = 0 if allow_zero else 1
        raise ResourceError(f"{name}={value!r} must be at least {least}.")
    return value


def _slurm_name(name: str, value: object, pattern: re.Pattern[str] = _NAME_RE) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ResourceError(
            f"{name}={value!r} is not a valid SLURM {name} name: use letters, digits and "
            "'_', '.', '-' only (check `sinfo`/`sacctmgr show assoc` for the names you may use)."
        )
    return check_length(name, value)


def _check_extra(extra: object) -> dict[str, str | bool]:
    if not isinstance(extra, Mapping):
        raise ResourceError(
            f"extra={extra!r} must be a dict of sbatch options, e.g. extra={{'mail-type': 'END'}}."
        )
    checked: dict[str, str | bool] = {}
    for key, value in extra.items():
        option = str(key).removeprefix("--").replace("_", "-")
        if not _OPTION_RE.match(option):
            raise ResourceError(
                f"extra option {key!r} is not an sbatch long option name "
                "(lowercase letters, digits and '-', e.g. 'mail-type')."
            )
        if option in _RESERVED_OPTIONS:
            raise ResourceError(
                f"extra option {key!r} is managed by slurm_magics: use the matching keyword "
                "(cpus, memory, time, gpus, partition, nodes, account, qos, constraint, name) "
                "or, for arrays and dependencies, .map() and .after()."
            )
        if isinstance(value, bool):
            checked[option] = value
        elif isinstance(value, int | float | str):
            text = str(value)
            if any(c in text for c in "\n\r\0") or not text:
                raise ResourceError(
                    f"extra option {key!r} has value {value!r}: it must be non-empty and fit on "
                    "one line."
                )
            checked[option] = check_length(option, text)
        else:
            raise ResourceError(
                f"extra option {key!r} has value {value!r} ({type(value).__name__}): use a "
                "string, a number, or True for a flag."
            )
    return checked


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one job (or each task of an array) asks SLURM for.

    ``None`` means "not set here": the cluster's defaults or SLURM's apply. Values are
    normalised: ``memory`` to megabytes and ``time`` to seconds.
    """

    cpus: int | None = None
    memory: MemoryLike | None = None
    gpus: int | None = None
    time: TimeLike | None = None
    partition: str | None = None
    nodes: int | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    extra: Mapping[str, str | bool] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen dataclass: normalise in place once
        if self.cpus is not None:
            _positive_int("cpus", self.cpus)
        if self.memory is not None:
            set_(self, "memory", parse_memory(self.memory))
        if self.gpus is not None:
            _positive_int("gpus", self.gpus, allow_zero=True)
        if self.time is not None:
            set_(self, "time", parse_time(self.time))
        if self.nodes is not None:
            _positive_int("nodes", self.nodes)
        for field in ("partition", "account", "qos"):
            value = getattr(self, field)
            if value is not None:
                _slurm_name(field, value)
        if self.constraint is not None:
            _slurm_name("constraint", self.constraint, _CONSTRAINT_RE)
        set_(self, "extra", _check_extra(self.extra))

    @property
    def memory_mb(self) -> int | None:
        """Memory in megabytes, or None when not set."""
        return None if self.memory is None else int(self.memory)

    @property
    def time_seconds(self) -> int | None:
        """Time limit in seconds, or None when not set."""
        return None if self.time is None else int(self.time)  # type: ignore[arg-type]

    def merged(self, override: Resources) -> Resources:
        """Return these resources with every value set in ``override`` taking precedence."""
        changes: dict[str, Any] = {
            f.name: getattr(override, f.name)
            for f in dataclasses.fields(self)
            if f.name != "extra" and getattr(override, f.name) is not None
        }
        changes["extra"] = {**self.extra, **override.extra}
        # time is stored in seconds, but replace() parses it again and an int means minutes.
        seconds = override.time_seconds if override.time is not None else self.time_seconds
        if seconds is not None:
            changes["time"] = timedelta(seconds=seconds)
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The set values as plain data (what a function that asked for them receives)."""
        data = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) not in (None, {})
        }
        if "extra" in data:
            data["extra"] = dict(self.extra)
        return data

    def sbatch_options(self) -> list[tuple[str, str | None]]:
        """The sbatch long options these resources stand for, as (name, value-or-None) pairs."""
        options: list[tuple[str, str | None]] = []
        if self.cpus is not None:
            options.append(("cpus-per-task", str(self.cpus)))
        if self.memory_mb is not None:
            options.append(("mem", format_memory(self.memory_mb)))
        if self.gpus:
            options.append(("gres", f"gpu:{self.gpus}"))
        if self.time_seconds is not None:
            options.append(("time", format_time(self.time_seconds)))
        for field in ("partition", "nodes", "account", "qos", "constraint"):
            value = getattr(self, field)
            if value is not None:
                options.append((field, str(value)))
        for option, value in self.extra.items():
            if value is True:
                options.append((option, None))
            elif value is not False:
                options.append((option, str(value)))
        return options


def resources_from_options(**options: Any) -> Resources:
    """Build Resources from keyword options, with a clear error for an unknown keyword."""
    known = {f.name for f in dataclasses.fields(Resources)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ResourceError(
            f"unknown resource option(s) {', '.join(map(repr, unknown))}: known ones are "
            f"{', '.join(sorted(known))} (put any other sbatch option in extra={{...}})."
        )
    return Resources(**options)
