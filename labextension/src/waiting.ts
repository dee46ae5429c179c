/**
 * Why the selected job waits, and until when: SLURM's reason in words and its expected
 * start, asked on a click only (squeue --start is costly for the controller).
 */

import { APIError, SlurmAPI } from './api';
import { h } from './dom';
import { clientWaitText } from './model';
import type { RunInfo } from './types';

export class WaitingInfo {
  readonly node: HTMLElement;

  constructor(private readonly api: SlurmAPI) {
    this.button = h(
      'button',
      {
        class: 'jp-SlurmDetail-why jp-mod-styled',
        type: 'button',
        title:
          'Ask SLURM why it waits and when it should start (squeue --start)'
      },
      'Why waiting? When?'
    );
    this.text = h('div', { class: 'jp-SlurmDetail-waiting', role: 'status' });
    this.client = h('div', { class: 'jp-SlurmDetail-clientWait' });
    this.node = h(
      'div',
      { class: 'jp-SlurmDetail-waitingBox' },
      this.client,
      this.button,
      this.text
    );
    this.button.addEventListener('click', () => void this.ask());
    this.node.hidden = true;
  }

  /** The selected run changed or has fresh counts. */
  show(run: RunInfo | null): void {
    const pending = run !== null && (run.counts['PENDING'] ?? 0) > 0;
    if (run?.run_id !== this.run?.run_id) {
      this.text.textContent = '';
    }
    this.run = run;
    // tasks still on the client: said at once (SLURM knows nothing of them)
    this.client.textContent = run === null ? '' : clientWaitText(run);
    this.client.hidden = this.client.textContent === '';
    this.button.hidden = !(run?.local && run.slurm_ids.length > 0);
    this.node.hidden = !(pending && (run?.local || !this.client.hidden));
  }

  private async ask(): Promise<void> {
    const run = this.run;
    if (run === null) {
      return;
    }
    const jobId = run.is_array ? run.slurm_ids[0] : run.job_id;
    this.text.textContent = 'asking SLURM…';
    try {
      const reply = await this.api.start(jobId);
      if (this.run?.run_id === run.run_id) {
        this.text.textContent = reply.text;
      }
    } catch (error) {
      this.text.textContent =
        error instanceof APIError ? error.message : String(error);
    }
  }

  private run: RunInfo | null = null;
  private readonly button: HTMLButtonElement;
  private readonly text: HTMLElement;
  private readonly client: HTMLElement;
}
