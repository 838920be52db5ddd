/**
 * Fan-out: one query to several servers at once. The first NOERROR answer wins and the other exchanges are
 * cancelled; without one, a NXDOMAIN (a definite "no such name") beats other failures.
 */
import type { Clock } from "@nsm-ts/base/clock";
import { type DnsServerAddress, exchange as defaultExchange, type Exchange, formatServerAddress } from "./exchange.js";
import type { DnsHandler, DnsRequest } from "./handler.js";
import { type DnsMessage, decodeMessage, Rcode, rcodeOf, recursionDesired, replyTo, withoutRecursion } from "./message.js";

/** Options of `fanout` and `newFanoutHandler`. */
export interface FanoutOptions {
  /** Time for each server to answer; default 2000 ms. */
  timeoutMs?: number;
  /** Clock of the timeouts; default the real one. */
  clock?: Clock;
  /** How one server is asked; default UDP with TCP on truncation (tests inject their own). */
  exchange?: Exchange;
}

function rank(m: DnsMessage): number {
  const rc = rcodeOf(m);
  return rc === Rcode.NOERROR ? 0 : rc === Rcode.NXDOMAIN ? 1 : 2;
}

/**
 * Sends `req.query` to every server in `servers` (duplicates asked once). Resolves with the first NOERROR
 * answer; otherwise, once all have answered or failed, with the best other answer, or undefined when none
 * answered at all.
 */
export function fanout(servers: readonly DnsServerAddress[], req: DnsRequest, opts: FanoutOptions = {}): Promise<DnsMessage | undefined> {
  const unique = [...new Map(servers.map((s) => [formatServerAddress(s), s])).values()];
  if (unique.length === 0) return Promise.resolve(undefined);
  const ex = opts.exchange ?? defaultExchange;
  const losers = new AbortController();
  const onAbort = (): void => losers.abort();
  req.signal.addEventListener("abort", onAbort, { once: true });
  return new Promise<DnsMessage | undefined>((resolve) => {
    let pending = unique.length;
    let best: DnsMessage | undefined;
    const settle = (): void => {
      if (--pending > 0) return;
      req.signal.removeEventListener("abort", onAbort);
      resolve(best);
    };
    for (const server of unique) {
      ex(server, req.query, {
        signal: losers.signal,
        ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
        ...(opts.clock ? { clock: opts.clock } : {}),
      }).then(
        (answer) => {
          if (rcodeOf(answer) === Rcode.NOERROR && !losers.signal.aborted) {
            req.signal.removeEventListener("abort", onAbort);
            losers.abort();
            resolve(answer);
          }
          if (best === undefined || rank(answer) < rank(best)) best = answer;
          settle();
        },
        (err: unknown) => {
          if (!losers.signal.aborted) req.log.debug({ err, server: formatServerAddress(server) }, "dns: server did not answer");
          settle();
        },
      );
    }
  });
}

/** Options of `newFanoutHandler`. */
export interface FanoutHandlerOptions extends FanoutOptions {
  /**
   * Ask the servers for their own names only: the forwarded query has RD cleared, and a query that arrives
   * without RD is not forwarded at all (answered NXDOMAIN). This is the loop guard between peers that ask each
   * other: a question travels one hop. Default false (a plain forwarder).
   */
  peers?: boolean;
}

/**
 * A handler that fans the query out to `servers(req)`; with no server, or no answer from any, it passes the
 * query to `next`.
 */
export function newFanoutHandler(servers: (req: DnsRequest) => readonly DnsServerAddress[], opts: FanoutHandlerOptions = {}): DnsHandler {
  return {
    name: opts.peers ? "peer-fanout" : "fanout",
    async serve(req, next) {
      if (opts.peers && !recursionDesired(req.query)) return replyTo(req.query, Rcode.NXDOMAIN);
      const list = servers(req);
      const forwarded = opts.peers ? { ...req, query: withoutRecursion(req.query) } : req;
      const answer = await fanout(list, forwarded, opts);
      return answer ? replyWithOwnFlags(req, answer, opts.peers === true) : next(req);
    },
  };
}

/** A peer's answer went out without RD; the client asked with it, so it gets its flag back. */
function replyWithOwnFlags(req: DnsRequest, answer: DnsMessage, peers: boolean): DnsMessage {
  if (!peers || !recursionDesired(req.query)) return answer;
  const raw = Buffer.from(answer.raw);
  // Flags are bytes 2–3 of the header; RD is bit 8 (RFC 1035 §4.1.1).
  raw.writeUInt16BE(raw.readUInt16BE(2) | (1 << 8), 2);
  return decodeMessage(raw);
}
