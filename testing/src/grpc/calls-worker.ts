/**
 * Many calls from a worker thread: the calls run on their own event loop, as a separate client process's would, so
 * a server's timers and the client's deadline timers do not share one (lagging) loop. Used to show what a burst of
 * expiring calls does to the caller's HTTP/2 session.
 */
import { Worker } from "node:worker_threads";

/** What `callsFromWorker` runs. */
export interface WorkerCallsOptions {
  /** Server URL (`tcp://host:port`); the calls are NetworkService Requests on one channel. */
  url: string;
  /** Number of calls. */
  count: number;
  /** Calls started together; the next batch starts `gapMs` later (not waiting for the previous one). */
  batch: number;
  gapMs: number;
  /** Deadline of every call, from its start. */
  timeoutMs: number;
}

/** Outcome of each call, counted by `"<code>: <message>"` (message cut before grpc-js's timing details). */
export type WorkerCallsResult = Record<string, number>;

/** Runs the calls in a worker thread and resolves with their outcomes once all have ended. */
export function callsFromWorker(opts: WorkerCallsOptions): Promise<WorkerCallsResult> {
  const worker = new Worker(new URL("./calls-worker-main.js", import.meta.url), { workerData: opts });
  return new Promise<WorkerCallsResult>((resolve, reject) => {
    worker.once("message", (m: WorkerCallsResult) => resolve(m));
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`calls worker exited with ${code} before answering`)));
  }).finally(() => worker.terminate());
}
