import assert from 'node:assert/strict';
import test from 'node:test';

import { DEFAULT_LAYOUT, layers, layout } from '../src/graph';
import type { GraphEdge, GraphNode } from '../src/types';

function nodes(...ids: string[]): GraphNode[] {
  return ids.map(id => ({ run_id: id, name: id, job_id: id, missing: false }));
}

function edges(...pairs: [string, string][]): GraphEdge[] {
  return pairs.map(([source, target]) => ({ source, target, items: [] }));
}

test('layers follow the longest path from runs without dependencies', () => {
  // a diamond with a shortcut: a -> b -> d, a -> c -> d, a -> d
  const layer = layers(
    nodes('a', 'b', 'c', 'd'),
    edges(['a', 'b'], ['a', 'c'], ['b', 'd'], ['c', 'd'], ['a', 'd'])
  );
  assert.deepEqual(Object.fromEntries(layer), { a: 0, b: 1, c: 1, d: 2 });
});

test('a cycle or a dangling edge never hangs the layout', () => {
  const layer = layers(
    nodes('a', 'b'),
    edges(['a', 'b'], ['b', 'a'], ['x', 'a'], ['a', 'a'])
  );
  assert.equal(layer.size, 2);
});

test('nodes of one layer sit side by side, edges run from bottom to top', () => {
  const placed = layout(nodes('a', 'b', 'c'), edges(['a', 'c'], ['b', 'c']));
  const at = Object.fromEntries(placed.nodes.map(n => [n.node.run_id, n]));
  const { nodeWidth, nodeHeight, gapX, gapY, margin } = DEFAULT_LAYOUT;
  assert.equal(at.a.y, at.b.y);
  assert.equal(at.b.x - at.a.x, nodeWidth + gapX);
  assert.equal(at.c.y, margin + nodeHeight + gapY);
  assert.equal(at.c.x + nodeWidth / 2, placed.width / 2); // centred under its parents
  assert.equal(placed.width, 2 * margin + 2 * nodeWidth + gapX);
  assert.equal(placed.height, 2 * margin + 2 * nodeHeight + gapY);
  assert.equal(placed.edges.length, 2);
  const first = placed.edges[0].path;
  assert.ok(
    first.startsWith(`M${at.a.x + nodeWidth / 2},${at.a.y + nodeHeight} `),
    first
  );
  assert.ok(first.endsWith(` ${at.c.x + nodeWidth / 2},${at.c.y}`), first);
});

test('a single run is one node and no edge', () => {
  const placed = layout(nodes('solo'), []);
  assert.equal(placed.nodes.length, 1);
  assert.equal(placed.edges.length, 0);
  assert.equal(placed.nodes[0].x, DEFAULT_LAYOUT.margin);
});
