/**
 * The status-bar item: how many of the user's SLURM tasks run and wait (the whole queue,
 * from the server's shared squeue read); a click opens the panel.
 */

import { Widget } from '@lumino/widgets';

import { JobsModel } from './jobs';
import { statusText } from './model';

export class SlurmStatus extends Widget {
  constructor(
    private readonly model: JobsModel,
    onClick: () => void
  ) {
    super();
    this.addClass('jp-SlurmStatus');
    this.node.title = 'SLURM jobs: click to open the panel';
    this.node.addEventListener('click', onClick);
    model.changed.connect(this.render, this);
    this.render();
  }

  render(): void {
    const queue = this.model.reply?.queue ?? null;
    this.node.textContent = statusText(queue);
    this.node.dataset.running = String(queue?.running ?? 0);
    this.node.dataset.pending = String(queue?.pending ?? 0);
  }

  override dispose(): void {
    this.model.changed.disconnect(this.render, this);
    super.dispose();
  }
}
