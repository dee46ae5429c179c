/**
 * The dependency graph of a run as an SVG picture: one box per run, coloured by state,
 * arrows from upstream to downstream; a click on another run selects it.
 */

import { stateClass, svg } from './dom';
import { layout } from './graph';
import { overallState } from './model';
import type { GraphReply } from './types';

export function graphPicture(
  reply: GraphReply,
  select: (runId: string) => void
): SVGSVGElement {
  const placed = layout(reply.nodes, reply.edges);
  const picture = svg('svg', {
    class: 'jp-SlurmGraph',
    width: placed.width,
    height: placed.height,
    viewBox: `0 0 ${placed.width} ${placed.height}`,
    role: 'img',
    'aria-label': `dependency graph of ${reply.nodes.length} runs`
  });
  picture.append(
    svg(
      'defs',
      {},
      svg(
        'marker',
        {
          id: 'jp-SlurmGraph-arrow',
          viewBox: '0 0 10 10',
          refX: 9,
          refY: 5,
          markerWidth: 6,
          markerHeight: 6,
          orient: 'auto-start-reverse'
        },
        svg('path', {
          d: 'M0,0 L10,5 L0,10 z',
          class: 'jp-SlurmGraph-arrowHead'
        })
      )
    )
  );
  for (const edge of placed.edges) {
    picture.append(
      svg('path', {
        d: edge.path,
        class: 'jp-SlurmGraph-edge',
        'marker-end': 'url(#jp-SlurmGraph-arrow)',
        'data-source': edge.edge.source,
        'data-target': edge.edge.target
      })
    );
  }
  for (const item of placed.nodes) {
    const node = item.node;
    const state = node.missing ? 'UNKNOWN' : overallState(node.counts ?? {});
    const selected = node.run_id === reply.run_id;
    const label = node.missing ? '(not in the registry)' : node.name;
    const group = svg(
      'g',
      {
        class: `jp-SlurmGraph-node ${stateClass(state)}${selected ? ' jp-mod-selected' : ''}`,
        transform: `translate(${item.x},${item.y})`,
        'data-run-id': node.run_id,
        tabindex: 0
      },
      svg('title', {}, `${label} · job ${node.job_id} · ${state}`),
      svg('rect', { width: item.width, height: item.height, rx: 4 }),
      svg(
        'text',
        { x: 6, y: 14, class: 'jp-SlurmGraph-name' },
        shorten(label, 20)
      ),
      svg(
        'text',
        { x: 6, y: 29, class: 'jp-SlurmGraph-state' },
        `${node.job_id} ${state.toLowerCase()}`
      )
    );
    if (!node.missing && !selected) {
      group.addEventListener('click', () => select(node.run_id));
    }
    picture.append(group);
  }
  return picture;
}

function shorten(text: string, length: number): string {
  return text.length <= length ? text : `${text.slice(0, length - 1)}…`;
}
