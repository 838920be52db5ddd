/**
 * The X.509 source of the SPIFFE Workload API: one `FetchX509SVID` stream kept open for the life of the program.
 * The first response makes the identity; every later one rotates it in place (key, certificate, expiry) and
 * pushes new TLS material to the servers and channels built on `tls`, which move new calls to connections with the
 * new certificate (see `base/src/grpc/rotation.ts`). A failed
 * stream is reopened after a capped exponential backoff on the injected clock.
 */
import { SpiffeWorkloadAPI, type X509SVIDResponse } from "@nsm-ts/api/spiffe";
import { type Clock, realClock } from "../clock/index.js";
import { createClient, dial } from "../grpc/index.js";
import type { TlsMaterial, TlsSource } from "../grpc/types.js";
import type { Identity } from "../identity/index.js";
import { type Logger, silentLogger } from "../log/index.js";
import { Code, StatusError } from "../status/index.js";
import { SPIFFE_ENDPOINT_SOCKET } from "./address.js";
import { certificates, type ParsedSvid, parseX509Svid, pemOf } from "./svid.js";

/** The metadata every Workload API call carries; servers refuse calls without it. */
export const WORKLOAD_API_HEADER = { "workload.spiffe.io": "true" } as const;

/** Default wait for the first X.509-SVID before giving up (`startTimeoutMs`). */
export const DEFAULT_SPIFFE_START_TIMEOUT_MS = 30_000;

/** Options of `createX509Source`. */
export interface X509SourceOptions {
  /** Clock of the start deadline and the retry backoff; default the real clock. */
  clock?: Clock;
  /** Where receipt, rotation and stream failures are logged; default silent. */
  log?: Logger;
  /** How long to wait for the first X.509-SVID, in ms; default `DEFAULT_SPIFFE_START_TIMEOUT_MS` (30 s). */
  startTimeoutMs?: number;
  /** Wait before reopening a failed stream, in ms; doubles per failure up to `retryMaxMs`. Default 1000. */
  retryInitialMs?: number;
  /** Longest wait between reopening attempts, in ms; default 30000. */
  retryMaxMs?: number;
  /** Lifetime: aborting it ends the stream (and fails a start still waiting). */
  signal?: AbortSignal;
}

