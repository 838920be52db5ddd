/**
 * The certificate-mode mesh of the hostile suite: a test PKI (trust domain `hostile.nsm-ts`) with a certificate per
 * program and two workloads, alice (the canary) and mallory (the attacker, valid certificate of her own), plus an
 * outsider from another CA; the real programs started with their certificate files (mTLS everywhere); channel
 * credentials for each kind of caller; tokens mallory can forge; and raw HTTP/2 sessions for slow and idle streams.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import * as http2 from "node:http2";
import * as tls from "node:tls";
import { freePort } from "@nsm-ts/testing/net";
import { type TestLeaf, TestPki } from "@nsm-ts/testing/pki";
import type { Program, ProgramSet } from "../programs/harness.js";
import { grpc } from "./hostile.fixture.js";

/** Trust domain of the suite's certificates. */
export const TRUST_DOMAIN = "spiffe://hostile.nsm-ts";

/** The started mesh and the files of every identity. */
export interface SecureMesh {
  pki: TestPki;
  /** Another CA's PKI: its leaves are valid certificates the mesh does not trust. */
  outsiderPki: TestPki;
  leaves: Record<"registry" | "nsmgr" | "forwarder" | "nse" | "alice" | "mallory" | "outsider", TestLeaf>;
  registry: Program;
  nsmgr: Program;
  forwarder: Program;
  endpoint: Program;
  registryUrl: string;
  /** The nsmgr's node socket (local clients, the endpoint and the forwarder use it). */
  nsmgrSocket: string;
  forwarderSocket: string;
  endpointSocket: string;
  remove(): void;
}

const tlsVars = (pki: TestPki, leaf: TestLeaf): Record<string, string> => ({
  NSM_TLS_CERT_FILE: leaf.certFile,
  NSM_TLS_KEY_FILE: leaf.keyFile,
  NSM_TLS_CA_FILE: pki.caFile,
});

/** Builds the PKI and starts registry, nsmgr-1, forwarder-1 (NOOP) and nse-1 for `service`, each with its own certificate. */
export async function startSecureMesh(set: ProgramSet, service: string): Promise<SecureMesh> {
  const pki = new TestPki("hostile-ca");
  const outsiderPki = new TestPki("outsider-ca");
  const leaf = (name: string): TestLeaf => pki.leaf(name, { san: `URI:${TRUST_DOMAIN}/${name}` });
  const leaves = {
    registry: leaf("registry"),
    nsmgr: leaf("nsmgr-1"),
    forwarder: leaf("forwarder-1"),
    nse: leaf("nse-1"),
    alice: leaf("alice"),
    mallory: leaf("mallory"),
    outsider: outsiderPki.leaf("outsider", { san: `URI:${TRUST_DOMAIN}/outsider` }),
  };
  const remove = (): void => {
    pki.remove();
    outsiderPki.remove();
  };
  try {
    const registryUrl = `tcp://127.0.0.1:${await freePort()}`;
    const nsmgrSocket = set.socket("nsm-1.sock");
    const nsmgrTcp = `tcp://127.0.0.1:${await freePort()}`;
    // The nsmgr dials the registry lazily, so both start at once; the forwarder and endpoint need the nsmgr.
    const [registry, nsmgr] = await Promise.all([
      set.start(
        "cmd-registry",
        { NSM_NAME: "registry", NSM_LISTEN_ON: registryUrl, ...tlsVars(pki, leaves.registry) },
        "cmd-registry serving",
        "registry",
      ),
      set.start(
        "cmd-nsmgr",
        {
          NSM_NAME: "nsmgr-1",
          NODE_NAME: "node-1",
          NSM_LISTEN_ON: `${nsmgrSocket},${nsmgrTcp}`,
          NSM_REGISTRY_URL: registryUrl,
          // Short, so the stalled calls without a deadline end within the barrage (default 30 s).
          NSM_RECEIVE_TIMEOUT: `${STALLED_RECEIVE_TIMEOUT_MS}ms`,
          ...tlsVars(pki, leaves.nsmgr),
        },
        "cmd-nsmgr serving",
        "nsmgr-1",
      ),
    ]);
    const forwarderSocket = set.socket("forwarder-1.sock");
    const endpointSocket = set.socket("nse-1.sock");
    const [forwarder, endpoint] = await Promise.all([
      set.start(
        "cmd-forwarder",
        {
          NSM_NAME: "forwarder-1",
          NSM_CONNECT_TO: nsmgrSocket,
          NSM_LISTEN_ON: forwarderSocket,
          NSM_FORWARDER_MECHANISM: "NOOP",
          ...tlsVars(pki, leaves.forwarder),
        },
        "cmd-forwarder serving",
        "forwarder-1",
      ),
      set.start(
        "cmd-endpoint",
        {
          NSM_NAME: "nse-1",
          NSM_CONNECT_TO: nsmgrSocket,
          NSM_LISTEN_ON: endpointSocket,
          NSM_SERVICE_NAMES: service,
          NSM_LABELS: "app:canary",
          NSM_CIDR_PREFIX: "169.254.10.0/24",
          ...tlsVars(pki, leaves.nse),
        },
        "cmd-endpoint serving",
        "nse-1",
      ),
    ]);
    return {
      pki,
      outsiderPki,
      leaves,
      registry,
      nsmgr,
      forwarder,
      endpoint,
      registryUrl,
      nsmgrSocket,
      forwarderSocket,
      endpointSocket,
      remove,
    };
  } catch (err) {
    remove();
    throw err;
  }
}

