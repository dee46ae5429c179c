/**
 * The job list shared by the sidebar panel and the status bar: one refresher, one
 * request in flight, slower while nothing is on screen.
 */

import { ISignal, Signal } from '@lumino/signaling';

import { APIError, SlurmAPI } from './api';
import { Refresher } from './backoff';
import { anyActive, fingerprint } from './model';
import type { JobsReply } from './types';

/** How many runs one page shows, and how many more "show more" adds. */
export const PAGE = 50;

export class JobsModel {
  constructor(readonly api: SlurmAPI) {
    this.refresher = new Refresher(() => this.load(), {
      isVisible: () => this.isVisible(),
      isActive: () => this.reply !== null && anyActive(this.reply.notebooks)
    });
  }

  /** Whether the list is on screen; set by the panel. */
  isVisible: () => boolean = () => false;

  readonly refresher: Refresher;
  reply: JobsReply | null = null;
  error: string | null = null;
  /** When the last reply arrived (ms since the epoch). */
  updatedAt = 0;
  limit = PAGE;

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  start(): void {
    this.refresher.start();
  }

  stop(): void {
    this.refresher.stop();
  }

  refresh(): Promise<void> {
    return this.refresher.refresh();
  }

  showMore(): Promise<void> {
    this.limit += PAGE;
    return this.refresh();
  }

  private async load(): Promise<boolean> {
    let reply: JobsReply;
    try {
      reply = await this.api.jobs(this.limit);
    } catch (error) {
      this.error = error instanceof APIError ? error.message : String(error);
      this._changed.emit();
      throw error;
    }
    const before =
      this.reply === null ? null : fingerprint(this.reply.notebooks);
    this.reply = reply;
    this.error = null;
    this.updatedAt = Date.now();
    this._changed.emit();
    return before !== fingerprint(reply.notebooks);
  }

  private readonly _changed = new Signal<this, void>(this);
}
