/**
 * Requests to the server extension, through Jupyter's own connection settings (base URL,
 * token, XSRF cookie), so the API is reached exactly as JupyterLab's own.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type {
  CancelReply,
  GraphReply,
  JobsReply,
  LogReply,
  StartReply,
  Stream
} from './types';

const API = 'slurm-magics/api';

/** An error reply of the API, with the server's message (what to show the user). */
export class APIError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
    this.name = 'APIError';
  }
}

export class SlurmAPI {
  constructor(
    private readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  jobs(limit: number): Promise<JobsReply> {
    return this.request<JobsReply>(`jobs?limit=${limit}`);
  }

  graph(runId: string): Promise<GraphReply> {
    return this.request<GraphReply>(`runs/${encodeURIComponent(runId)}/graph`);
  }

  log(jobId: string, stream: Stream, bytes: number): Promise<LogReply> {
    return this.request<LogReply>(
      `jobs/${encodeURIComponent(jobId)}/log?stream=${stream}&bytes=${bytes}`
    );
  }

  /** Why a job waits and its expected start: one squeue --start on the server. */
  start(jobId: string): Promise<StartReply> {
    return this.request<StartReply>(`jobs/${encodeURIComponent(jobId)}/start`);
  }

  cancel(
    target: { job_id: string } | { run_id: string }
  ): Promise<CancelReply> {
    return this.request<CancelReply>('cancel', {
      method: 'POST',
      body: JSON.stringify(target)
    });
  }

  private async request<T>(path: string, init: RequestInit = {}): Promise<T> {
    const url = URLExt.join(this.settings.baseUrl, API, path);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (error) {
      throw new APIError(
        0,
        `the Jupyter server cannot be reached: ${String(error)}`
      );
    }
    const text = await response.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text;
    }
    if (!response.ok) {
      const message =
        typeof body === 'object' && body !== null && 'message' in body
          ? String((body as { message: unknown }).message)
          : `${response.status} ${response.statusText}`;
      throw new APIError(response.status, message);
    }
    return body as T;
  }
}
