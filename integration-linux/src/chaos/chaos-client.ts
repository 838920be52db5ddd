/**
 * The chaos suite's client, run as a forked child (its RSS and CPU stay out of mocha's): one SDK `client()` with
 * refresh and heal on, holding many NOOP connections. The parent drives it over the IPC channel (`ChaosCommand`
 * in, `ChaosReply` out, matched by `seq`): open N connections, report their heal state, close them all, exit.
 */
import type { Connection } from "@nsm-ts/api/networkservice";
import { devIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator } from "@nsm-ts/base/token";
import { client, mechanisms, type NetworkServiceElement } from "@nsm-ts/sdk/networkservice";

/** What the parent asks. */
export type ChaosCommand =
  | { seq: number; op: "open"; n: number; service: string; concurrency: number }
  | { seq: number; op: "probe"; service: string }
  | { seq: number; op: "status" }
  | { seq: number; op: "closeAll"; concurrency: number }
  | { seq: number; op: "exit" };

/** The client's view of its connections. */
export interface ChaosStatus {
  /** Connections the client holds open. */
  total: number;
  connected: number;
  healing: number;
  /** Heals started (CONNECTED → HEALING transitions) since the client started. */
  healsStarted: number;
  /** Highest heal attempt number seen. */
  maxAttempt: number;
  /** Distinct last errors of connections healing now (at most 5). */
  errors: string[];
  /**
   * Open connections whose IP context, as last returned (first Request, refresh or heal), no longer holds exactly
   * the one client address and one endpoint address the first Request gave: an endpoint that restarted must hand a
   * healing connection its addresses back, not a second pair.
   */
  addressesChanged: number;
}

/** What the child answers (`error` set when the command failed as a whole). */
export interface ChaosReply {
  seq: number;
  error?: string;
  ok?: number;
  failed?: number;
  ms?: number;
  firstError?: string;
  status?: ChaosStatus;
}

const connectTo = process.env.CHAOS_CONNECT_TO ?? "";
const tokenGenerator = createTokenGenerator(await devIdentity("nsc-chaos"), { maxTokenLifetimeMs: 60_000 });
let healsStarted = 0;
let maxAttempt = 0;
const states = new Map<string, string>();
const held = new Map<string, Connection>();
/**
 * Each open connection's addresses as its first Request returned them, as the last Request did, and whether the
 * first gave exactly one client and one endpoint address.
 */
const addresses = new Map<string, { first: string; last: string; onePair: boolean }>();
const addressesOf = (c: Connection): string =>
  JSON.stringify([c.context?.ipContext?.srcIpAddrs ?? [], c.context?.ipContext?.dstIpAddrs ?? []]);
/** Sees every Request's answer, the heal's re-requests and the refreshes included (it sits after heal). */
const watchAddresses: NetworkServiceElement = {
  name: "chaos-addresses",
  async request(ctx, req, next) {
    const conn = await next.request(ctx, req);
    const now = addressesOf(conn);
    const seen = addresses.get(conn.id);
    const ip = conn.context?.ipContext;
    addresses.set(
      conn.id,
      seen === undefined
        ? { first: now, last: now, onePair: ip?.srcIpAddrs.length === 1 && ip.dstIpAddrs.length === 1 }
        : { ...seen, last: now },
    );
    return conn;
  },
  async close(ctx, conn, next) {
    addresses.delete(conn.id);
    return next.close(ctx, conn);
  },
};
const nsc = client({
  name: "nsc-chaos",
  connectTo,
  tokenGenerator,
  insecure: true,
  requestTimeoutMs: 30_000,
  additional: [watchAddresses],
  heal: {
    onStatus(s) {
      if (s.state === "HEALING" && states.get(s.connId) !== "HEALING") healsStarted++;
      maxAttempt = Math.max(maxAttempt, s.attempt);
      states.set(s.connId, s.state);
    },
  },
});

/** Runs `fn` over `items` with at most `limit` in flight; counts successes and failures. */
async function each<T>(
  items: T[],
  limit: number,
  fn: (t: T) => Promise<void>,
): Promise<{ ok: number; failed: number; firstError?: string }> {
  let i = 0;
  let ok = 0;
  let failed = 0;
  let firstError: string | undefined;
  const worker = async (): Promise<void> => {
    while (i < items.length) {
      const t = items[i++] as T;
      try {
        await fn(t);
        ok++;
      } catch (err) {
        failed++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return firstError === undefined ? { ok, failed } : { ok, failed, firstError };
}

function status(): ChaosStatus {
  const all = nsc.status();
  const healing = all.filter((s) => s.state === "HEALING");
  return {
    total: all.length,
    connected: all.filter((s) => s.state === "CONNECTED").length,
    healing: healing.length,
    healsStarted,
    maxAttempt,
    errors: [...new Set(healing.map((s) => s.lastError).filter((e): e is string => e !== undefined))].slice(0, 5),
    addressesChanged: [...addresses.values()].filter((a) => a.last !== a.first || !a.onePair).length,
  };
}

const request = (service: string): Promise<Connection> =>
  nsc.request({ connection: { networkService: service }, mechanismPreferences: [mechanisms.noop.mechanism()] });

async function handle(cmd: ChaosCommand): Promise<ChaosReply> {
  const started = Date.now();
  switch (cmd.op) {
    case "open": {
      const r = await each(Array.from({ length: cmd.n }), cmd.concurrency, async () => {
        const conn = await request(cmd.service);
        held.set(conn.id, conn);
      });
      return { seq: cmd.seq, ...r, ms: Date.now() - started };
    }
    case "probe": {
      const conn = await request(cmd.service);
      await nsc.close(conn);
      return { seq: cmd.seq, ok: 1, ms: Date.now() - started };
    }
    case "status":
      return { seq: cmd.seq, status: status() };
    case "closeAll": {
      const r = await each([...held.values()], cmd.concurrency, async (conn) => {
        await nsc.close(conn);
        held.delete(conn.id);
      });
      return { seq: cmd.seq, ...r, ms: Date.now() - started };
    }
    case "exit":
      await nsc.dispose();
      return { seq: cmd.seq, ok: 1 };
  }
}

process.on("message", (cmd: ChaosCommand) => {
  void handle(cmd)
    .catch((err: unknown) => ({ seq: cmd.seq, error: (err as Error).message }))
    .then((reply) => {
      process.send?.(reply);
      if (cmd.op === "exit") process.disconnect();
    });
});
process.send?.({ seq: 0, ok: 1 });