/** Workload certificates name a SPIFFE ID and no host; the chain is still verified against the CA. */
const anyHost = { checkServerIdentity: (): undefined => undefined };

/** mTLS channel credentials presenting `leaf`, trusting `caFile`. */
export function mtls(caFile: string, leaf: TestLeaf): () => grpc.ChannelCredentials {
  const ca = readFileSync(caFile);
  const key = readFileSync(leaf.keyFile);
  const cert = readFileSync(leaf.certFile);
  return () => grpc.credentials.createSsl(ca, key, cert, anyHost);
}

/** TLS without a client certificate (the servers require one). */
export function noClientCert(caFile: string): () => grpc.ChannelCredentials {
  const ca = readFileSync(caFile);
  return () => grpc.credentials.createSsl(ca, null, null, anyHost);
}

const b64 = (x: object | Buffer): string => (Buffer.isBuffer(x) ? x : Buffer.from(JSON.stringify(x))).toString("base64url");

/** A JWT with exactly `header` and `claims`, ES256-signed by `key` (or unsigned when `key` is undefined). */
export function jwt(header: object, claims: object, key?: KeyObject): string {
  const input = `${b64(header)}.${b64(claims)}`;
  if (!key) return `${input}.`;
  return `${input}.${b64(sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" }))}`;
}

/** The private key of a leaf. */
export function keyOf(leaf: TestLeaf): KeyObject {
  return createPrivateKey(readFileSync(leaf.keyFile));
}

/** A P-256 key no certificate belongs to. */
export function strayKey(): KeyObject {
  return generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
}

/** A raw HTTP/2 session to a unix socket or tcp URL over TLS with `leaf` (or none), for slow and idle streams. */
export function rawSession(target: string, caFile: string, leaf?: TestLeaf): http2.ClientHttp2Session {
  const opts: tls.ConnectionOptions = {
    ca: readFileSync(caFile),
    ...(leaf ? { key: readFileSync(leaf.keyFile), cert: readFileSync(leaf.certFile) } : {}),
    ALPNProtocols: ["h2"],
    servername: "localhost",
    ...anyHost,
  };
  const session = http2.connect("https://localhost", {
    createConnection: () =>
      target.startsWith("unix://")
        ? tls.connect({ ...opts, path: target.slice("unix://".length) })
        : tls.connect({ ...opts, host: "127.0.0.1", port: Number(target.slice(target.lastIndexOf(":") + 1)) }),
  });
  session.on("error", () => undefined);
  return session;
}

/** The nsmgr's receive timeout (`NSM_RECEIVE_TIMEOUT`) in the secure mesh: what ends a stalled call without a deadline. */
export const STALLED_RECEIVE_TIMEOUT_MS = 8_000;

/**
 * A slow call: a gRPC request whose body never completes (`sent` of the 5-byte frame header only), with a
 * `grpc-timeout` unless `timeoutMs` is undefined; resolves with the grpc-status the server ends it with (or how the
 * stream ended).
 */
export function stalledCall(session: http2.ClientHttp2Session, path: string, timeoutMs: number | undefined, sent: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...(timeoutMs === undefined ? {} : { "grpc-timeout": `${timeoutMs}m` }),
    });
    let status: string | undefined;
    const done = (why: string): void => {
      resolve(status ?? why);
      if (!stream.closed) stream.close();
    };
    const seen = (h: http2.IncomingHttpHeaders): void => {
      if (h["grpc-status"] === undefined) return;
      status = String(h["grpc-status"]);
      done(status);
    };
    stream.on("response", seen);
    stream.on("trailers", seen);
    stream.on("data", () => undefined);
    stream.on("error", (e: Error) => done(`stream error ${e.message}`));
    stream.on("close", () => done(`closed (rst ${stream.rstCode})`));
    stream.write(sent);
  });
}
