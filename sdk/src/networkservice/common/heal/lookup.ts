/** heal: the endpoint registry look-up that tells a dead endpoint (reselect now) from a live one (retry it). */
import { create } from "@bufbuild/protobuf";
import { NetworkServiceEndpointRegistry, NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import type { Clock } from "@nsm-ts/base/clock";
import type { ChannelPool } from "@nsm-ts/base/dialer";
import { type CallOptions, createClient } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import { type TokenGenerator, tokenMetadata } from "@nsm-ts/base/token";

const ELEMENT = "heal";

/**
 * Asks the registry, through the next hop at `url`, whether endpoint `name` is registered: resolves true or
 * false, rejects when the registry cannot tell (heal then keeps its fixed-time fallback).
 */
export type EndpointLookup = (url: string, name: string, signal: AbortSignal) => Promise<boolean>;

/** The default registry look-up: Find (no watch) for `name` on the next hop's endpoint registry. */
export function grpcEndpointLookup(pool: ChannelPool, tokenGenerator?: TokenGenerator): EndpointLookup {
  return async (url, name, signal) => {
    const channel = pool.acquire(url);
    try {
      const opts: CallOptions = { signal };
      if (tokenGenerator) opts.metadata = tokenMetadata(await tokenGenerator());
      const query = { networkServiceEndpoint: create(NetworkServiceEndpointSchema, { name }), watch: false };
      for await (const r of createClient(NetworkServiceEndpointRegistry, channel).find(query, opts)) {
        if (!r.deleted && r.networkServiceEndpoint?.name === name) return true;
      }
      return false;
    } finally {
      pool.release(url);
    }
  };
}

/** What one bounded registry look-up needs. */
export interface RegistryQuestion {
  lookup: EndpointLookup;
  timeoutMs: number;
  clock: Clock;
  log: Logger;
  connId: string;
}

/**
 * Asks `q.lookup` whether `endpoint` is registered at `url`, for at most `q.timeoutMs` and until `signal` aborts:
 * true or false, or undefined when the registry cannot tell (it failed, timed out or was stopped).
 */
export async function isRegistered(q: RegistryQuestion, url: string, endpoint: string, signal: AbortSignal): Promise<boolean | undefined> {
  const bound = new AbortController();
  const stop = (): void => bound.abort();
  signal.addEventListener("abort", stop, { once: true });
  const timer = q.clock.setTimer(q.timeoutMs, stop);
  try {
    return await Promise.race([
      q.lookup(url, endpoint, bound.signal),
      new Promise<undefined>((resolve) => bound.signal.addEventListener("abort", () => resolve(undefined), { once: true })),
    ]);
  } catch (lookupErr) {
    q.log.debug({ connId: q.connId, err: lookupErr }, `${ELEMENT}: registry look-up failed; cannot tell`);
    return undefined;
  } finally {
    timer.stop();
    bound.abort();
    signal.removeEventListener("abort", stop);
  }
}
