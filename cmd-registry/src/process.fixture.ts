/**
 * Test harness for driving cmd-registry as a separate process with an independent gRPC stack: `@grpc/grpc-js`
 * clients built by `@grpc/proto-loader` from our `.proto` files (protobufjs codec, not protobuf-es), hand-made
 * ES256 tokens, and spawned registries that are always killed in `stopAll`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { once } from "node:events";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { freePort } from "@nsm-ts/testing/net";
import { config } from "./config.js";

export { freePort };

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, "..", "..");
const bin = join(repoRoot, "cmd-registry", "bin", "cmd-registry.js");

/** A plain grpc-js client with the methods proto-loader generated. */
export type PlainClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;
type Ctor = new (target: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => PlainClient;

/**
 * A client with its own subchannel pool: grpc-js otherwise shares connections per target across clients, and a
 * test that restarts a registry on the same port would inherit a connection still backing off from the old one.
 */
export function plainClient(ctor: Ctor, target: string): PlainClient {
  return new ctor(target, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
}

/** Loads the registry and health services from api/proto. */
export function loadServices(): { ns: Ctor; nse: Ctor; health: Ctor } {
  const root = join(repoRoot, "api", "proto");
  const def = protoLoader.loadSync(["registry.proto", "grpc/health/v1/health.proto"], {
    includeDirs: [join(root, "registry"), join(root, "grpc")],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as Record<string, Record<string, unknown>>;
  const health = (pkg.grpc as Record<string, Record<string, Record<string, unknown>>>).health?.v1?.Health as Ctor;
  return { ns: pkg.registry?.NetworkServiceRegistry as Ctor, nse: pkg.registry?.NetworkServiceEndpointRegistry as Ctor, health };
}

const key: { privateKey: KeyObject } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const b64 = (s: string | Buffer): string => Buffer.from(s).toString("base64url");

/**
 * A hand-made ES256 JWT (`sub`, `exp`), as any NSM peer would send, signed with `signer` (default a throw-away
 * key, which the dev-mode registry does not verify; in certificate mode sign with the caller's certificate key).
 */
export function jwt(sub: string, lifetimeMs = 600_000, signer: KeyObject = key.privateKey): { token: string; expires: string } {
  const exp = Math.floor((Date.now() + lifetimeMs) / 1000);
  const head = `${b64(JSON.stringify({ alg: "ES256", typ: "JWT" }))}.${b64(JSON.stringify({ sub, exp }))}`;
  const sig = sign("sha256", Buffer.from(head), { key: signer, dsaEncoding: "ieee-p1363" });
  return { token: `${head}.${b64(sig)}`, expires: new Date(exp * 1000).toISOString() };
}

/**
 * Request metadata carrying a token for `sub` (docs/wire-compatibility.md#token-metadata) and, optionally, a
 * registry path (docs/wire-compatibility.md#registry-path-metadata).
 */
export function callMetadata(sub: string, withPath = true, signer?: KeyObject): grpc.Metadata {
  const t = jwt(sub, 600_000, signer);
  const md = new grpc.Metadata();
  md.set("nsm-client-token", t.token);
  md.set("nsm-client-token-expires", t.expires);
  if (withPath) md.set("path", JSON.stringify({ Index: 0, PathSegments: [{ token: t.token }] }));
  return md;
}

/** A unary call as a promise; `onHeader` receives the response metadata. */
export function unary<R>(
  c: PlainClient,
  method: string,
  req: unknown,
  md: grpc.Metadata,
  onHeader?: (m: grpc.Metadata) => void,
): Promise<R> {
  return new Promise((resolve, reject) => {
    const call = c[method]?.call(c, req, md, (err: grpc.ServiceError | null, res: R) => (err ? reject(err) : resolve(res))) as
      | grpc.ClientUnaryCall
      | undefined;
    if (onHeader) call?.on("metadata", onHeader);
  });
}

/** A server stream read one message at a time. */
export class Stream<M> {
  private readonly items: M[] = [];
  private waiters: Array<() => void> = [];
  private ended = false;
  private error: grpc.ServiceError | undefined;
  readonly call: grpc.ClientReadableStream<M>;
  constructor(c: PlainClient, method: string, req: unknown, md: grpc.Metadata) {
    this.call = c[method]?.call(c, req, md) as grpc.ClientReadableStream<M>;
    this.call.on("data", (m: M) => this.push(() => this.items.push(m)));
    this.call.on("error", (e: grpc.ServiceError) => this.push(() => (this.error = e)));
    this.call.on("end", () => this.push(() => (this.ended = true)));
  }
  private push(f: () => void): void {
    f();
    for (const w of this.waiters.splice(0)) w();
  }
  private async wait(): Promise<void> {
    await new Promise<void>((r) => this.waiters.push(r));
  }
  /** The next message; rejects when the stream ends or fails first. */
  async next(): Promise<M> {
    for (;;) {
      const m = this.items.shift();
      if (m !== undefined) return m;
      if (this.error) throw this.error;
      if (this.ended) throw new Error("stream ended");
      await this.wait();
    }
  }
  /** Every message until the end of the stream (for watch=false). */
  async all(): Promise<M[]> {
    while (!this.ended && !this.error) await this.wait();
    if (this.error && this.error.code !== grpc.status.OK) throw this.error;
    return this.items.splice(0);
  }
  /** Cancels the call. */
  cancel(): void {
    this.call.cancel();
  }
}

/** A spawned cmd-registry. */
export interface Registry {
  url: string;
  target: string;
  child: ChildProcess;
  output(): string;
}

const children = new Set<ChildProcess>();

/** The environment without any variable the program reads, plus `vars`. */
function envWith(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of config.names()) delete env[name];
  return { ...env, NSM_LOG_LEVEL: "INFO", ...vars };
}

/** Spawns cmd-registry on a free loopback port and resolves once it logs that it serves. */
export async function startRegistry(vars: Record<string, string> = {}, port?: number): Promise<Registry> {
  const p = port ?? (await freePort());
  const url = `tcp://127.0.0.1:${p}`;
  const child = spawn(process.execPath, [bin], { env: envWith({ NSM_LISTEN_ON: url, ...vars }), stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let out = "";
  child.stdout?.setEncoding("utf8");
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (s: string) => (out += s));
  await new Promise<void>((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`cmd-registry exited with ${code}: ${out}`));
    child.once("exit", onExit);
    child.stdout?.on("data", (s: string) => {
      out += s;
      if (out.includes('"msg":"cmd-registry serving"')) {
        child.off("exit", onExit);
        resolve();
      }
    });
  });
  return { url, target: `127.0.0.1:${p}`, child, output: () => out };
}

/** Kills one registry (SIGKILL unless told otherwise) and waits for it to exit. */
export async function kill(r: Registry, signal: NodeJS.Signals = "SIGKILL"): Promise<number | null> {
  children.delete(r.child);
  if (r.child.exitCode !== null || r.child.signalCode !== null) return r.child.exitCode;
  const exited = once(r.child, "exit");
  r.child.kill(signal);
  const [code] = (await exited) as [number | null];
  return code;
}

/** Kills every registry still running (afterEach). */
export async function stopAll(): Promise<void> {
  await Promise.all(
    [...children].map(async (c) => {
      children.delete(c);
      if (c.exitCode !== null || c.signalCode !== null) return;
      const exited = once(c, "exit");
      c.kill("SIGKILL");
      await exited;
    }),
  );
}

/** How many spawned registries are still tracked (afterEach asserts 0). */
export function running(): number {
  return children.size;
}
