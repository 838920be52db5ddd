/**
 * The prefix client of a vL3 endpoint: holds one `ipam.IPAM/ManagePrefixes` stream to the prefix server and
 * asks it (ALLOCATE) for a prefix; the prefix is the endpoint's as long as the stream is open, and returns to the
 * pool when it ends (docs/wire-compatibility.md#vl3-ipam). When the stream breaks (a prefix-server restart) it
 * reconnects and asks for the same prefix again, as upstream's vL3 endpoint does; a server that hands out another
 * one (the old one is taken meanwhile) resets the IPAM, and the vL3 elements move their clients to the new prefix
 * on their next refresh. Background work is bound to `signal` and to `close()`.
 */
import { IPAM, type PrefixResponse, Type } from "@nsm-ts/api/ipam";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { type Channel, createClient } from "@nsm-ts/base/grpc";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { Code, StatusError } from "@nsm-ts/base/status";
import type { Vl3Ipam } from "./ipam.js";

/** Options of `startPrefixClient`. */
export interface PrefixClientOptions {
  /** The prefix to ask for first (e.g. the one held before a restart); default any. */
  prefix?: string;
  /** Prefixes the server must not hand out to us (`exclude_prefixes`); default none. */
  excludePrefixes?: readonly string[];
  /** Pause before reconnecting after the stream broke or failed; default 1 000 ms. */
  retryIntervalMs?: number;
  /** Clock of the pauses; default the real clock. */
  clock?: Clock;
  /** Ends the stream (and gives the prefix back) when aborted. */
  signal?: AbortSignal;
  /** Logger; default silent. */
  log?: Logger;
  /** What the prefix server is, for messages (e.g. "NSM_PREFIX_SERVER_URL=tcp://…"); default "the prefix server". */
  describe?: string;
}

/** A running prefix client. */
export interface PrefixClient {
  /**
   * Resolves with the first prefix; rejects when the client is closed before one came, or with the server's
   * ResourceExhausted (naming the pool) when the pool has no prefix left at start.
   */
  readonly ready: Promise<string>;
  /** The prefix held now (undefined before the first answer). */
  readonly prefix: string | undefined;
  /** Ends the stream, which returns the prefix to the pool, and waits for the background loop to stop. */
  close(): Promise<void>;
}

/** Starts the prefix client on `channel`, resetting `ipam` with each new prefix. */
export function startPrefixClient(channel: Channel, ipam: Vl3Ipam, opts: PrefixClientOptions = {}): PrefixClient {
  const clock = opts.clock ?? realClock;
  const log = opts.log ?? silentLogger;
  const retryMs = opts.retryIntervalMs ?? 1000;
  const what = opts.describe ?? "the prefix server";
  const ac = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, ac.signal]) : ac.signal;
  const client = createClient(IPAM, channel);
  let wanted = opts.prefix ?? "";
  let held: string | undefined;
  let resolveReady: (p: string) => void = () => undefined;
  let rejectReady: (e: unknown) => void = () => undefined;
  const ready = new Promise<string>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  // Nobody may be waiting on `ready` when the client is closed early.
  ready.catch(() => undefined);

  const apply = (resp: PrefixResponse): void => {
    if (resp.prefix === held) return;
    const old = held;
    ipam.reset(resp.prefix, resp.excludePrefixes);
    held = resp.prefix;
    wanted = resp.prefix;
    log.info({ prefix: resp.prefix, previous: old, excludePrefixes: resp.excludePrefixes }, "vl3: prefix taken");
    resolveReady(resp.prefix);
  };

  const loop = async (): Promise<void> => {
    while (!signal.aborted) {
      let why = "stream ended";
      try {
        // The request side stays open for the life of the stream: closing it would end the server's loop.
        const requests = (async function* () {
          yield { type: Type.ALLOCATE, prefix: wanted, excludePrefixes: [...(opts.excludePrefixes ?? [])] };
          await new Promise<void>((resolve) => {
            if (signal.aborted) resolve();
            else signal.addEventListener("abort", () => resolve(), { once: true });
          });
        })();
        for await (const resp of client.managePrefixes(requests, { signal })) apply(resp);
      } catch (err) {
        if (signal.aborted) break;
        why = err instanceof Error ? err.message : String(err);
        if (err instanceof StatusError && err.code === Code.ResourceExhausted) {
          log.error({ err, prefixServer: what }, "vl3: the prefix pool is exhausted");
          // At start there is nothing to wait for: the owner hears it through `ready` and decides.
          if (held === undefined) {
            rejectReady(err);
            return;
          }
        }
      }
      if (signal.aborted) break;
      log.warn({ prefixServer: what, why, prefix: held }, "vl3: prefix stream broke; asking for the same prefix again");
      try {
        await clock.sleep(retryMs, signal);
      } catch {
        break;
      }
    }
    rejectReady(new StatusError(Code.Canceled, `vl3: prefix client for ${what} closed before a prefix came`));
  };
  const done = loop();

  return {
    ready,
    get prefix() {
      return held;
    },
    async close() {
      ac.abort();
      await done;
    },
  };
}
