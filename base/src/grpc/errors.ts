/**
 * Status conversion at the transport edges: what a handler throws becomes a gRPC status, and what grpc-js
 * reports to a client becomes a StatusError, so both sides only ever deal with StatusError.
 */
import type * as grpc from "@grpc/grpc-js";
import { Code, StatusError } from "../status/index.js";
import { firstValues, toGrpcMetadata } from "./metadata.js";

/**
 * A StatusError from what grpc-js reports to a client (code, details, trailers). A call lost because its HTTP/2
 * session was closed under it (GOAWAY with an error, e.g. Node's rapid-reset guard: "Received RST_STREAM with code 2
 * triggered by internal client error: Session closed with error code 2") is `Unavailable`, not `Internal`: the
 * connection failed, not the server's handler, so retry and heal treat it as the transient failure it is.
 */
export function fromServiceError(err: grpc.ServiceError | grpc.StatusObject): StatusError {
  const code = err.code === Code.Internal && SESSION_CLOSED.test(err.details) ? Code.Unavailable : (err.code as Code);
  return new StatusError(code, err.details, { metadata: firstValues(err.metadata), cause: err });
}

const SESSION_CLOSED = /internal client error: Session closed with error code \d+/;

/** The status object grpc-js sends for a StatusError (its metadata become trailers). */
export function toStatusObject(err: StatusError): grpc.ServerErrorResponse {
  const code = err.code === Code.OK ? Code.Unknown : err.code;
  const e = Object.assign(new Error(err.message), { code, details: err.message }) as grpc.ServerErrorResponse;
  if (Object.keys(err.metadata).length > 0) e.metadata = toGrpcMetadata(err.metadata);
  return e;
}

/** The error a caller sees when its own signal cancelled the call before it started. */
export function canceledError(signal: AbortSignal, what: string): StatusError {
  const reason: unknown = signal.reason;
  if (reason instanceof StatusError) return reason;
  return new StatusError(Code.Canceled, `${what}: call canceled`, { cause: reason });
}
