/**
 * The selected run: its dependency graph, its array tasks, the tail of its logs (with
 * follow), and cancelling it (after a confirmation).
 */

import { APIError, SlurmAPI } from './api';
import { Refresher } from './backoff';
import { h, stateClass } from './dom';
import { graphPicture } from './graphview';
import {
  ACTIVE_STATES,
  countsText,
  isActive,
  orderedCounts,
  overallState,
  slurmIdOf,
  taskRanges
} from './model';
import type { RunInfo, Stream } from './types';
import { WaitingInfo } from './waiting';

/** How much of a log the panel shows (the server's cap is 64 KiB). */
export const LOG_BYTES = 32 * 1024;

export interface DetailActions {
  api: SlurmAPI;
  /** Ask the user; resolves to true when they accept. */
  confirm(title: string, body: string, accept: string): Promise<boolean>;
  openNotebook(path: string): void;
  /** Select another run (a node of the graph). */
  select(runId: string): void;
  /** Something was cancelled: refresh the list now. */
  cancelled(): void;
  /** Whether the panel is on screen. */
  isVisible(): boolean;
}

export class RunDetail {
  readonly node: HTMLElement;

  constructor(private readonly actions: DetailActions) {
    this.title = h('div', { class: 'jp-SlurmDetail-title' });
    this.meta = h('div', { class: 'jp-SlurmDetail-meta' });
    this.cancelButton = h(
      'button',
      {
        class: 'jp-SlurmDetail-cancel jp-mod-styled jp-mod-warn',
        type: 'button'
      },
      'Cancel…'
    );
    this.openButton = h(
      'button',
      { class: 'jp-SlurmDetail-open jp-mod-styled', type: 'button' },
      'Open notebook'
    );
    this.message = h('div', {
      class: 'jp-SlurmDetail-message',
      role: 'status'
    });
    this.waiting = new WaitingInfo(actions.api);
    this.tasks = h('div', { class: 'jp-SlurmDetail-tasks' });
    this.graph = h('div', { class: 'jp-SlurmDetail-graph' });
    this.taskInput = h('input', {
      class: 'jp-SlurmDetail-task',
      type: 'number',
      min: '0',
      value: '0',
      'aria-label': 'Task'
    });
    this.taskCancel = h(
      'button',
      { class: 'jp-SlurmDetail-cancelTask jp-mod-styled', type: 'button' },
      'Cancel task…'
    );
    this.streamSelect = h(
      'select',
      { class: 'jp-SlurmDetail-stream', 'aria-label': 'Stream' },
      h('option', { value: 'out' }, 'stdout'),
      h('option', { value: 'err' }, 'stderr')
    );
    this.follow = h('input', {
      type: 'checkbox',
      class: 'jp-SlurmDetail-follow'
    });
    this.follow.checked = true;
    this.logLabel = h('span', { class: 'jp-SlurmDetail-logLabel' });
    this.log = h('pre', { class: 'jp-SlurmDetail-log' });
    this.taskLabel = h('label', {}, 'task ', this.taskInput);
    this.node = h(
      'section',
      { class: 'jp-SlurmDetail', 'aria-label': 'Selected job' },
      this.title,
      this.meta,
      h(
        'div',
        { class: 'jp-SlurmDetail-actions' },
        this.cancelButton,
        this.openButton
      ),
      this.message,
      this.waiting.node,
      this.tasks,
      h('div', { class: 'jp-SlurmDetail-heading' }, 'Dependencies'),
      this.graph,
      h(
        'div',
        { class: 'jp-SlurmDetail-logControls' },
        this.taskLabel,
        this.taskCancel,
        this.streamSelect,
        h('label', {}, this.follow, ' follow')
      ),
      this.logLabel,
      this.log
    );
    this.cancelButton.addEventListener('click', () => void this.cancelRun());
    this.taskCancel.addEventListener('click', () => void this.cancelTask());
    this.openButton.addEventListener('click', () => {
      if (this.run?.notebook_path) {
        this.actions.openNotebook(this.run.notebook_path);
      }
    });
    this.taskInput.addEventListener('change', () => this.logTargetChanged());
    this.streamSelect.addEventListener('change', () => this.logTargetChanged());
    this.follow.addEventListener('change', () => this.logs.visibilityChanged());
    this.logs = new Refresher(() => this.loadLog(), {
      isVisible: () => this.actions.isVisible() && this.follow.checked,
      isActive: () => this.run !== null && isActive(this.run.counts)
    });
    this.node.hidden = true;
  }

