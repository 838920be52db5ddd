/**
 * The per-call context handed to server handlers. Metadata maps, the deadline and the peer certificate are
 * computed on first read: most handlers never look at them and the hot path stays as cheap as raw grpc-js.
 */
import { X509Certificate } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../log/index.js";
import { Code, StatusError } from "../status/index.js";
import { allValues, DEADLINE_HEADER, DEADLINE_HEADER_MAX_SKEW_MS, firstValues } from "./metadata.js";
import type { ServerCallContext } from "./types.js";

/** The grpc-js server call objects of every streaming kind share this surface. */
export type AnyServerCall =
  | grpc.ServerUnaryCall<unknown, unknown>
  | grpc.ServerReadableStream<unknown, unknown>
  | grpc.ServerWritableStream<unknown, unknown>
  | grpc.ServerDuplexStream<unknown, unknown>;

/** Server call context backed by a grpc-js call. */
/** How much earlier than our deadline a client's deadline cancel may arrive (transit time under load). */
const DEADLINE_SKEW_MS = 500;

export class CallContext implements ServerCallContext {
  private readonly controller = new AbortController();
  private headers: grpc.Metadata | undefined;
  private headersSent = false;
  private md: Record<string, string> | undefined;
  private mdAll: Record<string, string[]> | undefined;
  private cert: { value: X509Certificate | undefined } | undefined;
  private dl: { value: Date | undefined } | undefined;
  /** True for calls whose response is a stream (closed early when the server shuts down). */
  readonly streaming: boolean;
  /** Read at call start: grpc-js forgets the peer once the stream has closed. */
  readonly peer: string;
  private readonly rawCert: Buffer | undefined;

  constructor(
    readonly method: string,
    private readonly call: AnyServerCall,
    streaming: boolean,
    private readonly log: Logger,
  ) {
    this.streaming = streaming;
    this.peer = call.getPeer();
    this.rawCert = call.getAuthContext()?.sslPeerCertificate?.raw;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /**
   * The call's deadline: from `grpc-timeout`, or the caller's absolute deadline (`DEADLINE_HEADER`) when that is
   * earlier by at most `DEADLINE_HEADER_MAX_SKEW_MS` (the request's transit time).
   */
  get deadline(): Date | undefined {
    if (this.dl === undefined) {
      const raw = this.call.getDeadline();
      const d = raw instanceof Date ? raw.getTime() : raw;
      if (!Number.isFinite(d)) this.dl = { value: undefined };
      else {
        const sent = Number(this.call.metadata.get(DEADLINE_HEADER)[0]);
        this.dl = { value: new Date(sent < d && sent >= d - DEADLINE_HEADER_MAX_SKEW_MS ? sent : d) };
      }
    }
    return this.dl.value;
  }

  get metadata(): Record<string, string> {
    this.md ??= firstValues(this.call.metadata);
    return this.md;
  }

  get metadataAll(): Record<string, string[]> {
    this.mdAll ??= allValues(this.call.metadata);
    return this.mdAll;
  }

  get peerCertificate(): X509Certificate | undefined {
    if (!this.cert) {
      this.cert = { value: this.rawCert ? new X509Certificate(this.rawCert) : undefined };
    }
    return this.cert.value;
  }

  setHeader(key: string, value: string): void {
    if (this.headersSent) {
      this.log.warn({ method: this.method, key }, "grpc: response header set after headers were sent; dropped");
      return;
    }
    this.headers ??= new grpc.Metadata();
    this.headers.set(key.toLowerCase(), value);
  }

  /** Sends the collected headers if not yet sent (before the first message or the status). */
  flushHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    if (this.headers) this.call.sendMetadata(this.headers);
  }

  /** Aborts the signal with a status-shaped reason (Canceled, DeadlineExceeded, Unavailable on shutdown). */
  abort(reason: StatusError): void {
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }

  /**
   * Reason for a cancellation reported by grpc-js: the deadline if it has (nearly) passed, else a client cancel.
   * The client cancels at its own deadline, which is earlier than ours by the request's transit time (our
   * deadline counts the remaining time from when the request arrived), so a cancel within
   * `DEADLINE_SKEW_MS` of our deadline is the deadline.
   */
  cancelReason(): StatusError {
    const d = this.deadline;
    return d && d.getTime() - DEADLINE_SKEW_MS <= Date.now()
      ? new StatusError(Code.DeadlineExceeded, `${this.method}: deadline exceeded`)
      : new StatusError(Code.Canceled, `${this.method}: canceled by the client`);
  }
}
