/**
 * metadata: gives each connection its own per-connection store (`ctx.metadata`, server and client halves),
 * kept from the first successful Request until Close. Place after `begin` so that refresh, heal and timeout
 * events (which re-enter the chain at begin) find the same store.
 */

import { ConnectionMetadata } from "@nsm-ts/base/context";
import { Code, fail } from "@nsm-ts/base/status";
import type { NetworkServiceElement } from "../../core/types.js";

/** Options of the metadata element. */
export interface MetadataOptions {
  /** Called with the number of stored connections after every change (for metrics). */
  onSize?: (n: number) => void;
}

/** Creates a metadata element; each instance has its own table. */
export function newServer(opts: MetadataOptions = {}): NetworkServiceElement & { size(): number } {
  const table = new Map<string, ConnectionMetadata>();
  const changed = (): void => opts.onSize?.(table.size);
  return {
    name: "metadata",
    size: () => table.size,
    async request(ctx, req, next) {
      const id = req.connection?.id || fail(Code.InvalidArgument, "metadata: connection.id must not be empty");
      let md = table.get(id);
      const isNew = !md;
      if (!md) {
        md = new ConnectionMetadata();
        table.set(id, md);
        changed();
      }
      try {
        return await next.request(ctx.withMetadata(md), req);
      } catch (err) {
        // A connection that never came up keeps no state.
        if (isNew && table.get(id) === md) {
          table.delete(id);
          changed();
        }
        throw err;
      }
    },
    async close(ctx, conn, next) {
      const md = table.get(conn.id) ?? new ConnectionMetadata();
      try {
        await next.close(ctx.withMetadata(md), conn);
      } finally {
        if (table.delete(conn.id)) changed();
      }
    },
  };
}

/** Client side: the same element (the store has both halves). */
export const newClient = newServer;
