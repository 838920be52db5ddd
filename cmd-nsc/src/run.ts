/**
 * Placeholder wiring: logs the configuration and waits for the abort signal. The program's wiring replaces
 * this file (build the chains, listen, serve until `ctx.signal` aborts, then drain).
 */
import { once } from "node:events";
import type { RunContext } from "@nsm-ts/sdk/tools/config";
import type { Config } from "./config.js";

/** Runs cmd-nsc until `ctx.signal` aborts. */
export async function run(cfg: Config, ctx: RunContext): Promise<void> {
  ctx.log.info({ config: cfg }, "cmd-nsc configured; serving not wired yet, waiting for SIGTERM");
  if (!ctx.signal.aborted) await once(ctx.signal, "abort");
}
