import assert from 'node:assert/strict';
import test from 'node:test';

import { DEFAULT_BACKOFF, nextDelay, Refresher, Timers } from '../src/backoff';

const visible = { visible: true, active: true, quiet: 0, failures: 0 };

test('the delay grows while nothing changes, up to a cap that depends on activity', () => {
  assert.equal(nextDelay(visible), 2000);
  assert.equal(nextDelay({ ...visible, quiet: 1 }), 4000);
  assert.equal(nextDelay({ ...visible, quiet: 5 }), DEFAULT_BACKOFF.activeMax);
  assert.equal(nextDelay({ ...visible, active: false, quiet: 2 }), 8000);
  assert.equal(
    nextDelay({ ...visible, active: false, quiet: 50 }),
    DEFAULT_BACKOFF.idleMax
  );
});

test('a hidden panel backs off; failures back off exponentially', () => {
  assert.equal(
    nextDelay({ ...visible, visible: false }),
    DEFAULT_BACKOFF.hidden
  );
  assert.equal(nextDelay({ ...visible, failures: 1 }), 4000);
  assert.equal(nextDelay({ ...visible, failures: 3 }), 16000);
  assert.equal(
    nextDelay({ ...visible, failures: 20 }),
    DEFAULT_BACKOFF.errorMax
  );
  assert.equal(
    nextDelay({ ...visible, visible: false, failures: 20 }),
    DEFAULT_BACKOFF.errorMax
  );
});

/** Timers that only fire when the test advances time. */
class FakeTimers implements Timers {
  now = 0;
  private next = 1;
  private pending = new Map<number, { at: number; callback: () => void }>();

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.set(id, { at: this.now + ms, callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  get delays(): number[] {
    return [...this.pending.values()].map(t => t.at - this.now);
  }

  async advance(ms: number): Promise<void> {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.pending.entries()]
        .filter(([, t]) => t.at <= until)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) {
        break;
      }
      this.pending.delete(due[0]);
      this.now = due[1].at;
      due[1].callback();
      await settle();
    }
    this.now = until;
  }
}

function settle(): Promise<void> {
  return new Promise(resolve => setImmediate(resolve));
}

/** A task whose calls the test resolves (or rejects) one by one. */
class ControlledTask {
  calls = 0;
  private waiting: {
    resolve: (changed: boolean) => void;
    reject: (e: Error) => void;
  }[] = [];

  readonly run = (): Promise<boolean> => {
    this.calls += 1;
    return new Promise<boolean>((resolve, reject) =>
      this.waiting.push({ resolve, reject })
    );
  };

  get inFlight(): number {
    return this.waiting.length;
  }

  async finish(changed: boolean): Promise<void> {
    this.waiting.shift()?.resolve(changed);
    await settle();
  }

  async fail(): Promise<void> {
    this.waiting.shift()?.reject(new Error('502'));
    await settle();
  }
}

function setup(state: { visible: boolean; active: boolean }) {
  const timers = new FakeTimers();
  const task = new ControlledTask();
  const refresher = new Refresher(task.run, {
    isVisible: () => state.visible,
    isActive: () => state.active,
    timers
  });
  return { timers, task, refresher };
}

test('never more than one request in flight; refreshes asked meanwhile become one', async () => {
  const { timers, task, refresher } = setup({ visible: true, active: true });
  refresher.start();
  assert.equal(task.calls, 1);
  void refresher.refresh();
  void refresher.refresh();
  refresher.visibilityChanged();
  await timers.advance(60000);
  assert.equal(task.inFlight, 1);
  assert.equal(task.calls, 1);
  await task.finish(true);
  assert.equal(task.calls, 2); // one follow-up for all the refreshes asked meanwhile
  assert.equal(task.inFlight, 1);
  await task.finish(true);
  assert.equal(task.calls, 2);
  assert.deepEqual(timers.delays, [2000]);
  refresher.stop();
});

test('quiet refreshes back off, a change resets, hiding slows, showing refreshes now', async () => {
  const state = { visible: true, active: true };
  const { timers, task, refresher } = setup(state);
  refresher.start();
  await task.finish(false);
  assert.deepEqual(timers.delays, [4000]);
  await timers.advance(4000);
  await task.finish(false);
  assert.deepEqual(timers.delays, [5000]); // the active cap
  await timers.advance(5000);
  await task.finish(true);
  assert.deepEqual(timers.delays, [2000]);
  state.visible = false;
  refresher.visibilityChanged();
  assert.deepEqual(timers.delays, [DEFAULT_BACKOFF.hidden]);
  assert.equal(task.calls, 3);
  state.visible = true;
  refresher.visibilityChanged();
  assert.equal(task.calls, 4); // at once, not after the hidden delay
  assert.deepEqual(timers.delays, []);
  await task.finish(false);
  refresher.stop();
  assert.deepEqual(timers.delays, []);
  await timers.advance(600000);
  assert.equal(task.calls, 4);
});

test('failures back off and the first success resets the delay', async () => {
  const { timers, task, refresher } = setup({ visible: true, active: false });
  refresher.start();
  await task.fail();
  assert.deepEqual(timers.delays, [4000]);
  await timers.advance(4000);
  await task.fail();
  assert.deepEqual(timers.delays, [8000]);
  await timers.advance(8000);
  await task.finish(true);
  assert.equal(refresher.state.failures, 0);
  assert.deepEqual(timers.delays, [2000]);
  refresher.stop();
});

test('stopping during a request schedules nothing afterwards', async () => {
  const { timers, task, refresher } = setup({ visible: true, active: true });
  refresher.start();
  refresher.stop();
  await task.finish(true);
  assert.deepEqual(timers.delays, []);
  assert.equal(refresher.inFlight, false);
  await refresher.refresh(); // stopped: nothing happens
  assert.equal(task.calls, 1);
});
