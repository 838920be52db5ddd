/**
 * NSM registry target: each network service of the cluster's intents is registered in the cluster's registry
 * over gRPC (the standard registry client chain: retry, refresh, path with our token), and unregistered when
 * its intent goes. Register is an upsert, so applying an entry twice has one effect. The refresh keeps the
 * registrations alive while the worker runs; a registry that forgot them (restart without etcd) gets them
 * again from the next entry or a resync (see the README).
 */
import { create, fromJsonString } from "@bufbuild/protobuf";
import { NetworkServiceSchema } from "@nsm-ts/api/registry";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { type Channel, type DialOptions, dial } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import { Code, isStatusError } from "@nsm-ts/base/status";
import type { TokenGenerator } from "@nsm-ts/base/token";
import { createRegistryClient } from "@nsm-ts/sdk/registry";
import type { Delivery, DeliveryTarget } from "./target.js";

/** Options of `createRegistryTarget`. */
export interface RegistryTargetOptions {
  /** tcp://host:port or unix:///path of the cluster's registry. */
  url: string;
  tokenGenerator: TokenGenerator;
  dial?: DialOptions;
  clock?: Clock;
  log?: Logger;
  /** Deadline of one Register or Unregister; default 10 000 ms. */
  callTimeoutMs?: number;
}

/** Creates the target; `close` ends the refreshes and the channel. */
export function createRegistryTarget(opts: RegistryTargetOptions): DeliveryTarget {
  const lifetime = new AbortController();
  let channel: Channel | undefined;
  const ch = () => {
    channel ??= dial(opts.url, opts.dial);
    return channel;
  };
  // One attempt per apply: the worker's backoff is the retry policy.
  const client = createRegistryClient("ns", ch, {
    tokenGenerator: opts.tokenGenerator,
    signal: lifetime.signal,
    retry: { tryTimeoutMs: 0 },
  });
  const clock = opts.clock ?? realClock;
  const callCtx = (signal: AbortSignal) =>
    CallContext.create({
      signal,
      clock,
      deadline: clock.now() + (opts.callTimeoutMs ?? 10_000),
      ...(opts.log === undefined ? {} : { log: opts.log }),
    });
  return {
    async apply(d: Delivery, signal: AbortSignal): Promise<void> {
      for (const [path, json] of Object.entries(d.puts)) {
        if (signal.aborted) throw new Error("registry target: stopped");
        const ns = fromJsonString(NetworkServiceSchema, json);
        try {
          await client.register(callCtx(signal), ns);
        } catch (err) {
          throw new Error(`registry target: register ${path}: ${(err as Error).message}`);
        }
      }
      for (const path of d.deletes) {
        const name = path.slice(path.lastIndexOf("/") + 1);
        try {
          await client.unregister(callCtx(signal), create(NetworkServiceSchema, { name }));
        } catch (err) {
          if (!isStatusError(err, Code.NotFound)) throw new Error(`registry target: unregister ${path}: ${(err as Error).message}`);
        }
      }
    },
    async close(): Promise<void> {
      lifetime.abort();
      channel?.close();
    },
  };
}