/** An identity fetched from the Workload API and kept current. */
export interface X509Source {
  /** The identity; rotation updates this object in place, so token generators built on it sign with the latest key. */
  readonly identity: Identity;
  /** The TLS material for servers and channels (`tls` option); after a rotation new calls run on connections with the new certificate. */
  readonly tls: TlsSource;
  /** The X.509-SVID in use. */
  svid(): ParsedSvid;
  /** Ends the stream; resolves once it is closed and no retry is pending. */
  close(): Promise<void>;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The federated bundles as PEM (trusted for peers too); InvalidArgument naming the key when one is malformed. */
function federatedPem(res: X509SVIDResponse): string {
  return Object.entries(res.federatedBundles)
    .map(([td, der]) => pemOf(certificates(der, `federated_bundles[${JSON.stringify(td)}]`)))
    .join("");
}

function checkedResponse(res: X509SVIDResponse, clock: Clock): ParsedSvid {
  const first = res.svids[0];
  if (first === undefined) throw new StatusError(Code.InvalidArgument, "spiffe: X509SVIDResponse has no svids");
  const svid = parseX509Svid(first, clock);
  const federated = federatedPem(res);
  return federated === "" ? svid : { ...svid, material: { ...svid.material, caPem: svid.material.caPem + federated } };
}

/**
 * Connects to the Workload API at `address` (a `unix:///path` URL, see `parseWorkloadApiAddress`) and resolves with
 * the source once the first X.509-SVID arrived (the first of the response's `svids`). Rejects with
 * `DeadlineExceeded` naming `SPIFFE_ENDPOINT_SOCKET` when none arrived within `startTimeoutMs`, or with the
 * signal's reason when it aborts first.
 */
export function createX509Source(address: string, opts: X509SourceOptions = {}): Promise<X509Source> {
  const clock = opts.clock ?? realClock;
  const log = (opts.log ?? silentLogger).child({ workloadApi: address });
  const startTimeoutMs = opts.startTimeoutMs ?? DEFAULT_SPIFFE_START_TIMEOUT_MS;
  const retryInitialMs = opts.retryInitialMs ?? 1000;
  const retryMaxMs = opts.retryMaxMs ?? 30_000;
  const life = new AbortController();
  const onOuterAbort = (): void => life.abort(opts.signal?.reason);
  if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
  opts.signal?.addEventListener("abort", onOuterAbort, { once: true });

  const listeners = new Set<(m: TlsMaterial) => void>();
  let current: ParsedSvid | undefined;
  let identity: Identity | undefined;
  let lastError: unknown;
  let started: ((s: X509Source) => void) | undefined;
  let loop: Promise<void> = Promise.resolve();

  const tls: TlsSource = {
    current: () => (current as ParsedSvid).material,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  const source: X509Source = {
    get identity() {
      return identity as Identity;
    },
    tls,
    svid: () => current as ParsedSvid,
    close: async () => {
      life.abort(new StatusError(Code.Canceled, "spiffe: X.509 source closed"));
      await loop;
    },
  };

  const apply = (res: X509SVIDResponse): void => {
    const svid = checkedResponse(res, clock);
    const previous = current;
    current = svid;
    const fields = { spiffeId: svid.spiffeId, certificate: svid.certificate, certPem: svid.certificate.toString() };
    const keys = { privateKey: svid.privateKey, publicKey: svid.certificate.publicKey, notAfter: svid.notAfter };
    if (identity === undefined) identity = { ...fields, ...keys, insecure: false, tls };
    else Object.assign(identity, fields, keys);
    const facts = { spiffeId: svid.spiffeId, serial: svid.certificate.serialNumber, notAfter: svid.notAfter.toISOString() };
    if (previous === undefined) log.info(facts, "spiffe: X.509-SVID received");
    else if (previous.certificate.serialNumber !== svid.certificate.serialNumber) log.info(facts, "spiffe: X.509-SVID rotated");
    else log.info(facts, "spiffe: trust bundle updated");
    for (const l of [...listeners]) {
      try {
        l(svid.material);
      } catch (err) {
        // One subscriber failing (a closed server, say) must not keep the others on the old certificate.
        log.error({ err }, "spiffe: a TLS subscriber failed to take the new X.509-SVID");
      }
    }
    started?.(source);
    started = undefined;
  };

  const run = async (): Promise<void> => {
    let failures = 0;
    while (!life.signal.aborted) {
      // A fresh channel per attempt with its own subchannel pool, so our backoff (not grpc-js's) paces reconnects.
      const channel = dial(address, { grpcOptions: { "grpc.use_local_subchannel_pool": 1 } });
      try {
        const stream = createClient(SpiffeWorkloadAPI, channel).fetchX509SVID(
          {},
          { signal: life.signal, metadata: { ...WORKLOAD_API_HEADER } },
        );
        for await (const res of stream) {
          try {
            apply(res);
            failures = 0;
          } catch (err) {
            // Keep the identity we have: a bad update must not take a working workload down.
            lastError = err;
            log.error({ err }, "spiffe: X.509-SVID update refused; keeping the current one");
          }
        }
        lastError = new StatusError(Code.Unavailable, "spiffe: the Workload API ended the FetchX509SVID stream");
      } catch (err) {
        if (life.signal.aborted) break;
        lastError = err;
      } finally {
        channel.close();
      }
      const delayMs = Math.min(retryMaxMs, retryInitialMs * 2 ** Math.min(failures, 20));
      failures++;
      log.warn({ err: lastError, retryInMs: delayMs }, "spiffe: FetchX509SVID stream failed; reopening after the backoff");
      try {
        await clock.sleep(delayMs, life.signal);
      } catch {
        break;
      }
    }
    opts.signal?.removeEventListener("abort", onOuterAbort);
  };

  return new Promise<X509Source>((resolve, reject) => {
    const deadline = clock.setTimer(startTimeoutMs, () => {
      const why = lastError === undefined ? "" : ` (last error: ${errText(lastError)})`;
      const err = new StatusError(
        Code.DeadlineExceeded,
        `spiffe: no X.509-SVID from the Workload API at ${SPIFFE_ENDPOINT_SOCKET}=${address} within ${startTimeoutMs} ms${why}`,
      );
      started = undefined;
      life.abort(err);
      void loop.then(() => reject(err));
    });
    const onAbort = (): void => {
      if (started === undefined) return;
      started = undefined;
      deadline.stop();
      void loop.then(() => reject(life.signal.reason));
    };
    life.signal.addEventListener("abort", onAbort, { once: true });
    started = (s) => {
      deadline.stop();
      life.signal.removeEventListener("abort", onAbort);
      resolve(s);
    };
    loop = run();
  });
}
