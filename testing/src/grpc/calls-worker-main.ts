/** The worker of `callsFromWorker` (calls-worker.ts). */
import { setTimeout as sleep } from "node:timers/promises";
import { parentPort, workerData } from "node:worker_threads";
import { NetworkService } from "@nsm-ts/api/networkservice";
import { createClient, dial } from "@nsm-ts/base/grpc";
import { isStatusError } from "@nsm-ts/base/status";
import type { WorkerCallsOptions, WorkerCallsResult } from "./calls-worker.js";

const opts = workerData as WorkerCallsOptions;
// No bound on calls in flight, as a foreign client (grpc-go, grpc-js alone) has none: every call reaches the server
// at once, and their deadlines all fall within the burst's length.
const channel = dial(opts.url, { maxUnaryCalls: 0 });
const ns = createClient(NetworkService, channel);
const out: WorkerCallsResult = {};
const one = async (i: number): Promise<void> => {
  let key = "0: OK";
  try {
    await ns.request({ connection: { id: `call-${i}` } }, { timeoutMs: opts.timeoutMs });
  } catch (err) {
    key = isStatusError(err) ? `${err.code}: ${err.message.replace(/ after .*/, "")}` : String(err);
  }
  out[key] = (out[key] ?? 0) + 1;
};
const calls: Promise<void>[] = [];
for (let i = 0; i < opts.count; i++) {
  if (i > 0 && i % opts.batch === 0) await sleep(opts.gapMs);
  calls.push(one(i));
}
await Promise.all(calls);
channel.close();
parentPort?.postMessage(out);
