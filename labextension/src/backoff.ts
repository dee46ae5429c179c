/**
 * When to ask the server again (pure), and a refresher that never has more than one
 * request in flight. Timers are injected so that tests drive time themselves.
 */

export interface BackoffOptions {
  /** Delay (ms) right after a change, while the panel is visible. */
  base: number;
  /** Longest delay while something is pending or running. */
  activeMax: number;
  /** Longest delay when nothing can change any more. */
  idleMax: number;
  /** Delay while the panel (or the browser tab) is hidden. */
  hidden: number;
  /** Longest delay after failures. */
  errorMax: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  base: 2000,
  activeMax: 5000,
  idleMax: 20000,
  hidden: 30000,
  errorMax: 60000
};

export interface RefreshState {
  visible: boolean;
  /** Something listed may still change (a task pending or running). */
  active: boolean;
  /** Consecutive refreshes that found nothing new. */
  quiet: number;
  /** Consecutive failed refreshes. */
  failures: number;
}

/** The delay before the next refresh. */
export function nextDelay(
  state: RefreshState,
  options: BackoffOptions = DEFAULT_BACKOFF
): number {
  let delay: number;
  if (state.failures > 0) {
    delay = Math.min(options.errorMax, options.base * 2 ** state.failures);
  } else {
    const cap = state.active ? options.activeMax : options.idleMax;
    delay = Math.min(cap, options.base * 2 ** Math.min(state.quiet, 30));
  }
  return state.visible ? delay : Math.max(delay, options.hidden);
}

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: handle => clearTimeout(handle as ReturnType<typeof setTimeout>)
};

export interface RefresherOptions {
  /** Whether the result is on screen (the panel shown and the browser tab visible). */
  isVisible: () => boolean;
  /** Whether the last result may still change. */
  isActive: () => boolean;
  backoff?: BackoffOptions;
  timers?: Timers;
}

/**
 * Calls `task` again and again, one call at a time, with the delay of `nextDelay`.
 * `task` resolves to whether anything changed, and rejects on failure.
 */
export class Refresher {
  constructor(
    private readonly task: () => Promise<boolean>,
    private readonly options: RefresherOptions
  ) {
    this.timers = options.timers ?? realTimers;
  }

  /** The current state (for tests and the panel's status line). */
  get state(): RefreshState {
    return {
      visible: this.options.isVisible(),
      active: this.options.isActive(),
      quiet: this.quiet,
      failures: this.failures
    };
  }

  get inFlight(): boolean {
    return this.running !== null;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** The delay chosen for the pending timer, if one is set. */
  get scheduledDelay(): number | null {
    return this.timer === null ? null : this.delay;
  }

  start(): void {
    if (this.stopped) {
      this.stopped = false;
      void this.refresh();
    }
  }

  stop(): void {
    this.stopped = true;
    this.clear();
  }

  /**
   * Refresh now (a user action, the panel shown again). While a request is in flight it
   * is not doubled: one more follows right after it.
   */
  refresh(): Promise<void> {
    if (this.stopped) {
      return Promise.resolve();
    }
    if (this.running !== null) {
      this.again = true;
      return this.running;
    }
    this.clear();
    this.running = this.run();
    return this.running;
  }

  /** Call when visibility changed: shown again refreshes at once, hidden slows down. */
  visibilityChanged(): void {
    if (this.stopped || this.running !== null) {
      return;
    }
    if (this.options.isVisible()) {
      this.quiet = 0;
      void this.refresh();
    } else {
      this.schedule();
    }
  }

  private async run(): Promise<void> {
    try {
      const changed = await this.task();
      this.failures = 0;
      this.quiet = changed ? 0 : this.quiet + 1;
    } catch {
      this.failures += 1;
    } finally {
      this.running = null;
    }
    if (this.stopped) {
      return;
    }
    if (this.again) {
      this.again = false;
      this.running = this.run();
      return this.running;
    }
    this.schedule();
  }

  private schedule(): void {
    this.clear();
    this.delay = nextDelay(this.state, this.options.backoff);
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      void this.refresh();
    }, this.delay);
  }

  private clear(): void {
    if (this.timer !== null) {
      this.timers.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private readonly timers: Timers;
  private running: Promise<void> | null = null;
  private timer: unknown = null;
  private delay = 0;
  private again = false;
  private quiet = 0;
  private failures = 0;
  private stopped = true;
}
