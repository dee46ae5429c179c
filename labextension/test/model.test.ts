import assert from 'node:assert/strict';
import test from 'node:test';

import {
  ago,
  anyActive,
  clientWaitText,
  countsText,
  findRun,
  fingerprint,
  notebookLabel,
  orderedCounts,
  overallState,
  progress,
  slurmIdOf,
  statusText,
  taskRanges
} from '../src/model';
import type { NotebookGroup, QueueSummary, RunInfo } from '../src/types';

function run(overrides: Partial<RunInfo> = {}): RunInfo {
  return {
    run_id: 'r1',
    name: 'square',
    job_id: '100',
    slurm_ids: ['100'],
    slices: [['100', 0, 0]],
    is_array: false,
    n_items: 1,
    chunk_size: 1,
    cluster: 'local (devcluster)',
    local: true,
    notebook: '/srv/a.ipynb',
    notebook_path: 'a.ipynb',
    submitted_at: 1000,
    dependency: '',
    counts: { PENDING: 1 },
    ...overrides
  };
}

test('one state for a whole array: running, then pending, then how it ended', () => {
  assert.equal(
    overallState({ PENDING: 3, RUNNING: 1, COMPLETED: 6 }),
    'RUNNING'
  );
  assert.equal(overallState({ PENDING: 3, COMPLETED: 6 }), 'PENDING');
  assert.equal(overallState({ COMPLETED: 10 }), 'COMPLETED');
  assert.equal(overallState({ COMPLETED: 8, FAILED: 2 }), 'FAILED');
  assert.equal(
    overallState({ FAILED: 1, CANCELLED: 3, COMPLETED: 9 }),
    'CANCELLED'
  );
  assert.equal(overallState({ TIMEOUT: 2, FAILED: 2 }), 'FAILED'); // a tie: state order
  assert.equal(overallState({}), 'UNKNOWN');
  assert.equal(overallState({ RUNNING: 0, COMPLETED: 1 }), 'COMPLETED');
});

test('counts are ordered like the server, without zeros, and read as text', () => {
  const counts = { COMPLETED: 5, PENDING: 2, RUNNING: 0, OUT_OF_MEMORY: 1 };
  assert.deepEqual(orderedCounts(counts), [
    ['PENDING', 2],
    ['COMPLETED', 5],
    ['OUT_OF_MEMORY', 1]
  ]);
  assert.equal(countsText(counts), '2 pending · 5 completed · 1 out of memory');
});

test('progress puts finished tasks first, then running, then pending', () => {
  const bar = progress({ PENDING: 5, RUNNING: 2, COMPLETED: 2, FAILED: 1 });
  assert.equal(bar.total, 10);
  assert.equal(bar.finished, 3);
  assert.equal(bar.fraction, 0.3);
  assert.deepEqual(
    bar.segments.map(s => [s.state, s.fraction]),
    [
      ['COMPLETED', 0.2],
      ['FAILED', 0.1],
      ['RUNNING', 0.2],
      ['PENDING', 0.5]
    ]
  );
  assert.deepEqual(progress({}), {
    finished: 0,
    total: 0,
    fraction: 0,
    segments: []
  });
});

test('elements map to SLURM ids across slices; a single job has no task id', () => {
  const slices: RunInfo['slices'] = [
    ['200', 0, 1000],
    ['300', 1000, 5]
  ];
  assert.equal(slurmIdOf(slices, 0), '200_0');
  assert.equal(slurmIdOf(slices, 999), '200_999');
  assert.equal(slurmIdOf(slices, 1000), '300_0');
  assert.equal(slurmIdOf(slices, 1005), null);
  assert.equal(slurmIdOf([['100', 0, 0]], 0), '100');
  assert.equal(slurmIdOf([['100', 0, 0]], 1), null);
});

test('array tasks are grouped into ranges of one state, with the log id of each', () => {
  const array = run({
    is_array: true,
    n_items: 10,
    chunk_size: 2, // items 0-1 are task 0, 2-3 task 1, ...
    slices: [['500', 0, 5]],
    task_states: [
      ['COMPLETED', 3],
      ['RUNNING', 1],
      ['PENDING', 6]
    ]
  });
  assert.deepEqual(
    taskRanges(array).map(r => [r.label, r.state, r.firstJobId]),
    [
      ['0-2', 'COMPLETED', '500_0'],
      ['3', 'RUNNING', '500_1'],
      ['4-9', 'PENDING', '500_2']
    ]
  );
  assert.deepEqual(taskRanges(run()), []);
});

test('runs are found across notebooks; activity and fingerprints follow the counts', () => {
  const groups: NotebookGroup[] = [
    {
      notebook: '/srv/a.ipynb',
      notebook_path: 'a.ipynb',
      counts: { PENDING: 1 },
      runs: [run()]
    },
    {
      notebook: '<interactive>',
      notebook_path: null,
      counts: { COMPLETED: 1 },
      runs: [run({ run_id: 'r2', counts: { COMPLETED: 1 } })]
    }
  ];
  assert.equal(findRun(groups, 'r2')?.run_id, 'r2');
  assert.equal(findRun(groups, 'nope'), null);
  assert.equal(findRun(groups, null), null);
  assert.equal(anyActive(groups), true);
  const before = fingerprint(groups);
  groups[0].runs[0] = run({ counts: { RUNNING: 1 }, submitted_at: 5 });
  assert.notEqual(fingerprint(groups), before);
  const same = fingerprint(groups);
  groups[0].runs[0] = run({ counts: { RUNNING: 1 }, submitted_at: 6 });
  assert.equal(fingerprint(groups), same); // times alone are no change
  groups[0].runs[0] = run({ counts: { COMPLETED: 1 } });
  assert.equal(anyActive(groups), false);
});

test('texts: notebook names, the status bar, ages', () => {
  assert.equal(notebookLabel('/home/me/work/sweep.ipynb'), 'sweep.ipynb');
  assert.equal(notebookLabel('<interactive>'), '<interactive>');
  const queue: QueueSummary = {
    fetched_at: 0,
    error: null,
    calls: 1,
    running: 2,
    pending: 7,
    counts: {}
  };
  assert.equal(statusText(queue), 'SLURM: 2 running, 7 pending');
  assert.equal(
    statusText({ ...queue, error: 'no squeue' }),
    'SLURM: queue unavailable'
  );
  assert.equal(statusText(null), 'SLURM');
  assert.equal(ago(4.4), '4 s ago');
  assert.equal(ago(125), '2 min ago');
  assert.equal(ago(7200), '2 h ago');
  assert.equal(ago(3 * 86400), '3 d ago');
  assert.equal(ago(-5), '0 s ago');
});

test('clientWaitText says what waits on the client and where, or nothing', () => {
  assert.equal(clientWaitText(run()), '');
  assert.equal(clientWaitText(run({ waiting_on_client: null })), '');
  const text = clientWaitText(
    run({ waiting_on_client: { tasks: 700, where: 'pid 4242 on login1' } })
  );
  assert.match(text, /^700 tasks not submitted yet: waiting for room/);
  assert.match(text, /\(pid 4242 on login1\)$/);
  assert.match(
    clientWaitText(
      run({ waiting_on_client: { tasks: 1, where: 'pid 1 on a' } })
    ),
    /^1 task not/
  );
});
