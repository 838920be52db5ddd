/**
 * A SPIFFE Workload API server for tests: serves `FetchX509SVID` on a unix socket in a temp dir, issuing
 * X.509-SVIDs from a `TestPki`, and rotates on demand (a new key and certificate pushed to every open stream).
 * Like a SPIRE agent it refuses calls without the `workload.spiffe.io: true` metadata. It can be stopped and
 * restarted on the same socket to exercise reconnects.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { SpiffeWorkloadAPI, type X509SVIDResponse, X509SVIDResponseSchema } from "@nsm-ts/api/spiffe";
import { createServer, type NsmServer } from "@nsm-ts/base/grpc";
import { Code, StatusError } from "@nsm-ts/base/status";
import type { TestPki } from "../pki/index.js";

/** One issued X.509-SVID, also as files (for clients that want the same key and certificate). */
export interface TestSvid {
  spiffeId: string;
  certFile: string;
  keyFile: string;
  /** The leaf's serial number (hex, as `X509Certificate.serialNumber` prints it). */
  serial: string;
  /** The leaf certificate. */
  certificate: X509Certificate;
}

/** Options of `TestWorkloadApi.start`. */
export interface TestWorkloadApiOptions {
  /** The SPIFFE ID of the SVIDs; default `spiffe://test.com/workload`. */
  spiffeId?: string;
  /** Issue the SVIDs under an intermediate CA (x509_svid then carries leaf + intermediate). */
  chained?: boolean;
}

let issued = 0;

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** DER of every certificate in a PEM file, concatenated (the Workload API's encoding of chains and bundles). */
export function derOfPemFile(file: string): Uint8Array {
  const certs = (readFileSync(file, "utf8").match(PEM_CERT) ?? []).map((p) => new X509Certificate(p).raw);
  return new Uint8Array(Buffer.concat(certs));
}

/** A running test Workload API. */
export class TestWorkloadApi {
  /** `unix:///…/agent.sock`, the value of SPIFFE_ENDPOINT_SOCKET. */
  readonly url: string;
  /** How many FetchX509SVID streams were accepted (header present) so far. */
  fetches = 0;
  /** How many calls were refused for a missing `workload.spiffe.io` header. */
  refused = 0;
  /** How many FetchX509SVID streams are open now. */
  open = 0;
  private svid: TestSvid;
  private response: MessageInitShape<typeof X509SVIDResponseSchema>;
  private server: NsmServer | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly fetchWaiters = new Set<() => void>();

  private constructor(
    private readonly pki: TestPki,
    private readonly dir: string,
    private readonly opts: Required<TestWorkloadApiOptions>,
  ) {
    this.url = `unix://${join(dir, "agent.sock")}`;
    this.svid = this.issue();
    this.response = this.responseOf(this.svid);
  }

  /** Starts a server issuing SVIDs from `pki`; `close()` it in afterEach. */
  static async start(pki: TestPki, opts: TestWorkloadApiOptions = {}): Promise<TestWorkloadApi> {
    const dir = mkdtempSync(join(tmpdir(), "nsm-ts-spire-"));
    const api = new TestWorkloadApi(pki, dir, { spiffeId: opts.spiffeId ?? "spiffe://test.com/workload", chained: opts.chained ?? false });
    await api.restart();
    return api;
  }

  /** The SVID currently served. */
  current(): TestSvid {
    return this.svid;
  }

  /** Issues a new SVID (new key, new certificate, new serial) and pushes it to every open stream. */
  rotate(): TestSvid {
    this.svid = this.issue();
    this.push(this.responseOf(this.svid));
    return this.svid;
  }

  /** Pushes an arbitrary response (malformed-input tests); the served SVID stays what `current()` says. */
  push(response: MessageInitShape<typeof X509SVIDResponseSchema>): void {
    this.response = response;
    for (const w of [...this.waiters]) w();
  }

  /** Resolves once `n` FetchX509SVID streams were accepted in total. */
  async untilFetches(n: number): Promise<void> {
    while (this.fetches < n) await new Promise<void>((r) => this.fetchWaiters.add(r));
  }

  /** Resolves once exactly `n` FetchX509SVID streams are open (e.g. 0: the client cancelled its stream). */
  async untilOpen(n: number): Promise<void> {
    while (this.open !== n) await new Promise<void>((r) => this.fetchWaiters.add(r));
  }

  /** Stops serving: open streams end with Unavailable, new calls find no socket. */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    await s?.close({ graceMs: 0 });
  }

  /** (Re)starts serving on the same socket path. */
  async restart(): Promise<void> {
    if (this.server) return;
    const server = createServer();
    server.addService(SpiffeWorkloadAPI, {
      fetchX509SVID: (_req, ctx) => this.stream(ctx.metadata, ctx.signal),
      fetchX509Bundles: async function* () {
        yield* [];
        throw new StatusError(Code.Unimplemented, "test workload api: FetchX509Bundles is not served");
      },
      fetchJWTSVID: async () => {
        throw new StatusError(Code.Unimplemented, "test workload api: FetchJWTSVID is not served");
      },
      fetchJWTBundles: async function* () {
        yield* [];
        throw new StatusError(Code.Unimplemented, "test workload api: FetchJWTBundles is not served");
      },
      validateJWTSVID: async () => {
        throw new StatusError(Code.Unimplemented, "test workload api: ValidateJWTSVID is not served");
      },
    });
    await server.listen(this.url);
    this.server = server;
  }

  /** Stops the server and removes the socket dir (the PKI belongs to the caller). */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async *stream(metadata: Record<string, string>, signal: AbortSignal): AsyncGenerator<X509SVIDResponse> {
    if (metadata["workload.spiffe.io"] !== "true") {
      this.refused++;
      throw new StatusError(Code.InvalidArgument, "security header missing from request");
    }
    this.fetches++;
    this.open++;
    this.wakeFetchWaiters();
    try {
      yield* this.serve(signal);
    } finally {
      this.open--;
      this.wakeFetchWaiters();
    }
  }

  private wakeFetchWaiters(): void {
    for (const w of [...this.fetchWaiters]) w();
    this.fetchWaiters.clear();
  }

  private async *serve(signal: AbortSignal): AsyncGenerator<X509SVIDResponse> {
    for (;;) {
      const sent = this.response;
      yield create(X509SVIDResponseSchema, sent);
      while (this.response === sent) {
        if (signal.aborted) return;
        await new Promise<void>((resolve) => {
          const done = (): void => {
            this.waiters.delete(done);
            signal.removeEventListener("abort", done);
            resolve();
          };
          this.waiters.add(done);
          signal.addEventListener("abort", done, { once: true });
        });
      }
    }
  }

  private issue(): TestSvid {
    const name = `svid-${++issued}`;
    const san = `URI:${this.opts.spiffeId}`;
    const leaf = this.opts.chained ? this.pki.chainedLeaf(name, { san }) : this.pki.leaf(name, { san });
    const certificate = new X509Certificate(readFileSync(leaf.certFile));
    return { spiffeId: this.opts.spiffeId, ...leaf, serial: certificate.serialNumber, certificate };
  }

  private responseOf(svid: TestSvid): MessageInitShape<typeof X509SVIDResponseSchema> {
    const key = createPrivateKey(readFileSync(svid.keyFile)).export({ type: "pkcs8", format: "der" });
    return {
      svids: [
        {
          spiffeId: svid.spiffeId,
          x509Svid: derOfPemFile(svid.certFile),
          x509SvidKey: new Uint8Array(key),
          bundle: derOfPemFile(this.pki.caFile),
        },
      ],
    };
  }
}
