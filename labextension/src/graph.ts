/**
 * Layout of a run's dependency graph (pure): layers from top (upstream) to bottom
 * (downstream), by the longest path from a run without dependencies.
 */

import type { GraphEdge, GraphNode } from './types';

export interface LayoutOptions {
  nodeWidth: number;
  nodeHeight: number;
  gapX: number;
  gapY: number;
  margin: number;
}

export const DEFAULT_LAYOUT: LayoutOptions = {
  nodeWidth: 132,
  nodeHeight: 36,
  gapX: 14,
  gapY: 26,
  margin: 6
};

export interface PlacedNode {
  node: GraphNode;
  layer: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PlacedEdge {
  edge: GraphEdge;
  /** An SVG path from the bottom of the source to the top of the target. */
  path: string;
}

export interface Layout {
  width: number;
  height: number;
  nodes: PlacedNode[];
  edges: PlacedEdge[];
}

/** Layer of each node: 0 for runs without upstream runs, else 1 + the deepest upstream. */
export function layers(
  nodes: GraphNode[],
  edges: GraphEdge[]
): Map<string, number> {
  const ids = new Set(nodes.map(node => node.run_id));
  const upstream = new Map<string, string[]>();
  for (const edge of edges) {
    if (
      ids.has(edge.source) &&
      ids.has(edge.target) &&
      edge.source !== edge.target
    ) {
      upstream.set(edge.target, [
        ...(upstream.get(edge.target) ?? []),
        edge.source
      ]);
    }
  }
  const layer = new Map<string, number>();
  const visiting = new Set<string>();
  const depth = (id: string): number => {
    const known = layer.get(id);
    if (known !== undefined) {
      return known;
    }
    if (visiting.has(id)) {
      return 0; // a cycle (never made by slurm_magics): cut it here
    }
    visiting.add(id);
    const parents = upstream.get(id) ?? [];
    const value =
      parents.length === 0 ? 0 : 1 + Math.max(...parents.map(depth));
    visiting.delete(id);
    layer.set(id, value);
    return value;
  };
  for (const node of nodes) {
    depth(node.run_id);
  }
  return layer;
}

export function layout(
  nodes: GraphNode[],
  edges: GraphEdge[],
  options: LayoutOptions = DEFAULT_LAYOUT
): Layout {
  const layerOf = layers(nodes, edges);
  const rows: GraphNode[][] = [];
  for (const node of nodes) {
    const index = layerOf.get(node.run_id) ?? 0;
    (rows[index] = rows[index] ?? []).push(node);
  }
  const widest = Math.max(1, ...rows.map(row => row?.length ?? 0));
  const width =
    2 * options.margin +
    widest * options.nodeWidth +
    (widest - 1) * options.gapX;
  const placed = new Map<string, PlacedNode>();
  rows.forEach((row, index) => {
    const rowWidth =
      row.length * options.nodeWidth + (row.length - 1) * options.gapX;
    const left = (width - rowWidth) / 2;
    row.forEach((node, position) => {
      placed.set(node.run_id, {
        node,
        layer: index,
        x: left + position * (options.nodeWidth + options.gapX),
        y: options.margin + index * (options.nodeHeight + options.gapY),
        width: options.nodeWidth,
        height: options.nodeHeight
      });
    });
  });
  const height =
    2 * options.margin +
    rows.length * options.nodeHeight +
    Math.max(0, rows.length - 1) * options.gapY;
  const placedEdges: PlacedEdge[] = [];
  for (const edge of edges) {
    const from = placed.get(edge.source);
    const to = placed.get(edge.target);
    if (from === undefined || to === undefined) {
      continue;
    }
    const x1 = from.x + from.width / 2;
    const y1 = from.y + from.height;
    const x2 = to.x + to.width / 2;
    const y2 = to.y;
    const middle = (y1 + y2) / 2;
    placedEdges.push({
      edge,
      path: `M${x1},${y1} C${x1},${middle} ${x2},${middle} ${x2},${y2}`
    });
  }
  return { width, height, nodes: [...placed.values()], edges: placedEdges };
}
