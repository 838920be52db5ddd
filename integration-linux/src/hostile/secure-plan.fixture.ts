/**
 * The order of the certificate-mode barrage: the oversized shots once, then per 40 calls 12 random byte strings,
 * 6 truncated valid messages, 12 authorization shots (rotating through their kinds), a new mTLS connection, a
 * connection the TLS layer must refuse, 4 cancelled Find watches and 4 health calls. Seeded, bounded by count and
 * by a time cap.
 */
import fc from "fast-check";
import type { Arsenal, Caller, Shot } from "./secure-shots.fixture.js";
import { M, STREAMS } from "./secure-shots.fixture.js";

/** Options of `barragePlan`. */
export interface PlanOptions {
  calls: number;
  /** No call is planned after this time (ms since the epoch). */
  deadline: number;
  seed: number;
  /** Deadline of each call. */
  callDeadlineMs: number;
}

const AUTH_KINDS = [
  "forged-token",
  "foreign-close",
  "foreign-refresh",
  "foreign-monitor",
  "foreign-registry",
  "spoofed-segment",
  "absurd-fields",
  "misaddressed-token",
];
const REFUSED: Caller[] = ["no-cert", "outsider", "plaintext"];

/** The shots, generated lazily. */
export function* barragePlan(arms: Arsenal, o: PlanOptions): Generator<Shot> {
  const { registry: regTargets, ns: nsTargets } = arms.targets;
  const allTargets = [...regTargets, ...nsTargets];
  const rand = fc.sample(fc.uint8Array({ maxLength: 600 }), { numRuns: 2_000, seed: o.seed });
  let r = o.seed >>> 0;
  const next = (n: number): number => {
    r = (Math.imul(r, 1_664_525) + 1_013_904_223) >>> 0;
    return r % n;
  };
  const pick = <T>(xs: readonly T[]): T => xs[next(xs.length)] as T;
  const methods = (t: string): string[] =>
    regTargets.includes(t)
      ? [M.nsRegister, M.nsFind, M.nsUnregister, M.nseRegister, M.nseFind, M.nseUnregister, M.check, M.watch]
      : [M.request, M.close, M.monitor, M.check, M.watch];
  const deadlineMs = o.callDeadlineMs;
  const check = arms.valid[M.check] as Uint8Array;
  for (const a of arms.fixed.oversized ?? []) {
    yield {
      kind: "oversized",
      caller: "mallory",
      stream: STREAMS.has(a.path),
      cancelAfterMs: STREAMS.has(a.path) ? 2_000 : undefined,
      // Decoding 100,000 labels takes a starved server seconds; these shots are about the answer, not its speed.
      deadlineMs: Math.max(deadlineMs, 60_000),
      ...a,
    };
  }
  let auth = 0;
  for (let n = 0; n < o.calls && Date.now() < o.deadline; n++) {
    const k = n % 40;
    if (k < 18) {
      const target = pick(allTargets);
      const path = pick(methods(target));
      const whole = arms.valid[path];
      const random = k < 12 || !whole;
      const bytes = random ? pick(rand) : whole.subarray(0, next(whole.length));
      const cancelAfterMs = STREAMS.has(path) ? 50 : undefined;
      yield {
        kind: random ? "random-bytes" : "truncated",
        caller: "mallory",
        target,
        path,
        stream: STREAMS.has(path),
        bytes,
        cancelAfterMs,
        deadlineMs,
      };
    } else if (k < 30) {
      const kind = AUTH_KINDS[auth++ % AUTH_KINDS.length] as string;
      const a = pick(arms.fixed[kind] ?? []);
      yield { kind, caller: "mallory", stream: STREAMS.has(a.path), deadlineMs, ...a };
    } else if (k === 30) {
      yield {
        kind: "churn/mtls",
        caller: "mallory",
        fresh: true,
        target: pick(allTargets),
        path: M.check,
        stream: false,
        bytes: check,
        deadlineMs,
      };
    } else if (k === 31) {
      const caller = REFUSED[Math.floor(n / 40) % REFUSED.length] as Caller;
      yield {
        kind: `churn/${caller}`,
        caller,
        fresh: true,
        target: pick(allTargets),
        path: M.check,
        stream: false,
        bytes: check,
        deadlineMs,
      };
    } else if (k < 36) {
      const bytes = arms.valid[M.nseFind] as Uint8Array;
      yield {
        kind: "watch-cancelled",
        caller: "mallory",
        target: pick(regTargets),
        path: M.nseFind,
        stream: true,
        bytes,
        cancelAfterMs: next(3) * 10,
        deadlineMs,
      };
    } else {
      const watch = next(2) === 0;
      const path = watch ? M.watch : M.check;
      yield {
        kind: "health",
        caller: "mallory",
        target: pick(allTargets),
        path,
        stream: watch,
        bytes: check,
        cancelAfterMs: watch ? 0 : undefined,
        deadlineMs,
      };
    }
  }
}
