/**
 * The hostile calls of the certificate-mode suite, grouped by kind, each with the codes it may end with. Mallory
 * has a valid certificate of the mesh's trust domain; what she sends is either malformed, or well-formed but not
 * hers to send (alice's connection, names registered by others, a path claiming alice, tokens that are not valid
 * hers). Other callers have no client certificate, another CA's, or no TLS at all.
 */
import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { HealthCheckRequestSchema } from "@nsm-ts/api/health";
import {
  type Connection,
  ConnectionSchema,
  MonitorScopeSelectorSchema,
  NetworkServiceRequestSchema,
  PathSchema,
} from "@nsm-ts/api/networkservice";
import { NetworkServiceEndpointQuerySchema, NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import type { Identity } from "@nsm-ts/base/identity";
import { createTokenGenerator, formatExpires, tokenMetadata } from "@nsm-ts/base/token";
import { mechanisms } from "@nsm-ts/sdk/networkservice";
import { grpc, M, type RawCall, STREAMS } from "./hostile.fixture.js";
import { jwt, keyOf, type SecureMesh, strayKey, TRUST_DOMAIN } from "./secure-mesh.fixture.js";

const S = grpc.status;

/** Who makes a call: mallory over mTLS, or a caller the TLS layer must refuse. */
export type Caller = "mallory" | "no-cert" | "outsider" | "plaintext";

/** One planned call. */
export interface Shot extends RawCall {
  kind: string;
  target: string;
  caller: Caller;
  /** A new channel (a new TLS handshake) for this call alone. */
  fresh?: boolean;
}

/** A call template without its kind. */
type Aim = Omit<Shot, "kind" | "caller" | "stream"> & { stream?: boolean };

export { M, STREAMS };

const DECODE = [S.INVALID_ARGUMENT, S.PERMISSION_DENIED, S.NOT_FOUND, S.CANCELLED, S.OK, S.UNAUTHENTICATED, S.INTERNAL];
const DENIED = [S.PERMISSION_DENIED];
const TLS_REFUSED = [S.UNAVAILABLE];

/** The codes each kind may end with; any other code fails the test. */
export const EXPECTED: Record<string, grpc.status[]> = {
  "random-bytes": DECODE,
  truncated: DECODE,
  // DEADLINE_EXCEEDED: a 5 MB body that a loaded machine takes longer to receive than the nsmgr's receive timeout.
  oversized: [S.INVALID_ARGUMENT, S.RESOURCE_EXHAUSTED, S.CANCELLED, S.DEADLINE_EXCEEDED],
  "absurd-fields": [S.INVALID_ARGUMENT, S.PERMISSION_DENIED],
  "spoofed-segment": DENIED,
  "foreign-close": DENIED,
  "foreign-refresh": DENIED,
  "foreign-monitor": DENIED,
  "foreign-registry": DENIED,
  "forged-token": [S.PERMISSION_DENIED, S.INVALID_ARGUMENT, S.UNAUTHENTICATED],
  // Accepted by the registry today (see `misaddressed` below); refusing it would be fine too.
  "misaddressed-token": [S.OK, S.PERMISSION_DENIED],
  "churn/mtls": [S.OK],
  "churn/no-cert": TLS_REFUSED,
  "churn/outsider": TLS_REFUSED,
  "churn/plaintext": TLS_REFUSED,
  "watch-cancelled": [S.CANCELLED, S.OK],
  health: [S.OK, S.CANCELLED, S.NOT_FOUND, S.INVALID_ARGUMENT],
};

/** Policy names a denial of each kind must name (checked on the recorded sample details). */
export const DENIAL_NAMES: Record<string, RegExp> = {
  "spoofed-segment": /first_segment_caller/,
  "foreign-close": /belongs to|first_segment_caller/,
  "foreign-refresh": /belongs to|first_segment_caller/,
  "foreign-monitor": /service_connection/,
  "foreign-registry": /registry_client_allowed/,
};

/** Index of the token addressed to another server in `forged`. */
const MISADDRESSED = 4;

const bin = <D extends DescMessage>(schema: D, init: MessageInitShape<D>): Uint8Array => toBinary(schema, create(schema, init));

/** What the shots are built from. */
export interface ShotInputs {
  mesh: SecureMesh;
  mallory: Identity;
  /** Alice's live connection as her client holds it. */
  alice: Connection;
  service: string;
}

/** The fixed shots per kind (the barrage repeats them) and the well-formed messages truncation starts from. */
export interface Arsenal {
  fixed: Record<string, Aim[]>;
  valid: Record<string, Uint8Array>;
  /** Registry targets and NetworkService targets, with a short label each. */
  targets: { registry: string[]; ns: string[]; label(t: string): string };
}

/** Builds every fixed shot (tokens are signed now and live for the whole run). */
export async function arsenal({ mesh, mallory, alice, service }: ShotInputs): Promise<Arsenal> {
  const noop = mechanisms.noop.mechanism();
  const { registryUrl, nsmgrSocket, forwarderSocket, endpointSocket } = mesh;
  const ids: Record<string, string> = {
    [registryUrl]: `${TRUST_DOMAIN}/registry`,
    [nsmgrSocket]: `${TRUST_DOMAIN}/nsmgr-1`,
    [forwarderSocket]: `${TRUST_DOMAIN}/forwarder-1`,
    [endpointSocket]: `${TRUST_DOMAIN}/nse-1`,
  };
  const aud = (t: string): string => ids[t] ?? "";
  const gen = createTokenGenerator(mallory, { maxTokenLifetimeMs: 10 * 60_000 });
  const asAlice = createTokenGenerator({ ...mallory, spiffeId: `${TRUST_DOMAIN}/alice` }, { maxTokenLifetimeMs: 10 * 60_000 });
  const own: Record<string, Record<string, string>> = {};
  for (const t of Object.keys(ids)) own[t] = tokenMetadata(await gen({ spiffeId: aud(t) }));
  const ownMd = (t: string): Record<string, string> => own[t] ?? {};

  // Forged per-RPC tokens, per target: wrong key, alg none, expired, not yet valid, addressed elsewhere, junk.
  const now = Math.floor(Date.now() / 1000);
  const mKey = keyOf(mesh.leaves.mallory);
  const stray = strayKey();
  const future = formatExpires(new Date(Date.now() + 3_600_000));
  const forged = (t: string): Array<Record<string, string>> => {
    const claims = { sub: mallory.spiffeId, aud: [aud(t)] };
    const md = (token: string): Record<string, string> => ({ "nsm-client-token": token, "nsm-client-token-expires": future });
    return [
      md(jwt({ alg: "ES256", typ: "JWT" }, { ...claims, exp: now + 600 }, stray)),
      md(jwt({ alg: "none", typ: "JWT" }, { ...claims, exp: now + 600 })),
      md(jwt({ alg: "ES256", typ: "JWT" }, { ...claims, exp: now - 60 }, mKey)),
      md(jwt({ alg: "ES256", typ: "JWT" }, { ...claims, exp: now + 600, nbf: now + 300 }, mKey)),
      md(jwt({ alg: "ES256", typ: "JWT" }, { ...claims, aud: [`${TRUST_DOMAIN}/elsewhere`], exp: now + 600 }, mKey)),
      md(jwt({ alg: "HS256", typ: "JWT" }, { ...claims, exp: now + 600 }, mKey)),
      md("x".repeat(6_000)),
      { "nsm-client-token-expires": "9999-99-99T99:99:99Z" },
    ];
  };
  const newConn = (): Uint8Array => {
    const id = randomUUID();
    return bin(NetworkServiceRequestSchema, {
      connection: { id, networkService: service, path: { index: 0, pathSegments: [{ name: "mallory", id }] } },
      mechanismPreferences: [noop],
    });
  };
  const nsTargets = [nsmgrSocket, forwarderSocket, endpointSocket];
  // Mallory's own valid token addressed to another server: NetworkService servers refuse it (tokens_chained); the
  // registry, like upstream's, does not check the audience, and the token grants nothing she could not get anyway.
  const misaddressed: Aim[] = [
    {
      target: registryUrl,
      path: M.nseRegister,
      bytes: bin(NetworkServiceEndpointSchema, {
        name: "nse-mallory-misaddressed",
        networkServiceNames: [service],
        url: "tcp://127.0.0.1:1",
      }),
      metadata: forged(registryUrl)[MISADDRESSED] ?? {},
    },
  ];
  const forgedShots: Aim[] = [
    ...nsTargets.flatMap((target) => forged(target).map((metadata) => ({ target, path: M.request, bytes: newConn(), metadata }))),
    ...forged(registryUrl)
      .filter((_, i) => i !== MISADDRESSED)
      .map((metadata, i) => ({
        target: registryUrl,
        path: M.nseRegister,
        bytes: bin(NetworkServiceEndpointSchema, { name: `nse-mallory-${i}`, networkServiceNames: [service], url: "tcp://127.0.0.1:1" }),
        metadata,
      })),
    ...forged(nsmgrSocket).map((metadata) => ({ target: nsmgrSocket, path: M.close, bytes: bin(ConnectionSchema, alice), metadata })),
  ];

  // Alice's connection as each hop holds it, sent by mallory with her own valid token.
  const segs = alice.path?.pathSegments ?? [];
  const asHop = (index: number, labels?: Record<string, string>): Connection =>
    create(ConnectionSchema, {
      ...alice,
      id: segs[index]?.id ?? alice.id,
      ...(labels ? { labels } : {}),
      path: create(PathSchema, { index, pathSegments: segs.map((s) => ({ ...s })) }),
    });
  const hops = [nsmgrSocket, forwarderSocket, endpointSocket];
  const foreignClose: Aim[] = hops.map((target, i) => ({
    target,
    path: M.close,
    bytes: bin(ConnectionSchema, asHop(i)),
    metadata: ownMd(target),
  }));
  const foreignRefresh: Aim[] = hops.map((target, i) => ({
    target,
    path: M.request,
    bytes: bin(NetworkServiceRequestSchema, { connection: asHop(i, { app: "mallory" }), mechanismPreferences: [noop] }),
    metadata: ownMd(target),
  }));
  const foreignMonitor: Aim[] = hops.flatMap((target) => [
    { target, path: M.monitor, stream: true, bytes: bin(MonitorScopeSelectorSchema, {}), metadata: ownMd(target) },
    ...segs.map((s) => ({
      target,
      path: M.monitor,
      stream: true,
      bytes: bin(MonitorScopeSelectorSchema, { pathSegments: [{ id: s.id }] }),
      metadata: ownMd(target),
    })),
  ]);
  const foreignRegistry: Aim[] = [registryUrl, nsmgrSocket].flatMap((target) => [
    { target, path: M.nseUnregister, bytes: bin(NetworkServiceEndpointSchema, { name: "nse-1" }), metadata: ownMd(target) },
    { target, path: M.nseUnregister, bytes: bin(NetworkServiceEndpointSchema, { name: "forwarder-1" }), metadata: ownMd(target) },
    { target, path: M.nsUnregister, bytes: bin(NetworkServiceSchema, { name: service }), metadata: ownMd(target) },
    {
      target,
      path: M.nseRegister,
      bytes: bin(NetworkServiceEndpointSchema, { name: "nse-1", networkServiceNames: [service], url: "tcp://127.0.0.1:1" }),
      metadata: ownMd(target),
    },
    {
      target,
      path: M.nsRegister,
      bytes: bin(NetworkServiceSchema, { name: service, payload: "IP", matches: [{ routes: [{ destinationSelector: { x: "y" } }] }] }),
      metadata: ownMd(target),
    },
  ]);

  // Paths whose first segment claims alice: her real segment, a token signed as alice, a segment named like hers.
  const claimAlice = (await asAlice({ spiffeId: mallory.spiffeId })).token;
  const aliceMd: Record<string, Record<string, string>> = {};
  for (const t of nsTargets) aliceMd[t] = tokenMetadata(await asAlice({ spiffeId: aud(t) }));
  const spoofPaths = [
    [{ name: segs[0]?.name ?? "nsc", id: segs[0]?.id ?? "a", token: segs[0]?.token ?? "" }, { name: "mallory" }],
    [{ name: "alice", id: randomUUID(), token: claimAlice }, { name: "mallory" }],
    [{ name: "alice", id: randomUUID(), token: claimAlice }, { name: "relay", token: claimAlice }, { name: "mallory" }],
  ];
  const spoofed: Aim[] = nsTargets.flatMap((target) => [
    ...spoofPaths.map((p) => {
      const pathSegments = p.map((s) => ({ ...s, id: "id" in s && s.id ? s.id : randomUUID() }));
      const id = pathSegments.at(-1)?.id ?? "";
      return {
        target,
        path: M.request,
        bytes: bin(NetworkServiceRequestSchema, {
          connection: { id, networkService: service, path: { index: pathSegments.length - 1, pathSegments } },
          mechanismPreferences: [noop],
        }),
        metadata: ownMd(target),
      };
    }),
    // Her own segment, but her per-RPC token signed as alice.
    {
      target,
      path: M.request,
      bytes: newConn(),
      metadata: aliceMd[target] ?? {},
    },
  ]);

  // Absurd sizes and values.
  const mb = "x".repeat(1024 * 1024);
  const manyLabels: Record<string, string> = {};
  for (let i = 0; i < 100_000; i++) manyLabels[`k${i}`] = "v";
  const oversized: Aim[] = [
    { target: nsmgrSocket, path: M.request, bytes: bin(NetworkServiceRequestSchema, { connection: { id: mb, networkService: service } }) },
    {
      target: endpointSocket,
      path: M.request,
      bytes: bin(NetworkServiceRequestSchema, { connection: { id: randomUUID(), networkService: service, labels: manyLabels } }),
    },
    { target: registryUrl, path: M.nseRegister, bytes: bin(NetworkServiceEndpointSchema, { name: mb, networkServiceNames: [service] }) },
    {
      target: nsmgrSocket,
      path: M.nsRegister,
      bytes: bin(NetworkServiceSchema, { name: service, matches: [{ sourceSelector: manyLabels }] }),
    },
    {
      target: registryUrl,
      path: M.nseFind,
      stream: true,
      bytes: bin(NetworkServiceEndpointQuerySchema, { networkServiceEndpoint: { name: mb } }),
    },
    { target: registryUrl, path: M.nsRegister, bytes: new Uint8Array(5 * 1024 * 1024).fill(0x0a) },
    { target: forwarderSocket, path: M.request, bytes: new Uint8Array(5 * 1024 * 1024).fill(0x0a) },
  ].map((a) => ({ ...a, metadata: ownMd(a.target) }));
  const absurd: Aim[] = [
    { seconds: 0n, nanos: 1_000_000_000 },
    { seconds: -1_000_000_000_000_000n, nanos: 0 },
    { seconds: 1_000_000_000_000_000n, nanos: 0 },
  ].flatMap((t) => [
    {
      target: registryUrl,
      path: M.nseRegister,
      bytes: bin(NetworkServiceEndpointSchema, { name: `nse-time-${t.seconds}`, url: "tcp://127.0.0.1:1", expirationTime: t }),
      metadata: ownMd(registryUrl),
    },
    ...nsTargets.map((target) => ({
      target,
      path: M.request,
      bytes: bin(NetworkServiceRequestSchema, {
        connection: { id: "c", networkService: service, path: { pathSegments: [{ name: "mallory", id: "c", expires: t }] } },
        mechanismPreferences: [noop],
      }),
      metadata: ownMd(target),
    })),
    ...nsTargets.map((target) => ({
      target,
      path: M.request,
      bytes: bin(NetworkServiceRequestSchema, {
        connection: { id: "c", networkService: service, path: { index: 4_294_967_295, pathSegments: [{ name: "mallory", id: "c" }] } },
      }),
      metadata: ownMd(target),
    })),
  ]);

  const valid: Record<string, Uint8Array> = {
    [M.nseRegister]: bin(NetworkServiceEndpointSchema, { name: "nse-hostile", networkServiceNames: [service], url: "tcp://127.0.0.1:1" }),
    [M.nseFind]: bin(NetworkServiceEndpointQuerySchema, { networkServiceEndpoint: { networkServiceNames: [service] } }),
    [M.nsRegister]: bin(NetworkServiceSchema, { name: "svc-hostile", payload: "ETHERNET" }),
    [M.nseUnregister]: bin(NetworkServiceEndpointSchema, { name: "nse-hostile" }),
    [M.request]: newConn(),
    [M.close]: bin(ConnectionSchema, alice),
    [M.monitor]: bin(MonitorScopeSelectorSchema, { pathSegments: [{ id: alice.id }] }),
    [M.check]: bin(HealthCheckRequestSchema, { service: "" }),
  };
  const label = (t: string): string =>
    ({ [registryUrl]: "registry", [nsmgrSocket]: "nsmgr", [forwarderSocket]: "forwarder", [endpointSocket]: "endpoint" })[t] ?? t;
  return {
    fixed: {
      "forged-token": forgedShots,
      "misaddressed-token": misaddressed,
      "foreign-close": foreignClose,
      "foreign-refresh": foreignRefresh,
      "foreign-monitor": foreignMonitor,
      "foreign-registry": foreignRegistry,
      "spoofed-segment": spoofed,
      oversized,
      "absurd-fields": absurd,
    },
    valid,
    targets: { registry: [registryUrl, nsmgrSocket], ns: nsTargets, label },
  };
}
