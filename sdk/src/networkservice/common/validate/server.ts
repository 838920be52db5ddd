/**
 * validate (server): refuses a Request or Close whose connection exceeds the limits of `@nsm-ts/base/limits`
 * (path segments, label maps, string sizes, mechanism preferences, the connection context) or carries an invalid
 * `google.protobuf.Timestamp` in a path segment's `expires`, with `InvalidArgument` naming the field, before any
 * element stores or reads it. Limits and reasons: docs/wire-compatibility.md#limits.
 *
 * Reads: the whole request (connection, mechanism preferences). Writes: nothing. Placement: first element of every
 * server chain (endpoint, nsmgr, forwarder), so no later element keeps or parses an oversized connection.
 */
import { toBinary } from "@bufbuild/protobuf";
import { type Connection, ConnectionContextSchema, type Mechanism, type NetworkServiceRequest } from "@nsm-ts/api/networkservice";
import {
  checkCount,
  checkLabels,
  checkSize,
  MAX_CONNECTION_CONTEXT_BYTES,
  MAX_LIST_ITEMS,
  MAX_NAME_BYTES,
  MAX_PATH_SEGMENTS,
  MAX_PAYLOAD_BYTES,
  timestampMs,
} from "@nsm-ts/base/limits";
import { Code, fail } from "@nsm-ts/base/status";
import type { NetworkServiceElement } from "../../core/types.js";

const W = "validate";

function checkMechanism(m: Mechanism, field: string): void {
  checkSize(W, `${field}.cls`, m.cls, MAX_NAME_BYTES);
  checkSize(W, `${field}.type`, m.type, MAX_NAME_BYTES);
  checkLabels(W, `${field}.parameters`, m.parameters);
}

/** Throws `InvalidArgument` naming the field when `conn` (at `field`, e.g. `connection`) exceeds a limit. */
export function validateConnection(conn: Connection, field = "connection"): void {
  checkSize(W, `${field}.id`, conn.id, MAX_NAME_BYTES);
  checkSize(W, `${field}.network_service`, conn.networkService, MAX_NAME_BYTES);
  checkSize(W, `${field}.network_service_endpoint_name`, conn.networkServiceEndpointName, MAX_NAME_BYTES);
  checkSize(W, `${field}.payload`, conn.payload, MAX_PAYLOAD_BYTES);
  checkLabels(W, `${field}.labels`, conn.labels);
  if (conn.mechanism) checkMechanism(conn.mechanism, `${field}.mechanism`);
  if (conn.context) {
    const n = toBinary(ConnectionContextSchema, conn.context).length;
    if (n > MAX_CONNECTION_CONTEXT_BYTES) {
      fail(Code.InvalidArgument, `${W}: ${field}.context is ${n} bytes encoded, more than ${MAX_CONNECTION_CONTEXT_BYTES}`);
    }
  }
  const segs = conn.path?.pathSegments ?? [];
  checkCount(W, `${field}.path.path_segments`, segs.length, MAX_PATH_SEGMENTS);
  segs.forEach((s, i) => {
    const f = `${field}.path.path_segments[${i}]`;
    checkSize(W, `${f}.name`, s.name, MAX_NAME_BYTES);
    checkSize(W, `${f}.id`, s.id, MAX_NAME_BYTES);
    checkSize(W, `${f}.token`, s.token, MAX_PAYLOAD_BYTES);
    checkLabels(W, `${f}.metrics`, s.metrics);
    if (s.expires) timestampMs(W, `${f}.expires`, s.expires);
  });
}

/** Throws `InvalidArgument` naming the field when a Request exceeds a limit. */
export function validateRequest(req: NetworkServiceRequest): void {
  if (req.connection) validateConnection(req.connection);
  checkCount(W, "mechanism_preferences", req.mechanismPreferences.length, MAX_LIST_ITEMS);
  for (const [i, m] of req.mechanismPreferences.entries()) checkMechanism(m, `mechanism_preferences[${i}]`);
}

/** Creates the server element (see the header comment). */
export function newServer(): NetworkServiceElement {
  return {
    name: W,
    async request(ctx, req, next) {
      validateRequest(req);
      return next.request(ctx, req);
    },
    async close(ctx, conn, next) {
      validateConnection(conn);
      return next.close(ctx, conn);
    },
  };
}
