/**
 * The left-sidebar panel: runs grouped by the notebook that submitted them, each with its
 * state, live counts and a progress bar; the selected run's details below.
 */

import { listIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { DetailActions, RunDetail } from './detail';
import { h, stateClass } from './dom';
import { JobsModel } from './jobs';
import {
  ago,
  countsText,
  findRun,
  notebookLabel,
  overallState,
  progress
} from './model';
import type { NotebookGroup, RunInfo } from './types';

/**
 * The id of the sidebar panel; the layout restorer and UI tests find it by this id.
 */
export const PANEL_ID = 'slurm-magics-panel';

export interface PanelOptions {
  model: JobsModel;
  confirm: DetailActions['confirm'];
  openNotebook: DetailActions['openNotebook'];
}

export class SlurmPanel extends Widget {
  constructor(private readonly options: PanelOptions) {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-SlurmPanel');
    this.title.label = 'SLURM';
    this.title.caption = 'SLURM jobs';
    this.title.icon = listIcon;
    const model = options.model;
    model.isVisible = () =>
      this.isVisible && document.visibilityState === 'visible';

    this.status = h('span', { class: 'jp-SlurmPanel-status', role: 'status' });
    const refresh = h(
      'button',
      {
        class: 'jp-SlurmPanel-refresh jp-mod-styled',
        type: 'button',
        title: 'Refresh now'
      },
      '↻'
    );
    refresh.addEventListener('click', () => void model.refresh());
    this.error = h('div', { class: 'jp-SlurmPanel-error', role: 'alert' });
    this.list = h('div', { class: 'jp-SlurmPanel-list' });
    this.more = h('button', {
      class: 'jp-SlurmPanel-more jp-mod-styled',
      type: 'button'
    });
    this.more.addEventListener('click', () => void model.showMore());
    this.detail = new RunDetail({
      api: model.api,
      confirm: options.confirm,
      openNotebook: options.openNotebook,
      select: runId => this.select(runId),
      cancelled: () => void model.refresh(),
      isVisible: () => model.isVisible()
    });
    this.node.append(
      h(
        'div',
        { class: 'jp-SlurmPanel-header' },
        h('h2', { class: 'jp-SlurmPanel-title' }, 'SLURM'),
        this.status,
        refresh
      ),
      this.error,
      this.list,
      this.more,
      this.detail.node
    );
    this.onVisibility = () => this.visibilityChanged();
    document.addEventListener('visibilitychange', this.onVisibility);
    model.changed.connect(this.render, this);
    this.render();
  }

  /** The selected run's id (its details are shown). */
  get selected(): string | null {
    return this.selectedRun;
  }

  select(runId: string | null): void {
    this.selectedRun = runId;
    this.render();
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    document.removeEventListener('visibilitychange', this.onVisibility);
    this.options.model.changed.disconnect(this.render, this);
    this.detail.dispose();
    super.dispose();
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.visibilityChanged();
  }

  protected override onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.visibilityChanged();
  }

  private visibilityChanged(): void {
    this.options.model.refresher.visibilityChanged();
    this.detail.visibilityChanged();
  }

  private render(): void {
    const model = this.options.model;
    const reply = model.reply;
    this.error.textContent =
      model.error ?? (reply?.queue.error ? `squeue: ${reply.queue.error}` : '');
    this.error.hidden = this.error.textContent === '';
    if (reply === null) {
      this.status.textContent = model.error === null ? 'loading…' : '';
      this.more.hidden = true;
      this.detail.show(null);
      return;
    }
    const shown = reply.notebooks.reduce(
      (sum, group) => sum + group.runs.length,
      0
    );
    const updated = model.updatedAt
      ? ` · updated ${new Date(model.updatedAt).toLocaleTimeString()}`
      : '';
    this.status.textContent = `${reply.queue.running} running · ${reply.queue.pending} pending${updated}`;
    if (shown === 0) {
      this.list.replaceChildren(
        h(
          'p',
          { class: 'jp-SlurmPanel-placeholder' },
          'No jobs yet: jobs submitted with slurm_magics from any notebook of this server appear here.'
        )
      );
    } else {
      const now = Date.now() / 1000;
      this.list.replaceChildren(
        ...reply.notebooks.map(group => this.renderGroup(group, now))
      );
    }
    this.more.hidden = shown >= reply.total;
    this.more.textContent = `Show more (${shown} of ${reply.total})`;
    if (
      this.selectedRun !== null &&
      findRun(reply.notebooks, this.selectedRun) === null
    ) {
      this.selectedRun = null; // scrolled out of the page, or cleaned up
    }
    this.detail.show(findRun(reply.notebooks, this.selectedRun));
  }

  private renderGroup(group: NotebookGroup, now: number): HTMLElement {
    const collapsed = this.collapsed.has(group.notebook);
    const toggle = h(
      'button',
      {
        class: 'jp-SlurmPanel-toggle',
        type: 'button',
        'aria-expanded': String(!collapsed),
        title: collapsed ? 'Show the runs' : 'Hide the runs'
      },
      collapsed ? '▸' : '▾'
    );
    toggle.addEventListener('click', () => {
      if (this.collapsed.has(group.notebook)) {
        this.collapsed.delete(group.notebook);
      } else {
        this.collapsed.add(group.notebook);
      }
      this.render();
    });
    const path = group.notebook_path;
    let name: HTMLElement;
    if (path !== null) {
      name = h(
        'a',
        {
          class: 'jp-SlurmPanel-notebookLink',
          href: '#',
          title: `Open ${path}`
        },
        notebookLabel(group.notebook)
      );
      name.addEventListener('click', event => {
        event.preventDefault();
        this.options.openNotebook(path);
      });
    } else {
      name = h(
        'span',
        { title: group.notebook },
        notebookLabel(group.notebook)
      );
    }
    const header = h(
      'div',
      { class: 'jp-SlurmPanel-notebook', title: group.notebook },
      toggle,
      name,
      h('span', { class: 'jp-SlurmPanel-counts' }, countsText(group.counts))
    );
    const runs = collapsed
      ? null
      : h(
          'ul',
          { class: 'jp-SlurmPanel-runs' },
          ...group.runs.map(run => this.renderRun(run, now))
        );
    return h(
      'section',
      { class: 'jp-SlurmPanel-group', 'data-notebook': group.notebook },
      header,
      runs
    );
  }

  private renderRun(run: RunInfo, now: number): HTMLElement {
    const state = overallState(run.counts);
    const bar = progress(run.counts);
    const selected = run.run_id === this.selectedRun;
    const jobLabel = run.is_array
      ? `array ${run.slurm_ids.join(', ')}`
      : `job ${run.job_id}`;
    const item = h(
      'li',
      {
        class: `jp-SlurmPanel-run${selected ? ' jp-mod-selected' : ''}`,
        'data-run-id': run.run_id,
        'data-job-id': run.job_id,
        'data-state': state,
        tabindex: '0',
        'aria-selected': String(selected)
      },
      h(
        'div',
        { class: 'jp-SlurmPanel-runLine' },
        h('span', { class: `jp-SlurmBadge ${stateClass(state)}` }, state),
        h('span', { class: 'jp-SlurmPanel-name' }, run.name),
        h('span', { class: 'jp-SlurmPanel-jobId' }, jobLabel)
      ),
      h(
        'div',
        {
          class: 'jp-SlurmProgress',
          role: 'progressbar',
          'aria-valuemin': '0',
          'aria-valuemax': String(bar.total),
          'aria-valuenow': String(bar.finished)
        },
        ...bar.segments.map(segment =>
          h('span', {
            class: `jp-SlurmProgress-segment ${stateClass(segment.state)}`,
            style: `width: ${(segment.fraction * 100).toFixed(2)}%`,
            title: `${segment.count} ${segment.state.toLowerCase()}`
          })
        )
      ),
      h(
        'div',
        { class: 'jp-SlurmPanel-runMeta' },
        `${run.is_array ? `${bar.finished}/${bar.total} · ` : ''}${countsText(run.counts)} · ${ago(now - run.submitted_at)}`
      )
    );
    const choose = () => this.select(selected ? null : run.run_id);
    item.addEventListener('click', choose);
    item.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        choose();
      }
    });
    return item;
  }

  private selectedRun: string | null = null;
  private readonly collapsed = new Set<string>();
  private readonly status: HTMLElement;
  private readonly error: HTMLElement;
  private readonly list: HTMLElement;
  private readonly more: HTMLButtonElement;
  private readonly detail: RunDetail;
  private readonly onVisibility: () => void;
}
