/** count: a test helper element that counts Requests and Closes (and unique connection ids) passing through. */
import type { NetworkServiceElement } from "@nsm-ts/sdk/networkservice";

/** A counting element with its counters. */
export interface Counter extends NetworkServiceElement {
  readonly requests: number;
  readonly closes: number;
  /** Distinct connection ids seen by Request. */
  readonly uniqueRequests: number;
  /** Distinct connection ids seen by Close. */
  readonly uniqueCloses: number;
  reset(): void;
}

/** Creates a counter; place it anywhere in a chain. */
export function newCounter(name = "count"): Counter {
  let requests = 0;
  let closes = 0;
  let reqIds = new Set<string>();
  let closeIds = new Set<string>();
  return {
    name,
    get requests() {
      return requests;
    },
    get closes() {
      return closes;
    },
    get uniqueRequests() {
      return reqIds.size;
    },
    get uniqueCloses() {
      return closeIds.size;
    },
    reset() {
      requests = 0;
      closes = 0;
      reqIds = new Set();
      closeIds = new Set();
    },
    async request(ctx, req, next) {
      requests++;
      if (req.connection?.id) reqIds.add(req.connection.id);
      return next.request(ctx, req);
    },
    async close(ctx, conn, next) {
      closes++;
      closeIds.add(conn.id);
      return next.close(ctx, conn);
    },
  };
}