  /** The job whose log is shown: "123" or "123_4". */
  get logJobId(): string | null {
    const run = this.run;
    if (run === null) {
      return null;
    }
    if (!run.is_array) {
      return run.job_id;
    }
    const item = Math.min(
      Math.max(0, Number(this.taskInput.value) || 0),
      run.n_items - 1
    );
    return slurmIdOf(
      run.slices,
      Math.floor(item / Math.max(run.chunk_size, 1))
    );
  }

  /** Show a run (the same one again with fresh counts, another one, or none). */
  show(run: RunInfo | null): void {
    const previous = this.run;
    this.run = run;
    this.waiting.show(run);
    this.node.hidden = run === null;
    if (run === null) {
      this.logs.stop();
      return;
    }
    const other = previous === null || previous.run_id !== run.run_id;
    if (other) {
      this.message.textContent = '';
      this.log.textContent = '';
      this.logText = null;
      this.taskInput.value = String(firstActiveItem(run));
      this.taskInput.max = String(Math.max(0, run.n_items - 1));
    }
    const state = overallState(run.counts);
    this.title.replaceChildren(
      h('span', { class: `jp-SlurmBadge ${stateClass(state)}` }, state),
      ` ${run.name} · job ${run.slurm_ids.join(', ') || '?'}`
    );
    const submitted = new Date(run.submitted_at * 1000).toLocaleString();
    this.meta.textContent = [
      countsText(run.counts),
      run.cluster,
      `submitted ${submitted}`,
      run.dependency ? `after ${run.dependency}` : ''
    ]
      .filter(Boolean)
      .join(' · ');
    this.cancelButton.hidden = !(run.local && isActive(run.counts));
    this.cancelButton.title = run.is_array
      ? 'Cancel every task of this array'
      : 'Cancel this job';
    this.openButton.hidden = run.notebook_path === null;
    this.openButton.title = run.notebook;
    this.taskLabel.hidden = !run.is_array;
    this.renderTasks(run);
    this.updateTaskCancel();
    const key = `${run.run_id}|${orderedCounts(run.counts).join(',')}`;
    if (key !== this.graphKey) {
      this.graphKey = key;
      void this.loadGraph(run.run_id);
    }
    if (other) {
      this.logTargetChanged();
    }
    if (this.logs.isStopped && this.actions.isVisible()) {
      this.logs.start(); // a run selected: follow its log (its refresher keeps its pace)
    }
  }

  /** The panel was shown or hidden. */
  visibilityChanged(): void {
    if (this.run === null || !this.actions.isVisible()) {
      this.logs.stop();
    } else if (this.logs.isStopped) {
      this.logs.start();
    } else {
      this.logs.visibilityChanged();
    }
  }

  dispose(): void {
    this.logs.stop();
  }

  private logTargetChanged(): void {
    this.logText = null;
    this.updateTaskCancel();
    if (!this.logs.isStopped) {
      void this.logs.refresh();
    }
  }

  private async loadLog(): Promise<boolean> {
    const jobId = this.logJobId;
    if (jobId === null || this.run === null || !this.run.local) {
      this.logLabel.textContent =
        this.run?.local === false ? 'logs: not on this machine' : '';
      this.log.textContent = '';
      return false;
    }
    const stream = this.streamSelect.value as Stream;
    try {
      const reply = await this.actions.api.log(jobId, stream, LOG_BYTES);
      if (jobId !== this.logJobId || stream !== this.streamSelect.value) {
        return true; // the user chose another log meanwhile
      }
      const cut = reply.truncated
        ? ` (last ${reply.text.length} of ${reply.size} bytes)`
        : '';
      this.logLabel.textContent = `${reply.job_id}.${reply.stream}${cut}`;
      const changed = reply.text !== this.logText;
      if (changed) {
        this.logText = reply.text;
        this.log.textContent = reply.text || '(empty)';
        if (this.follow.checked) {
          this.log.scrollTop = this.log.scrollHeight;
        }
      }
      return changed;
    } catch (error) {
      this.logLabel.textContent = `${jobId}.${stream}: ${messageOf(error)}`;
      throw error;
    }
  }

