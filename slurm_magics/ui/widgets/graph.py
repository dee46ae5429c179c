"""The dependency graph of a session's jobs, as an SVG (pure).

Nodes are jobs and arrays, coloured by state; edges come from each run's sbatch
dependency expression ("afterok:123_4:125"), matched to the nodes' SLURM ids. A
dependency on a job outside the session becomes a grey node of its own.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Iterable, Sequence

from slurm_magics.core.states import JobState
from slurm_magics.jobs.array import JobArray, runs_of, slurm_ids_of
from slurm_magics.jobs.job import Job
from slurm_magics.ui.widgets.text import COLOURS, sweep_counts

__all__ = ["Edge", "Node", "build_graph", "dependency_ids", "render_svg"]

_WIDTH, _HEIGHT, _GAP_X, _GAP_Y, _MARGIN = 180, 44, 60, 14, 8
_OUTSIDE = "#bdbdbd"


@dataclasses.dataclass(frozen=True)
class Node:
    key: str
    label: str
    detail: str
    colour: str


@dataclasses.dataclass(frozen=True)
class Edge:
    source: str
    target: str
    condition: str


def dependency_ids(expression: str) -> list[tuple[str, str]]:
    """``"afterok:1:2_3,afterany:4"`` -> ``[("afterok", "1"), ("afterok", "2_3"), ...]``."""
    found: list[tuple[str, str]] = []
    for part in re.split(r"[,?]", expression):
        condition, _, ids = part.strip().partition(":")
        for word in ids.split(":"):
            slurm_id = word.split("+", 1)[0].strip()  # "after:123+5" (minutes)
            if slurm_id:
                found.append((condition, slurm_id))
    return found


def _describe(item: Job | JobArray) -> tuple[str, str]:
    if isinstance(item, JobArray):
        counts = sweep_counts(job.state for job in item.jobs)
        ended = len(item) - counts["running"] - counts["pending"]
        state = item.state if item.jobs else JobState.COMPLETED
        detail = f"{','.join(item.job_ids)} · {ended}/{len(item)}"
        if counts["failed"]:
            detail += f" · {counts['failed']} failed"
        return detail, COLOURS[state]
    return f"{item.job_id} · {item.state.value}", COLOURS[item.state]


def build_graph(items: Sequence[tuple[str, Job | JobArray]]) -> tuple[list[Node], list[Edge]]:
    """Nodes and edges of labelled jobs and arrays."""
    nodes: list[Node] = []
    by_id: dict[str, str] = {}
    for index, (label, item) in enumerate(items):
        key = f"n{index}"
        detail, colour = _describe(item)
        nodes.append(Node(key, label, detail, colour))
        for slurm_id in slurm_ids_of(item):
            by_id.setdefault(slurm_id, key)
    edges: list[Edge] = []
    outside: dict[str, str] = {}
    for index, (_, item) in enumerate(items):
        runs = runs_of(item)
        seen: set[tuple[str, str]] = set()
        for run in runs:
            for condition, slurm_id in dependency_ids(run.dependency):
                source = by_id.get(slurm_id) or by_id.get(slurm_id.split("_", 1)[0])
                if source is None:
                    base = slurm_id.split("_", 1)[0]
                    if base not in outside:
                        outside[base] = f"x{len(outside)}"
                        nodes.append(Node(outside[base], "outside this session", base, _OUTSIDE))
                    source = outside[base]
                if (source, condition) not in seen:
                    seen.add((source, condition))
                    edges.append(Edge(source, f"n{index}", condition))
    return nodes, edges


def _layers(nodes: Sequence[Node], edges: Iterable[Edge]) -> dict[str, int]:
    """Column of each node: the longest chain of dependencies leading to it."""
    incoming: dict[str, list[str]] = {node.key: [] for node in nodes}
    for edge in edges:
        incoming[edge.target].append(edge.source)
    depth: dict[str, int] = {}

    def visit(key: str, trail: frozenset[str]) -> int:
        if key in depth:
            return depth[key]
        parents = [p for p in incoming[key] if p not in trail]  # never loop on a cycle
        depth[key] = 1 + max((visit(p, trail | {key}) for p in parents), default=-1)
        return depth[key]

    for node in nodes:
        visit(node.key, frozenset())
    return depth


def _short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_svg(nodes: Sequence[Node], edges: Sequence[Edge]) -> str:
    """A left-to-right layered drawing: dependencies point from a job to what waits on it."""
    if not nodes:
        return ""
    depth = _layers(nodes, edges)
    rows: dict[int, int] = {}
    where: dict[str, tuple[int, int]] = {}
    for node in nodes:
        column = depth[node.key]
        row = rows.get(column, 0)
        rows[column] = row + 1
        where[node.key] = (
            _MARGIN + column * (_WIDTH + _GAP_X),
            _MARGIN + row * (_HEIGHT + _GAP_Y),
        )
    width = _MARGIN * 2 + (max(rows) + 1) * (_WIDTH + _GAP_X) - _GAP_X
    height = _MARGIN * 2 + max(rows.values()) * (_HEIGHT + _GAP_Y) - _GAP_Y
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        '<defs><marker id="sm-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        'fill="#757575"/></marker></defs>',
    ]
    for edge in edges:
        x1, y1 = where[edge.source]
        x2, y2 = where[edge.target]
        x1, y1, y2 = x1 + _WIDTH, y1 + _HEIGHT // 2, y2 + _HEIGHT // 2
        middle = (x1 + x2) // 2
        dash = "" if edge.condition == "afterok" else ' stroke-dasharray="4 3"'
        parts.append(
            f'<path class="sm-edge" d="M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}" '
            f'fill="none" stroke="#757575" stroke-width="1.5"{dash} marker-end="url(#sm-arrow)">'
            f"<title>{html.escape(edge.condition)}</title></path>"
        )
    for node in nodes:
        x, y = where[node.key]
        parts.append(
            f'<g class="sm-node" data-key="{node.key}"><rect x="{x}" y="{y}" width="{_WIDTH}" '
            f'height="{_HEIGHT}" rx="5" fill="{node.colour}" fill-opacity="0.15" '
            f'stroke="{node.colour}" stroke-width="2"/>'
            f'<text x="{x + 8}" y="{y + 17}" font-weight="bold">'
            f"{html.escape(_short(node.label))}</text>"
            f'<text x="{x + 8}" y="{y + 34}">{html.escape(_short(node.detail, 30))}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
