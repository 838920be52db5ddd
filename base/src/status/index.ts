/**
 * The one error type of nsm-ts: a gRPC status code, a message that starts with the element name and names
 * the field, and an optional cause. The transport sends `code` and `message` as the gRPC status, so every
 * error that reaches a caller carries a meaningful code (upstream mostly sends `Unknown`; we don't).
 */

/** gRPC status codes (numbers as on the wire). */
export const Code = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

const codeNames = new Map<number, string>(Object.entries(Code).map(([k, v]) => [v, k]));

/** Name of a status code, e.g. `InvalidArgument`. */
export function codeName(code: number): string {
  return codeNames.get(code) ?? `Code(${code})`;
}

/** An error with a gRPC status code; thrown by elements, sent as the status by servers, rebuilt by clients. */
export class StatusError extends Error {
  override readonly name = "StatusError";
  /** The gRPC status code. */
  readonly code: Code;
  /** Response trailers received with the status (client side), if any. */
  readonly metadata: Readonly<Record<string, string>>;

  constructor(code: Code, message: string, opts: { cause?: unknown; metadata?: Record<string, string> } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.metadata = opts.metadata ?? {};
  }
}

/** True when `err` is a StatusError (optionally with the given code). */
export function isStatusError(err: unknown, code?: Code): err is StatusError {
  return err instanceof StatusError && (code === undefined || err.code === code);
}

/** Throws a StatusError; usable in expressions: `req.connection ?? fail(Code.InvalidArgument, "…")`. */
export function fail(code: Code, message: string, cause?: unknown): never {
  throw new StatusError(code, message, { cause });
}

/**
 * Converts anything thrown into a StatusError. Status errors pass through; aborts become `Canceled` or
 * `DeadlineExceeded`; everything else becomes `Internal` with the original as the cause.
 */
export function toStatusError(err: unknown, prefix = ""): StatusError {
  if (err instanceof StatusError) return err;
  const p = prefix ? `${prefix}: ` : "";
  if (err instanceof Error) {
    if (err.name === "TimeoutError") return new StatusError(Code.DeadlineExceeded, `${p}${err.message}`, { cause: err });
    if (err.name === "AbortError") return new StatusError(Code.Canceled, `${p}${err.message}`, { cause: err });
    return new StatusError(Code.Internal, `${p}${err.message}`, { cause: err });
  }
  return new StatusError(Code.Internal, `${p}${String(err)}`, { cause: err });
}

/** Codes that describe the request itself: sending the same call again cannot help. */
const FINAL_CODES: ReadonlySet<number> = new Set([
  Code.InvalidArgument,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.NotFound,
  Code.AlreadyExists,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unimplemented,
  Code.Canceled,
]);

/** True when trying the same call again could succeed (Unavailable, DeadlineExceeded, Internal, …). */
export function isRetryable(err: unknown): boolean {
  return !FINAL_CODES.has(toStatusError(err).code);
}
