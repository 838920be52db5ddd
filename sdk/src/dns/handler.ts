/**
 * DNS handlers and their chain, the same shape as the networkservice elements: each handler answers a query or
 * passes it to `next`; `dnsChain(a, b, c)` runs a → b → c and the end of the chain answers SERVFAIL.
 */
import type { Logger } from "@nsm-ts/base/log";
import { type DnsMessage, Rcode, replyTo } from "./message.js";

/** One query on its way through a chain. */
export interface DnsRequest {
  /** The query (exactly one question; the server checked). */
  readonly query: DnsMessage;
  /** Aborts when the query's time is up or the server closes. */
  readonly signal: AbortSignal;
  /** Logger of the server. */
  readonly log: Logger;
}

/** Passes a request on; resolves with the answer. */
export type DnsNext = (req: DnsRequest) => Promise<DnsMessage>;

/** A DNS handler: answers the request itself or asks `next`. */
export interface DnsHandler {
  /** Short name for logs. */
  readonly name: string;
  serve(req: DnsRequest, next: DnsNext): Promise<DnsMessage>;
}

/**
 * Composes handlers into one `DnsNext`. A handler that throws answers SERVFAIL (logged at warn): one bad
 * query must not take the server down.
 */
export function dnsChain(...handlers: DnsHandler[]): DnsNext {
  const at =
    (i: number): DnsNext =>
    async (req) => {
      const h = handlers[i];
      if (!h) return replyTo(req.query, Rcode.SERVFAIL);
      try {
        return await h.serve(req, at(i + 1));
      } catch (err) {
        req.log.warn({ err, handler: h.name }, "dns: handler failed; answering SERVFAIL");
        return replyTo(req.query, Rcode.SERVFAIL);
      }
    };
  return at(0);
}
