"""The REST API of the SLURM sidebar, under ``{base_url}slurm-magics/api/``.

Every handler is an authenticated ``APIHandler`` (token or login cookie + XSRF, as all of
Jupyter's API); every input is checked here and refused with a 400 that says what was
wrong; no command line is ever built from request data beyond validated SLURM ids, and
no shell is involved.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable
from types import TracebackType
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler

from slurm_magics.core.errors import ClusterError
from slurm_magics.core.parsing import SLURM_ID
from slurm_magics.server.service import LookupFailed, SlurmService
from slurm_magics.server.views import JSON

__all__ = [
    "API_PATH",
    "CancelHandler",
    "GraphHandler",
    "JobsHandler",
    "LogHandler",
    "QueueHandler",
    "Refused",
    "SlurmAPIHandler",
    "StartHandler",
    "bad_request",
    "handlers",
    "parse_run_id",
    "parse_slurm_id",
]

API_PATH = "slurm-magics/api"

#: "123" (a job, or a whole array job) or "123_4" (one array task)
#: registry run ids: "<session>-<hex>", letters, digits, '.', '_', '-'
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_LOG_BYTES = 64 * 1024
DEFAULT_LOG_BYTES = 16 * 1024
MAX_PAGE = 500
DEFAULT_PAGE = 100
MAX_BODY = 4096


class Refused(tornado.web.HTTPError):
    """An error reply whose message is shown as it is (Jupyter's JSON: {"message": ...}).

    Tornado treats an HTTPError's message as a %-format; this one is plain text (it may
    quote what the client sent), so it is never formatted nor escaped.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status)
        self.text = message

    @property
    def log_message(self) -> str:  # what jupyter_server's APIHandler replies
        return self.text

    def get_message(self) -> str:
        return self.text

    def __str__(self) -> str:
        return f"HTTP {self.status_code}: {self.text}"


def bad_request(message: str) -> Refused:
    return Refused(400, message)


def parse_slurm_id(text: str, *, what: str = "job id") -> tuple[str, int | None]:
    """Split a validated "123" / "123_4" into (job id, task or None); 400 otherwise."""
    match = SLURM_ID.fullmatch(text)
    if match is None:
        raise bad_request(
            f"{what} {text[:40]!r} is not a SLURM job id: give digits, or digits_digits for "
            "one array task (e.g. 123 or 123_4)."
        )
    job, task = match.groups()
    return job, (int(task) if task is not None else None)


def parse_run_id(text: str) -> str:
    if RUN_ID.fullmatch(text) is None:
        raise bad_request(
            f"run id {text[:40]!r} is not a slurm_magics run id (letters, digits, '.', '_', "
            "'-'; as the job list gives it)."
        )
    return text


class SlurmAPIHandler(APIHandler):
    """Common parts: the service, integer arguments, JSON replies, lookup errors."""

    service: SlurmService

    def initialize(self, service: SlurmService) -> None:
        self.service = service

    def int_argument(self, name: str, default: int, low: int, high: int) -> int:
        text = self.get_argument(name, None)
        if text is None:
            return default
        if not re.fullmatch(r"\d{1,10}", text) or not low <= int(text) <= high:
            raise bad_request(f"{name}={text[:20]!r} must be a whole number from {low} to {high}.")
        return int(text)

    async def run(self, action: Awaitable[JSON]) -> None:
        try:
            body = await action
        except LookupFailed as error:
            raise Refused(error.status, str(error)) from None
        except ClusterError as error:  # SLURM refused (a cancel, say): say what it said
            raise Refused(502, f"SLURM refused: {error}") from None
        self.finish(json.dumps(body))

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(value, Refused):  # an expected refusal: one line, not formatted
            self.log.warning("%d %s: %s", value.status_code, self._request_summary(), value)
        else:
            super().log_exception(typ, value, tb)


