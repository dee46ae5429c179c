// Drive JupyterLab's SLURM sidebar in Debian's headless Chromium (playwright-core: no browser
// download) and report, as one JSON line on stdout, what a user would have seen.
//
// Input: one JSON argument {url, token, screenshot, chromium, timeout_ms,
//   jobs: {first, second, held}: {job_id, run_id}, notebook} (see tests/test_lab_browser.py).
// Steps: open the SLURM panel; see the three jobs pending (`first` is held); say so on stdout,
// upon which the test releases `first`; watch `first` and `second` (second depends on first)
// until both are COMPLETED; select `second` for its graph and log; cancel `held` through the
// confirmation dialog and watch it become CANCELLED; open the submitting notebook from the
// panel; take a screenshot; hide the panel and count its refreshes, then show it again.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const input = JSON.parse(process.argv[2]);
const timeout = input.timeout_ms ?? 240000;
const seen = { states: {}, console_errors: [], page_errors: [] };

function log(message) {
  process.stderr.write(`[lab_sidebar] ${message}\n`);
}

/** Which API call a URL is: 'jobs', 'log', 'graph', 'cancel', 'queue' (null: another). */
function apiKind(url) {
  const match = /\/slurm-magics\/api\/([^?]*)/.exec(url);
  if (!match) {
    return null;
  }
  const path = match[1];
  return path.endsWith('/log')
    ? 'log'
    : path.endsWith('/graph')
      ? 'graph'
      : path.endsWith('/start')
        ? 'start'
        : path;
}

/** Count the panel's requests, and the most of one kind in flight at once. */
function countRequests(page) {
  const inFlight = {};
  seen.requests = [];
  seen.max_in_flight = {};
  const done = request => {
    const kind = apiKind(request.url());
    if (kind) {
      inFlight[kind] -= 1;
    }
  };
  page.on('request', request => {
    const kind = apiKind(request.url());
    if (kind) {
      inFlight[kind] = (inFlight[kind] ?? 0) + 1;
      seen.max_in_flight[kind] = Math.max(
        seen.max_in_flight[kind] ?? 0,
        inFlight[kind]
      );
      seen.requests.push([kind, Date.now()]);
    }
  });
  page.on('requestfinished', done);
  page.on('requestfailed', done);
}

function requestsSince(kind, start) {
  return seen.requests.filter(([k, at]) => k === kind && at >= start).length;
}

const row = jobId =>
  `#slurm-magics-panel li.jp-SlurmPanel-run[data-job-id="${jobId}"]`;

