/**
 * updatepath: adds or advances this hop's path segment and sets `connection.id` to the segment id; on the way
 * back restores the caller's index and id (docs/wire-compatibility.md#path-segments). Place first in every chain.
 * Reads/writes: `req.connection.path`, `req.connection.id`.
 */
import type { Connection, NetworkServiceRequest } from "@nsm-ts/api/networkservice";
import { Code, fail } from "@nsm-ts/base/status";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";
import { ensurePath, updatePath } from "./updatepath.js";

function enter(conn: Connection, name: string, element: string): number {
  const path = ensurePath(conn);
  const seg = path.pathSegments[path.index];
  if (path.pathSegments.length > 0 && path.index < path.pathSegments.length && seg && seg.name !== name) {
    // A request arriving from the previous hop must carry that hop's segment id as the connection id.
    if (conn.id !== seg.id) {
      fail(Code.InvalidArgument, `${element}: connection.id "${conn.id}" must equal path.path_segments[${path.index}].id "${seg.id}"`);
    }
  }
  const prev = updatePath(path, name, element, conn.id);
  conn.id = path.pathSegments[path.index]?.id ?? conn.id;
  return prev;
}

function restore(conn: Connection, prev: number): Connection {
  if (conn.path && prev < conn.path.pathSegments.length) {
    conn.path.index = prev;
    conn.id = conn.path.pathSegments[prev]?.id ?? conn.id;
  }
  return conn;
}

function make(name: string, element: string): NetworkServiceElement {
  if (!name) throw new Error(`${element}: name must not be empty`);
  return {
    name: element,
    async request(ctx, req: NetworkServiceRequest, next) {
      const prev = enter(connectionOf(req), name, element);
      const conn = await next.request(ctx, req);
      return restore(conn, prev);
    },
    async close(ctx, conn, next) {
      enter(conn, name, element);
      await next.close(ctx, conn);
    },
  };
}

/** Server side: this hop's segment is named `name`. */
export function newServer(name: string): NetworkServiceElement {
  return make(name, "updatepath");
}

/**
 * Client side: same path rules. A client starts the path, so the id check (which protects a hop from a
 * previous hop that sent the wrong id) applies to it only when it joins an existing path (passthrough).
 */
export function newClient(name: string): NetworkServiceElement {
  return make(name, "updatepath-client");
}