class JobsHandler(SlurmAPIHandler):
    """GET: a page of runs, newest first, grouped by notebook, with live state counts.

    Query: ``offset`` (default 0), ``limit`` (1-500, default 100), ``notebook`` (only the
    runs of that notebook, as the list names it).
    """

    @tornado.web.authenticated
    async def get(self) -> None:
        offset = self.int_argument("offset", 0, 0, 10**9)
        limit = self.int_argument("limit", DEFAULT_PAGE, 1, MAX_PAGE)
        notebook = self.get_argument("notebook", None)
        if notebook is not None and (not notebook or len(notebook) > 4096 or "\0" in notebook):
            raise bad_request("notebook= must be a non-empty name of at most 4096 characters.")
        await self.run(self.service.jobs(offset=offset, limit=limit, notebook=notebook))


class QueueHandler(SlurmAPIHandler):
    """GET: the user's squeue (one call every ~2 s at most, shared), arrays grouped."""

    @tornado.web.authenticated
    async def get(self) -> None:
        await self.run(self.service.queue_view())


class LogHandler(SlurmAPIHandler):
    """GET /jobs/<id>/log: the tail of a job's stdout or stderr.

    Query: ``stream`` ("out" or "err", default "out"), ``bytes`` (1-65536, default 16384).
    The file is the one the registry's run folder holds for that id; nothing in the
    request names a path.
    """

    @tornado.web.authenticated
    async def get(self, job_id: str) -> None:
        array_id, task = parse_slurm_id(job_id)
        stream = self.get_argument("stream", "out")
        if stream not in ("out", "err"):
            raise bad_request(f"stream={stream[:20]!r} must be 'out' or 'err'.")
        max_bytes = self.int_argument("bytes", DEFAULT_LOG_BYTES, 1, MAX_LOG_BYTES)
        await self.run(self.service.log_tail(array_id, task, stream, max_bytes))


class StartHandler(SlurmAPIHandler):
    """GET /jobs/<id>/start: why a pending job (or array) waits, in words, and when SLURM
    expects it to start (one ``squeue --start`` per request, never polled)."""

    @tornado.web.authenticated
    async def get(self, job_id: str) -> None:
        array_id, task = parse_slurm_id(job_id)
        await self.run(self.service.start(array_id, task))


class GraphHandler(SlurmAPIHandler):
    """GET /runs/<run id>/graph: the runs it depends on and those depending on it."""

    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        await self.run(self.service.graph(parse_run_id(run_id)))


class CancelHandler(SlurmAPIHandler):
    """POST {"job_id": "123" | "123_4"} or {"run_id": "..."}: scancel a job, one array
    task, a whole array job, or every slice of a run; only jobs of the registry."""

    @tornado.web.authenticated
    async def post(self) -> None:
        if len(self.request.body) > MAX_BODY:
            raise bad_request(f"the request body is larger than {MAX_BODY} bytes.")
        try:
            body = json.loads(self.request.body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise bad_request(
                'the body must be JSON: {"job_id": "123"} or {"run_id": "..."}.'
            ) from None
        if not isinstance(body, dict):
            raise bad_request(
                'the body must be a JSON object: {"job_id": "123"} or {"run_id": "..."}.'
            )
        unknown = sorted(set(body) - {"job_id", "run_id"})
        if unknown:
            raise bad_request(f"unknown field(s) {unknown[:5]}: give job_id or run_id.")
        if len(body) != 1:
            raise bad_request('give exactly one of job_id (e.g. "123_4") and run_id.')
        ((field, value),) = body.items()
        if not isinstance(value, str):
            raise bad_request(f"{field} must be a string, not {type(value).__name__}.")
        if field == "run_id":
            action = self.service.cancel(array_id=None, task=None, run_id=parse_run_id(value))
        else:
            array_id, task = parse_slurm_id(value)
            action = self.service.cancel(array_id=array_id, task=task, run_id=None)
        await self.run(action)


def handlers(base_url: str, service: SlurmService) -> list[tuple[str, type, dict[str, Any]]]:
    """The URL rules of the API under the server's base URL."""
    prefix = f"{base_url.rstrip('/')}/{API_PATH}"
    options = {"service": service}
    return [
        (f"{prefix}/jobs", JobsHandler, options),
        (f"{prefix}/queue", QueueHandler, options),
        (f"{prefix}/jobs/([^/]+)/log", LogHandler, options),
        (f"{prefix}/jobs/([^/]+)/start", StartHandler, options),
        (f"{prefix}/runs/([^/]+)/graph", GraphHandler, options),
        (f"{prefix}/cancel", CancelHandler, options),
    ]
