/**
 * `cmd-traffic-controller status [--cluster C] [--group G] [--intent I] [--json] [--watch]`: the delivery status
 * of every intent at every cluster target, as a table (or JSON lines), read over gRPC from a running controller.
 */

import { toJsonString } from "@bufbuild/protobuf";
import { DeliveryState, IntentService, type IntentStatus, IntentStatusSchema } from "@nsm-ts/api/intents";
import type { RunContext } from "@nsm-ts/base/config";
import { createClient, dial } from "@nsm-ts/base/grpc";
import { programIdentity } from "@nsm-ts/base/program";
import type { StatusConfig } from "./config.js";

/** Usage line of the subcommand. */
export const STATUS_USAGE = "usage: cmd-traffic-controller status [--cluster C] [--group G] [--intent I] [--json] [--watch]\n";

/** Parsed arguments of `status`. */
export interface StatusArgs {
  cluster: string;
  group: string;
  intent: string;
  json: boolean;
  watch: boolean;
}

/** Parses the arguments after `status`; throws naming the bad one. */
export function parseStatusArgs(argv: readonly string[]): StatusArgs {
  const out: StatusArgs = { cluster: "", group: "", intent: "", json: false, watch: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--cluster") out.cluster = value();
    else if (a === "--group") out.group = value();
    else if (a === "--intent") out.intent = value();
    else if (a === "--json") out.json = true;
    else if (a === "--watch") out.watch = true;
    else throw new Error(`unknown argument ${JSON.stringify(a)}`);
  }
  return out;
}

const STATE: Record<number, string> = {
  [DeliveryState.PENDING]: "pending",
  [DeliveryState.APPLIED]: "applied",
  [DeliveryState.FAILED]: "failed",
};

/** One table row. */
export function statusRow(s: IntentStatus): string {
  const detail = s.state === DeliveryState.FAILED ? `attempts ${s.attempts}: ${s.lastError}` : "";
  return [`${s.trafficGroup}/${s.intent}`, s.cluster, s.target, STATE[s.state] ?? "unknown", s.intentRevision, s.sequence, detail].join(
    "\t",
  );
}

/** Runs the subcommand, writing to `out`. */
export async function runStatus(args: StatusArgs, cfg: StatusConfig, ctx: RunContext, out: NodeJS.WritableStream): Promise<void> {
  const id = await programIdentity("cmd-traffic-controller status", cfg, ctx.log);
  const channel = dial(cfg.url, id.dialOptions);
  try {
    const client = createClient(IntentService, channel);
    const req = { cluster: args.cluster, trafficGroup: args.group, intent: args.intent };
    const print = (s: IntentStatus) => out.write(args.json ? `${toJsonString(IntentStatusSchema, s)}\n` : `${statusRow(s)}\n`);
    if (!args.json) out.write("INTENT\tCLUSTER\tTARGET\tSTATE\tREVISION\tSEQUENCE\tDETAIL\n");
    if (!args.watch) {
      for (const s of (await client.listIntentStatus(req, { signal: ctx.signal })).items) print(s);
      return;
    }
    for await (const ev of client.watchIntentStatus(req, { signal: ctx.signal })) if (ev.status && !ev.deleted) print(ev.status);
  } catch (err) {
    if (!ctx.signal.aborted) throw err;
  } finally {
    channel.close();
  }
}
