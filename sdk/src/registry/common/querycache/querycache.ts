/**
 * querycache (registry client): answers a repeated Find from memory instead of a registry round trip. The first
 * Find of a query (a template) goes to the registry as usual; at the same time a watch with that template starts
 * in the background and keeps the cached answer current — a Register shows up, an Unregister or expiry removes
 * the entry — for as long as the query keeps being asked. A query unused for `expireTimeoutMs` closes its watch;
 * a watch that fails drops its query, so the next Find goes to the registry again. Watch Finds pass through.
 *
 * Why the direct Find on a miss as well as the watch: the watch's snapshot has no end marker, so the first caller
 * could not tell when it has the whole answer. The watch starts first; the direct Find's entries seed only names the
 * watch has not spoken about yet, so a deletion the watch reported is never brought back by an older answer.
 *
 * Served entries are copies, and endpoints whose `expiration_time` has passed are left out. Place at the tail of a
 * client chain, before `connect`.
 */
import { toBinary } from "@bufbuild/protobuf";
import { NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { type Clock, realClock, type Timer } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import type { FindResult, RegistryElement, RegistryEntry, RegistryHandler } from "../../core/index.js";
import { cloneEntry, isEndpoint } from "../entry.js";

/** Options of `querycache.newClient`. */
export interface QueryCacheOptions {
  /** Clock for idle expiry of queries; default the real clock. Expired endpoints are judged on the caller's `ctx.clock`. */
  clock?: Clock;
  /** A query not asked for this long closes its watch and is forgotten; default 60 000 ms. */
  expireTimeoutMs?: number;
  /** Most queries cached at once (each holds one watch); the least recently asked goes first; default 256. */
  maxQueries?: number;
  /** Ends every watch and empties the cache (the owner's lifetime). */
  signal?: AbortSignal;
  /** Log for watch failures; default silent. */
  log?: Logger;
  /** Called whenever a cached answer changes (a watch event was applied); for observers and tests. */
  onChange?: (entry: RegistryEntry, deleted: boolean) => void;
}

interface Query<T extends RegistryEntry> {
  readonly entries: Map<string, T>;
  /** Names the watch has reported (added or deleted): the direct Find's older answer must not override them. */
  readonly touched: Set<string>;
  readonly abort: AbortController;
  lastUsed: number;
  /** True once the direct Find's answer is in: from then on the cache answers alone. */
  seeded: boolean;
}

/** A cached query's answer, or undefined on a miss. Exposed for tests and metrics. */
export interface QueryCache<T extends RegistryEntry> extends RegistryElement<T> {
  /** Number of queries held (each with a watch). */
  readonly size: number;
}

const keyOf = (template: RegistryEntry): string =>
  Buffer.from(isEndpoint(template) ? toBinary(NetworkServiceEndpointSchema, template) : toBinary(NetworkServiceSchema, template)).toString(
    "base64",
  );

const expired = (e: RegistryEntry, now: number): boolean => {
  if (!isEndpoint(e) || !e.expirationTime) return false;
  const at = Number(e.expirationTime.seconds) * 1000 + Math.floor(e.expirationTime.nanos / 1e6);
  return Number.isFinite(at) && at <= now;
};

/** Creates the client element (see the header comment). */
export function newClient<T extends RegistryEntry>(opts: QueryCacheOptions = {}): QueryCache<T> {
  const clock = opts.clock ?? realClock;
  const log = opts.log ?? silentLogger;
  const expireMs = opts.expireTimeoutMs ?? 60_000;
  const maxQueries = opts.maxQueries ?? 256;
  const queries = new Map<string, Query<T>>();
  let sweeper: Timer | undefined;

  const drop = (key: string): void => {
    const q = queries.get(key);
    if (!q) return;
    queries.delete(key);
    q.abort.abort();
    if (queries.size === 0) {
      sweeper?.stop();
      sweeper = undefined;
    }
  };
  const sweep = (): void => {
    sweeper = undefined;
    const now = clock.now();
    for (const [key, q] of queries) if (now - q.lastUsed >= expireMs) drop(key);
    let oldest = Number.POSITIVE_INFINITY;
    for (const q of queries.values()) oldest = Math.min(oldest, q.lastUsed);
    if (queries.size > 0) sweeper = clock.setTimer(oldest + expireMs - now, sweep);
  };
  opts.signal?.addEventListener("abort", () => {
    for (const key of [...queries.keys()]) drop(key);
  });

  /** Keeps `q` current from a watch until it fails or is aborted; then forgets the query. */
  const follow = async (key: string, q: Query<T>, template: T, next: RegistryHandler<T>): Promise<void> => {
    const ctx = CallContext.create({ clock, log, signal: q.abort.signal });
    try {
      for await (const r of next.find(ctx, { template, watch: true })) {
        q.touched.add(r.entry.name);
        if (r.deleted) q.entries.delete(r.entry.name);
        else q.entries.set(r.entry.name, cloneEntry(r.entry));
        opts.onChange?.(r.entry, r.deleted);
      }
    } catch (err) {
      if (!q.abort.signal.aborted) log.debug({ element: "querycache", err }, "watch ended; the query is forgotten");
    } finally {
      if (queries.get(key) === q) drop(key);
    }
  };

  const element: QueryCache<T> = {
    name: "querycache",
    get size() {
      return queries.size;
    },
    register: (ctx, entry, next) => next.register(ctx, entry),
    unregister: (ctx, entry, next) => next.unregister(ctx, entry),
    async *find(ctx, query, next): AsyncIterable<FindResult<T>> {
      if (query.watch || opts.signal?.aborted) {
        yield* next.find(ctx, query);
        return;
      }
      const key = keyOf(query.template);
      const hit = queries.get(key);
      if (hit?.seeded) {
        hit.lastUsed = clock.now();
        // Expiry is judged on the caller's clock, as discover judges it (the cache's clock only ages queries).
        const now = ctx.clock.now();
        for (const e of [...hit.entries.values()]) if (!expired(e, now)) yield { entry: cloneEntry(e), deleted: false };
        return;
      }
      let q = hit;
      if (!q) {
        if (queries.size >= maxQueries) {
          let oldest: [string, Query<T>] | undefined;
          for (const kv of queries) if (!oldest || kv[1].lastUsed < oldest[1].lastUsed) oldest = kv;
          if (oldest) drop(oldest[0]);
        }
        q = { entries: new Map(), touched: new Set(), abort: new AbortController(), lastUsed: clock.now(), seeded: false };
        queries.set(key, q);
        sweeper ??= clock.setTimer(expireMs, sweep);
        void follow(key, q, cloneEntry(query.template), next);
      }
      // A miss (or a query whose first answer is still on its way): ask the registry directly.
      const answer: T[] = [];
      for await (const r of next.find(ctx, query)) {
        if (!r.deleted) answer.push(r.entry);
        yield r;
      }
      if (queries.get(key) === q && !q.seeded) {
        for (const e of answer) if (!q.touched.has(e.name)) q.entries.set(e.name, cloneEntry(e));
        q.seeded = true;
      }
    },
  };
  return element;
}
