/**
 * Pure logic of the SLURM panel: states, counts, progress, array task ranges, texts.
 * No DOM and no JupyterLab imports, so that `node --test` runs it as it is.
 */

import type {
  Counts,
  NotebookGroup,
  QueueSummary,
  RunInfo,
  Slice
} from './types';

/** The server's state order (slurm_magics.JobState, then UNKNOWN). */
export const STATE_ORDER: readonly string[] = [
  'PENDING',
  'RUNNING',
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'OUT_OF_MEMORY',
  'NODE_FAIL',
  'DEPENDENCY_FAILED',
  'UNKNOWN'
];

/** States that can still change. */
export const ACTIVE_STATES: readonly string[] = ['PENDING', 'RUNNING'];

function orderOf(state: string): number {
  const index = STATE_ORDER.indexOf(state);
  return index < 0 ? STATE_ORDER.length : index;
}

/** Counts without zero entries, in the server's state order. */
export function orderedCounts(counts: Counts): [string, number][] {
  return Object.entries(counts)
    .filter(([, n]) => n > 0)
    .sort((a, b) => orderOf(a[0]) - orderOf(b[0]));
}

export function total(counts: Counts): number {
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}

export function isActive(counts: Counts): boolean {
  return ACTIVE_STATES.some(state => (counts[state] ?? 0) > 0);
}

/**
 * One state for a whole run or array: RUNNING while any task runs, else PENDING while any
 * waits, else COMPLETED when all completed, else the most frequent way it ended otherwise.
 */
export function overallState(counts: Counts): string {
  if ((counts.RUNNING ?? 0) > 0) {
    return 'RUNNING';
  }
  if ((counts.PENDING ?? 0) > 0) {
    return 'PENDING';
  }
  const ended = orderedCounts(counts).filter(
    ([state]) => state !== 'COMPLETED'
  );
  if (ended.length === 0) {
    return total(counts) > 0 ? 'COMPLETED' : 'UNKNOWN';
  }
  let worst = ended[0];
  for (const entry of ended) {
    if (entry[1] > worst[1]) {
      worst = entry;
    }
  }
  return worst[0];
}

export interface ProgressSegment {
  state: string;
  count: number;
  /** Share of the whole bar, 0-1. */
  fraction: number;
}

export interface Progress {
  finished: number;
  total: number;
  /** Finished share, 0-1. */
  fraction: number;
  segments: ProgressSegment[];
}

/** A stacked progress bar: finished states first, then running, then pending. */
export function progress(counts: Counts): Progress {
  const all = total(counts);
  const entries = orderedCounts(counts);
  const finished = entries
    .filter(([state]) => !ACTIVE_STATES.includes(state))
    .reduce((sum, [, n]) => sum + n, 0);
  const ordered = [
    ...entries.filter(([state]) => !ACTIVE_STATES.includes(state)),
    ...entries.filter(([state]) => state === 'RUNNING'),
    ...entries.filter(([state]) => state === 'PENDING')
  ];
  return {
    finished,
    total: all,
    fraction: all === 0 ? 0 : finished / all,
    segments: ordered.map(([state, count]) => ({
      state,
      count,
      fraction: all === 0 ? 0 : count / all
    }))
  };
}

/** "3 running · 2 pending · 5 completed" */
export function countsText(counts: Counts): string {
  return orderedCounts(counts)
    .map(([state, n]) => `${n} ${state.toLowerCase().replace(/_/g, ' ')}`)
    .join(' · ');
}

/** SLURM's id of one element of a run: "123" or "123_4"; null when out of range. */
export function slurmIdOf(slices: Slice[], element: number): string | null {
  for (const [id, first, n] of slices) {
    if (n === 0 && element === first) {
      return id;
    }
    if (n > 0 && element >= first && element < first + n) {
      return `${id}_${element - first}`;
    }
  }
  return null;
}

/** A stretch of consecutive items of an array in the same state. */
export interface TaskRange {
  state: string;
  firstItem: number;
  lastItem: number;
  /** "4" or "0-4" (item numbers, as `arr[i]` in the notebook). */
  label: string;
  /** The SLURM id of the first element of the range, for its log. */
  firstJobId: string | null;
}

/** The items of an array grouped into ranges of one state (from the server's run lengths). */
export function taskRanges(run: RunInfo): TaskRange[] {
  const ranges: TaskRange[] = [];
  let item = 0;
  const chunk = Math.max(run.chunk_size, 1);
  for (const [state, count] of run.task_states ?? []) {
    const firstItem = item;
    const lastItem = item + count - 1;
    ranges.push({
      state,
      firstItem,
      lastItem,
      label: count === 1 ? `${firstItem}` : `${firstItem}-${lastItem}`,
      firstJobId: slurmIdOf(run.slices, Math.floor(firstItem / chunk))
    });
    item += count;
  }
  return ranges;
}

/** Every run of the reply, newest first within each notebook. */
export function allRuns(groups: NotebookGroup[]): RunInfo[] {
  return ([] as RunInfo[]).concat(...groups.map(group => group.runs));
}

export function findRun(
  groups: NotebookGroup[],
  runId: string | null
): RunInfo | null {
  if (runId === null) {
    return null;
  }
  return allRuns(groups).find(run => run.run_id === runId) ?? null;
}

/** A short name for a notebook path: its file name, or the text as it is. */
export function notebookLabel(notebook: string): string {
  const parts = notebook.split('/');
  return parts[parts.length - 1] || notebook;
}

/** The status bar's text. */
export function statusText(queue: QueueSummary | null): string {
  if (queue === null) {
    return 'SLURM';
  }
  if (queue.error !== null) {
    return 'SLURM: queue unavailable';
  }
  return `SLURM: ${queue.running} running, ${queue.pending} pending`;
}

/** "12 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function ago(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) {
    return `${s} s ago`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ago`;
  }
  if (s < 86400) {
    return `${Math.floor(s / 3600)} h ago`;
  }
  return `${Math.floor(s / 86400)} d ago`;
}

/**
 * What changed between two replies matters for the refresh rate: a fingerprint of the
 * states of every run (not of timestamps, which change on every read).
 */
export function fingerprint(groups: NotebookGroup[]): string {
  return allRuns(groups)
    .map(run => `${run.run_id}:${orderedCounts(run.counts).join(',')}`)
    .join('|');
}

/** Whether any listed run still has a task pending or running. */
export function anyActive(groups: NotebookGroup[]): boolean {
  return allRuns(groups).some(run => isActive(run.counts));
}

/** What waits on the client, in words ("" when nothing does): the tasks of a map past the
 * cluster's job limits that the submitting notebook sends in waves as room appears. */
export function clientWaitText(run: RunInfo): string {
  const waiting = run.waiting_on_client;
  if (!waiting || waiting.tasks <= 0) {
    return '';
  }
  const tasks = waiting.tasks === 1 ? '1 task' : `${waiting.tasks} tasks`;
  return (
    `${tasks} not submitted yet: waiting for room under the cluster's job limits, ` +
    `sent in waves by the process that submitted them (${waiting.where})`
  );
}
