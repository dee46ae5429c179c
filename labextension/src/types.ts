/**
 * The JSON the server extension sends (slurm_magics/server/views.py), as TypeScript types.
 */

/** Number of items (array tasks, or the one job) per state, in the server's state order. */
export type Counts = Record<string, number>;

/** One sbatch call of a run: [SLURM id, first element, number of elements (0: no array)]. */
export type Slice = [string, number, number];

/** One run: a single call, or a `.map()` (one array job, split past MaxArraySize). */
export interface RunInfo {
  run_id: string;
  name: string;
  job_id: string;
  slurm_ids: string[];
  slices: Slice[];
  is_array: boolean;
  n_items: number;
  chunk_size: number;
  cluster: string;
  local: boolean;
  notebook: string;
  notebook_path: string | null;
  submitted_at: number;
  dependency: string;
  counts: Counts;
  /** Items not submitted yet, waiting for room in the process that submitted the run
   * (waves under the cluster's job limits), and which process that is; null when none. */
  waiting_on_client?: { tasks: number; where: string } | null;
  /** Run-length encoded states of the items of an array, in item order. */
  task_states?: [string, number][];
  task_states_truncated?: boolean;
}

export interface NotebookGroup {
  notebook: string;
  notebook_path: string | null;
  runs: RunInfo[];
  counts: Counts;
}

/** The user's whole queue in numbers, from the one squeue call the server shares. */
export interface QueueSummary {
  fetched_at: number;
  error: string | null;
  calls: number;
  running: number;
  pending: number;
  counts: Counts;
}

export interface JobsReply {
  total: number;
  offset: number;
  limit: number;
  notebooks: NotebookGroup[];
  queue: QueueSummary;
}

export interface GraphNode {
  run_id: string;
  name: string;
  job_id: string;
  is_array?: boolean;
  n_items?: number;
  counts?: Counts;
  missing: boolean;
}

export interface GraphEdge {
  source: string;
  target: string;
  items: number[];
}

export interface GraphReply {
  run_id: string;
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export type Stream = 'out' | 'err';

export interface LogReply {
  job_id: string;
  stream: Stream;
  text: string;
  size: number;
  bytes: number;
  truncated: boolean;
}

/** Why a job waits and when SLURM expects it to start (GET jobs/<id>/start). */
export interface StartReply {
  job_id: string;
  pending: boolean;
  reason: string;
  explanation: string;
  /** ISO local time, or null when SLURM has no estimate yet. */
  start: string | null;
  text: string;
}

export interface CancelReply {
  run_id: string;
  cancelled: string[];
}
