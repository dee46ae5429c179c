"""Why a job of the panel waits and when SLURM expects it to start, as JSON (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from slurm_magics.core.reasons import StartEstimate, explain_reason
from slurm_magics.jobs.waiting import estimate_of
from slurm_magics.server.views import JSON

__all__ = ["start_view"]


def start_view(job_id: str, estimates: Sequence[StartEstimate]) -> JSON:
    """The reply of GET /jobs/<id>/start: ``pending`` (false once the job left the
    pending state), SLURM's ``reason`` code and its ``explanation`` in words, the
    ``start`` SLURM expects (ISO local time, null when it has none) and a ``text`` line.
    For a whole array, the earliest estimate of its pending tasks."""
    mine = [e for e in estimates if estimate_of(job_id, [e]) is not None or "_" not in job_id]
    if not mine:
        return {
            "job_id": job_id,
            "pending": False,
            "reason": "",
            "explanation": "",
            "start": None,
            "text": f"{job_id} is not pending",
        }
    dated = sorted((e for e in mine if e.start is not None), key=lambda e: e.start or 0)
    chosen = dated[0] if dated else mine[0]
    explanation = explain_reason(chosen.reason)
    start = chosen.start.isoformat(timespec="seconds") if chosen.start else None
    when = (
        f"expected start {chosen.start:%Y-%m-%d %H:%M:%S}"
        if chosen.start
        else "no start estimate yet"
    )
    return {
        "job_id": job_id,
        "pending": True,
        "reason": chosen.reason,
        "explanation": explanation,
        "start": start,
        "text": f"{explanation or 'waiting'} · {when}",
    }