  private async loadGraph(runId: string): Promise<void> {
    if (this.graphLoading) {
      this.graphAgain = true;
      return;
    }
    this.graphLoading = true;
    try {
      const reply = await this.actions.api.graph(runId);
      if (this.run?.run_id === runId) {
        this.graph.replaceChildren(
          graphPicture(reply, runId => this.actions.select(runId))
        );
      }
    } catch (error) {
      this.graph.textContent = messageOf(error);
    } finally {
      this.graphLoading = false;
    }
    if (this.graphAgain) {
      this.graphAgain = false;
      if (this.run !== null) {
        void this.loadGraph(this.run.run_id);
      }
    }
  }

  private renderTasks(run: RunInfo): void {
    if (!run.is_array) {
      this.tasks.replaceChildren();
      return;
    }
    const chips = taskRanges(run).map(range => {
      const chip = h(
        'button',
        {
          class: `jp-SlurmChip ${stateClass(range.state)}`,
          type: 'button',
          title: `tasks ${range.label}: ${range.state} (click for the log of task ${range.firstItem})`
        },
        `${range.label} ${range.state.toLowerCase()}`
      );
      chip.addEventListener('click', () => {
        this.taskInput.value = String(range.firstItem);
        this.logTargetChanged();
      });
      return chip;
    });
    const more = run.task_states_truncated ? h('span', {}, ' …') : null;
    this.tasks.replaceChildren(
      h('span', { class: 'jp-SlurmDetail-heading' }, 'Tasks'),
      ...chips
    );
    if (more) {
      this.tasks.append(more);
    }
  }

  private taskState(): string | null {
    const run = this.run;
    if (run === null || !run.is_array) {
      return null;
    }
    const item = Number(this.taskInput.value) || 0;
    const range = taskRanges(run).find(
      r => r.firstItem <= item && item <= r.lastItem
    );
    return range?.state ?? null;
  }

  private updateTaskCancel(): void {
    const state = this.taskState();
    this.taskCancel.hidden = !(
      this.run?.local &&
      this.run.is_array &&
      state !== null &&
      ACTIVE_STATES.includes(state)
    );
  }

  private async cancelRun(): Promise<void> {
    const run = this.run;
    if (run === null) {
      return;
    }
    const what = run.is_array
      ? `all ${run.n_items} tasks of array job ${run.slurm_ids.join(', ')} (${run.name})`
      : `job ${run.job_id} (${run.name})`;
    await this.cancel(
      { run_id: run.run_id },
      `Cancel ${what}? Now: ${countsText(run.counts)}. This cannot be undone.`
    );
  }

  private async cancelTask(): Promise<void> {
    const jobId = this.logJobId;
    if (jobId === null || this.run === null) {
      return;
    }
    await this.cancel(
      { job_id: jobId },
      `Cancel task ${jobId} of ${this.run.name}? The other tasks keep running.`
    );
  }

  private async cancel(
    target: { job_id: string } | { run_id: string },
    body: string
  ): Promise<void> {
    const accepted = await this.actions.confirm(
      'Cancel SLURM job',
      body,
      'Cancel job'
    );
    if (!accepted) {
      return;
    }
    try {
      const reply = await this.actions.api.cancel(target);
      this.message.textContent = `Cancelled ${reply.cancelled.join(', ')}.`;
    } catch (error) {
      this.message.textContent = `Not cancelled: ${messageOf(error)}`;
    }
    this.actions.cancelled();
  }

  private run: RunInfo | null = null;
  private graphKey = '';
  private graphLoading = false;
  private graphAgain = false;
  private logText: string | null = null;
  private readonly logs: Refresher;
  private readonly title: HTMLElement;
  private readonly meta: HTMLElement;
  private readonly cancelButton: HTMLButtonElement;
  private readonly openButton: HTMLButtonElement;
  private readonly message: HTMLElement;
  private readonly waiting: WaitingInfo;
  private readonly tasks: HTMLElement;
  private readonly graph: HTMLElement;
  private readonly taskInput: HTMLInputElement;
  private readonly taskLabel: HTMLLabelElement;
  private readonly taskCancel: HTMLButtonElement;
  private readonly streamSelect: HTMLSelectElement;
  private readonly follow: HTMLInputElement;
  private readonly logLabel: HTMLElement;
  private readonly log: HTMLElement;
}

function firstActiveItem(run: RunInfo): number {
  const running = taskRanges(run).find(range => range.state === 'RUNNING');
  return running?.firstItem ?? 0;
}

function messageOf(error: unknown): string {
  return error instanceof APIError ? error.message : String(error);
}
