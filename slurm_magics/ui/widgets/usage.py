"""Used vs asked as small bars, for the sweep display when an array ends (pure HTML)."""

from __future__ import annotations

import html

from slurm_magics.core.resources import format_duration
from slurm_magics.jobs.efficiency import EfficiencyReport

__all__ = ["usage_bars", "usage_rows"]

_USED = "#1e88e5"
_PEAK = "#90caf9"
_ASKED = "#eeeeee"


def usage_rows(report: EfficiencyReport) -> list[tuple[str, float, float, str]]:
    """(label, median fraction, max fraction, words) per figure: CPU of the cores asked,
    memory of the memory asked, time of the limit; figures with nothing to compare to
    are left out."""
    s = report.summary
    rows = []
    if s.cpu_efficiency:
        words = f"CPU {s.cpu_efficiency[0]:.0%} median, {s.cpu_efficiency[1]:.0%} max"
        rows.append(("CPU", *s.cpu_efficiency, words))
    if s.memory_used and s.max_rss:
        mb = s.max_rss[1] / 2**20
        words = f"memory {s.memory_used[0]:.0%} median, {s.memory_used[1]:.0%} max ({mb:.0f} MB)"
        rows.append(("memory", *s.memory_used, words))
    if s.time_used and s.elapsed:
        longest = format_duration(s.elapsed[1])
        words = f"time {s.time_used[0]:.0%} median, {s.time_used[1]:.0%} max ({longest})"
        rows.append(("time", *s.time_used, words))
    return rows


def _width(fraction: float) -> str:
    return f"{100 * min(max(fraction, 0.0), 1.0):.1f}%"


def _bar(median: float, peak: float) -> str:
    width = _width
    return (
        f'<div style="position:relative;height:10px;width:160px;background:{_ASKED};'
        'border-radius:2px;display:inline-block;vertical-align:middle;overflow:hidden">'
        f'<div style="position:absolute;height:100%;width:{width(peak)};background:{_PEAK}">'
        f'</div><div style="position:absolute;height:100%;width:{width(median)};'
        f'background:{_USED}"></div></div>'
    )


def usage_bars(report: EfficiencyReport) -> str:
    """Bars of used vs asked (dark: median, light: max, grey: asked) and the suggestion."""
    rows = "".join(
        f'<div class="sm-usage-row" data-figure="{label}">{_bar(median, peak)} '
        f"{html.escape(words)}</div>"
        for label, median, peak, words in usage_rows(report)
    )
    missing = (
        f"<div>{report.missing} task(s) without final figures yet (running, or lagging)</div>"
        if report.missing
        else ""
    )
    return (
        '<div class="sm-usage" style="font-family:var(--jp-code-font-family,monospace);'
        f'line-height:1.6;margin-top:4px">used vs asked ({html.escape(report.source)}):'
        f"{rows}{missing}<div>next time: <b>{html.escape(str(report.suggestion))}</b></div></div>"
    )