/** Poll the panel until `done(states)`, recording every distinct state of each job seen. */
async function watch(page, jobIds, done, what) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const states = {};
    for (const jobId of jobIds) {
      const element = await page.$(row(jobId));
      const state = element ? await element.getAttribute('data-state') : null;
      states[jobId] = state;
      const history = (seen.states[jobId] = seen.states[jobId] ?? []);
      if (state && history[history.length - 1] !== state) {
        history.push(state);
        log(`job ${jobId}: ${state}`);
      }
    }
    if (done(states)) {
      return states;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}: ${JSON.stringify(states)}`
      );
    }
    await page.waitForTimeout(200);
  }
}

const userDataDir = mkdtempSync(join(tmpdir(), 'slurm-magics-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: input.chromium ?? '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 900 },
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync'
  ]
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(timeout);
  page.on('console', message => {
    if (message.type() === 'error') {
      seen.console_errors.push(message.text());
    }
  });
  page.on('pageerror', error => seen.page_errors.push(String(error)));

  countRequests(page);
  await page.goto(`${input.url}lab?token=${input.token}`);
  const tab = page.locator(
    '.jp-SideBar.jp-mod-left li.lm-TabBar-tab[data-id="slurm-magics-panel"]'
  );
  await tab.waitFor();
  seen.sidebar_tab = (await tab.getAttribute('title')) ?? '';
  if ((await tab.getAttribute('aria-selected')) !== 'true') {
    await tab.click();
  }
  await page.locator('#slurm-magics-panel').waitFor({ state: 'visible' });
  seen.panel_title = await page
    .locator('#slurm-magics-panel .jp-SlurmPanel-title')
    .innerText();
  log('the SLURM panel is open');

  const { first, second, held } = input.jobs;
  await watch(
    page,
    [first.job_id, second.job_id, held.job_id],
    s => [first, second, held].every(job => s[job.job_id] === 'PENDING'),
    'the three jobs listed, pending'
  );
  // Tell the test: it releases `first` now, so the panel sees it start and end.
  process.stdout.write(`${JSON.stringify({ event: 'listed' })}\n`);
  await watch(
    page,
    [first.job_id, second.job_id, held.job_id],
    s =>
      s[first.job_id] === 'COMPLETED' &&
      s[second.job_id] === 'COMPLETED' &&
      s[held.job_id],
    'the first two jobs to complete'
  );
  seen.rows = {};
  for (const job of [first, second, held]) {
    seen.rows[job.job_id] = await page.locator(row(job.job_id)).innerText();
  }
  const group = page
    .locator('#slurm-magics-panel .jp-SlurmPanel-notebook')
    .first();
  seen.notebook_group = await group.innerText();

  // A map past the QOS's job limit: what waits on the client for room, said at once.
  const waves = input.jobs.waves;
  await page.locator(row(waves.job_id)).click();
  const clientWait = page.locator(
    '#slurm-magics-panel .jp-SlurmDetail-clientWait'
  );
  await clientWait.waitFor({ state: 'visible' });
  seen.client_wait = await clientWait.innerText();
  log('the map waiting on the client says so');

  // The waiting job: select it, ask why it waits and until when (one click, one request),
  // then cancel it through the dialog and watch it become CANCELLED.
  await page.locator(row(held.job_id)).click();
  const why = page.locator('#slurm-magics-panel .jp-SlurmDetail-why');
  await why.waitFor({ state: 'visible' });
  await why.click();
  await page.waitForFunction(() => {
    const text = document.querySelector(
      '#slurm-magics-panel .jp-SlurmDetail-waiting'
    )?.textContent;
    return text && text.includes(' · ');
  });
  seen.waiting = await page
    .locator('#slurm-magics-panel .jp-SlurmDetail-waiting')
    .innerText();
  const cancel = page.locator('#slurm-magics-panel .jp-SlurmDetail-cancel');
  await cancel.waitFor({ state: 'visible' });
  await cancel.click();
  const dialog = page.locator('.jp-Dialog');
  await dialog.waitFor();
  seen.dialog = await dialog.innerText();
  await dialog.locator('button.jp-mod-warn').click();
  await dialog.waitFor({ state: 'detached' });
  await watch(
    page,
    [held.job_id],
    s => s[held.job_id] === 'CANCELLED',
    'the held job cancelled'
  );
  seen.cancel_message = await page
    .locator('#slurm-magics-panel .jp-SlurmDetail-message')
    .innerText();
  log('the held job is cancelled');

  // The dependent job: its graph (first -> second) and its log.
  await page.locator(row(second.job_id)).click();
  const graph = page.locator('#slurm-magics-panel svg.jp-SlurmGraph');
  await page.waitForFunction(
    ids =>
      ids.every(id =>
        document.querySelector(
          `#slurm-magics-panel .jp-SlurmGraph-node[data-run-id="${id}"]`
        )
      ),
    [first.run_id, second.run_id]
  );
  seen.graph = {
    nodes: await graph.locator('.jp-SlurmGraph-node').count(),
    edges: await graph
      .locator('.jp-SlurmGraph-edge')
      .evaluateAll(paths =>
        paths.map(p => [p.dataset.source, p.dataset.target])
      ),
    text: await graph.evaluate(node => node.textContent)
  };
  const logView = page.locator('#slurm-magics-panel .jp-SlurmDetail-log');
  await page.waitForFunction(() =>
    /hello from/.test(
      document.querySelector('#slurm-magics-panel .jp-SlurmDetail-log')
        ?.textContent ?? ''
    )
  );
  seen.log = await logView.innerText();
  seen.log_label = await page
    .locator('#slurm-magics-panel .jp-SlurmDetail-logLabel')
    .innerText();

  // The status bar, and the link that opens the submitting notebook.
  seen.status_bar = await page.locator('.jp-SlurmStatus').innerText();
  await page
    .locator('#slurm-magics-panel .jp-SlurmPanel-notebookLink')
    .first()
    .click();
  const notebookTab = page.locator(
    `#jp-main-dock-panel .lm-TabBar-tab[data-type="document-title"] .lm-TabBar-tabLabel`,
    { hasText: input.notebook }
  );
  await notebookTab.first().waitFor();
  seen.notebook_tab = await notebookTab.first().innerText();
  // the notebook rendered before the picture
  await page
    .locator('#jp-main-dock-panel .jp-RenderedMarkdown p', {
      hasText: 'SLURM sidebar'
    })
    .waitFor();
  await page.screenshot({ path: input.screenshot });
  seen.screenshot = input.screenshot;
  log(`screenshot: ${input.screenshot}`);

  // Hidden, the panel backs off (the status bar still needs a number now and then);
  // shown again, it refreshes at once and keeps refreshing.
  await tab.click();
  await page.locator('#slurm-magics-panel').waitFor({ state: 'hidden' });
  let start = Date.now();
  await page.waitForTimeout(10000);
  seen.jobs_requests_hidden_10s = requestsSince('jobs', start);
  start = Date.now();
  await tab.click();
  await page.locator('#slurm-magics-panel').waitFor({ state: 'visible' });
  await page.waitForTimeout(6000);
  seen.jobs_requests_shown_6s = requestsSince('jobs', start);
  delete seen.requests;
  process.stdout.write(`${JSON.stringify(seen)}\n`);
} catch (error) {
  seen.error = String(error?.stack ?? error);
  delete seen.requests;
  try {
    const page = context.pages()[0];
    if (page && input.screenshot) {
      await page.screenshot({
        path: input.screenshot.replace(/\.png$/, '-failed.png')
      });
    }
  } catch {
    // the failure itself is what matters
  }
  process.stdout.write(`${JSON.stringify(seen)}\n`);
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
