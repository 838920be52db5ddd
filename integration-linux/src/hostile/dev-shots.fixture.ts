/**
 * The fixed hostile calls of the dev-mode suite (hostile.test.ts): oversized bodies, absurd timestamps, spoofed
 * paths and foreign Close/Register/Unregister of the canary's ids, plus the well-formed messages truncation
 * starts from.
 */
import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { HealthCheckRequestSchema } from "@nsm-ts/api/health";
import { type Connection, ConnectionSchema, MonitorScopeSelectorSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import {
  NetworkServiceEndpointQuerySchema,
  NetworkServiceEndpointSchema,
  NetworkServiceQuerySchema,
  NetworkServiceSchema,
} from "@nsm-ts/api/registry";
import { mechanisms } from "@nsm-ts/sdk/networkservice";
import { M } from "./hostile.fixture.js";

/** `init` encoded as `schema`. */
export const bin = <D extends DescMessage>(schema: D, init: MessageInitShape<D>): Uint8Array => toBinary(schema, create(schema, init));

/** What a well-formed message of each method looks like (the base of truncation and of the token kinds). */
export function validMessages(): Record<string, Uint8Array> {
  const noop = mechanisms.noop.mechanism();
  const conn = {
    id: randomUUID(),
    networkService: "svc-hostile",
    labels: { app: "hostile" },
    path: { index: 0, pathSegments: [{ name: "attacker", id: randomUUID(), token: "not-a-jwt", expires: { seconds: 4_000_000_000n } }] },
  };
  const nse = {
    name: "nse-hostile",
    networkServiceNames: ["svc-hostile"],
    url: "tcp://127.0.0.1:1",
    networkServiceLabels: { "svc-hostile": { labels: { a: "b" } } },
  };
  return {
    [M.nsRegister]: bin(NetworkServiceSchema, {
      name: "svc-hostile",
      payload: "ETHERNET",
      matches: [{ sourceSelector: { a: "b" }, routes: [{ destinationSelector: { c: "d" } }] }],
    }),
    [M.nsFind]: bin(NetworkServiceQuerySchema, { networkService: { name: "svc-hostile" }, watch: false }),
    [M.nsUnregister]: bin(NetworkServiceSchema, { name: "svc-hostile" }),
    [M.nseRegister]: bin(NetworkServiceEndpointSchema, nse),
    [M.nseFind]: bin(NetworkServiceEndpointQuerySchema, { networkServiceEndpoint: { networkServiceNames: ["svc-hostile"] }, watch: false }),
    [M.nseUnregister]: bin(NetworkServiceEndpointSchema, { name: "nse-hostile" }),
    [M.request]: bin(NetworkServiceRequestSchema, { connection: conn, mechanismPreferences: [noop] }),
    [M.close]: bin(ConnectionSchema, conn),
    [M.monitor]: bin(MonitorScopeSelectorSchema, { pathSegments: [{ id: conn.id }] }),
    [M.check]: bin(HealthCheckRequestSchema, { service: "" }),
    [M.watch]: bin(HealthCheckRequestSchema, { service: "" }),
  };
}

/** A call template: where it goes and what it sends. */
export interface Aim {
  target: string;
  path: string;
  bytes: Uint8Array;
}

/** The programs' addresses and the canary's live connection. */
export interface DevTargets {
  registryUrl: string;
  nodeSocket: string;
  endpointSocket: string;
  forwarderSocket: string;
  canary: Connection;
}

/** The fixed shots, encoded once. */
export function devShots(d: DevTargets): { oversized: Aim[]; timestamps: Aim[]; spoofed: Aim[]; foreign: Aim[] } {
  const noop = mechanisms.noop.mechanism();
  // Oversized and absurd bodies, encoded once.
  const mb = "x".repeat(1024 * 1024);
  const manyLabels: Record<string, string> = {};
  for (let i = 0; i < 100_000; i++) manyLabels[`k${i}`] = "v";
  const big5 = new Uint8Array(5 * 1024 * 1024).fill(0x0a);
  const oversized: Aim[] = [
    {
      target: d.nodeSocket,
      path: M.request,
      bytes: bin(NetworkServiceRequestSchema, { connection: { id: mb, networkService: "svc-canary" } }),
    },
    {
      target: d.endpointSocket,
      path: M.request,
      bytes: bin(NetworkServiceRequestSchema, { connection: { id: randomUUID(), networkService: "svc-canary", labels: manyLabels } }),
    },
    { target: d.nodeSocket, path: M.close, bytes: bin(ConnectionSchema, { id: randomUUID(), labels: { big: mb } }) },
    {
      target: d.registryUrl,
      path: M.nseRegister,
      bytes: bin(NetworkServiceEndpointSchema, { name: mb, networkServiceNames: ["svc-hostile"] }),
    },
    {
      target: d.registryUrl,
      path: M.nsRegister,
      bytes: bin(NetworkServiceSchema, { name: "svc-hostile", matches: [{ sourceSelector: manyLabels }] }),
    },
    {
      target: d.nodeSocket,
      path: M.nseRegister,
      bytes: bin(NetworkServiceEndpointSchema, { name: "nse-hostile", networkServiceLabels: { svc: { labels: manyLabels } } }),
    },
    { target: d.registryUrl, path: M.nseFind, bytes: bin(NetworkServiceEndpointQuerySchema, { networkServiceEndpoint: { name: mb } }) },
    {
      target: d.nodeSocket,
      path: M.monitor,
      bytes: bin(MonitorScopeSelectorSchema, { networkServices: Array.from({ length: 100_000 }, (_, i) => `s${i}`) }),
    },
    { target: d.registryUrl, path: M.nsRegister, bytes: big5 },
    { target: d.nodeSocket, path: M.request, bytes: big5 },
    { target: d.endpointSocket, path: M.close, bytes: big5 },
  ];
  const absurdTimes = [
    { seconds: 0n, nanos: 1_000_000_000 },
    { seconds: 1n, nanos: 2_147_483_647 },
    { seconds: -1_000_000_000_000_000n, nanos: 0 },
    { seconds: 1_000_000_000_000_000n, nanos: 0 },
    { seconds: 0n, nanos: -1 },
  ];
  const timestamps: Aim[] = absurdTimes.flatMap((t) => [
    {
      target: d.registryUrl,
      path: M.nseRegister,
      bytes: bin(NetworkServiceEndpointSchema, {
        name: `nse-time-${t.seconds}`,
        networkServiceNames: ["svc-hostile"],
        url: "tcp://127.0.0.1:1",
        expirationTime: t,
      }),
    },
    {
      target: d.nodeSocket,
      path: M.nseRegister,
      bytes: bin(NetworkServiceEndpointSchema, { name: `nse-time-${t.seconds}`, url: "tcp://127.0.0.1:1", initialRegistrationTime: t }),
    },
    {
      target: d.nodeSocket,
      path: M.request,
      bytes: bin(NetworkServiceRequestSchema, {
        connection: {
          id: randomUUID(),
          networkService: "svc-canary",
          path: { pathSegments: [{ name: "nsc", id: randomUUID(), expires: t }] },
        },
        mechanismPreferences: [noop],
      }),
    },
    {
      target: d.endpointSocket,
      path: M.close,
      bytes: bin(ConnectionSchema, { id: randomUUID(), path: { pathSegments: [{ name: "x", id: "y", expires: t }] } }),
    },
  ]);
  // Spoofed paths: impossible indexes, too many segments, segments claiming to be the canary's hops.
  const segs = d.canary.path?.pathSegments ?? [];
  const spoofed: Aim[] = [
    { index: 5, pathSegments: [{ name: "nsc", id: randomUUID() }] },
    { index: 4_294_967_295, pathSegments: [{ name: "nsc", id: randomUUID() }] },
    { index: 0, pathSegments: Array.from({ length: 70 }, (_, i) => ({ name: `hop-${i}`, id: randomUUID() })) },
    { index: 1, pathSegments: segs.map((s) => ({ name: s.name, id: s.id, token: "forged" })) },
    { index: 2, pathSegments: segs.map((s) => ({ name: s.name, id: s.id })) },
    { index: 0, pathSegments: [{ name: "", id: "" }] },
    { index: 1, pathSegments: [{ name: "nsmgr-1", id: segs[1]?.id ?? "x", token: "forged" }] },
  ].flatMap((path) =>
    [d.nodeSocket, d.endpointSocket, d.forwarderSocket].flatMap((target) => [
      {
        target,
        path: M.request,
        bytes: bin(NetworkServiceRequestSchema, {
          connection: { id: randomUUID(), networkService: "svc-canary", path },
          mechanismPreferences: [noop],
        }),
      },
      { target, path: M.close, bytes: bin(ConnectionSchema, { id: d.canary.id, networkService: "svc-canary", path }) },
    ]),
  );
  // Foreign Close / Unregister / Register of the canary's ids, without its tokens.
  const stripped = segs.map((s) => ({ name: s.name, id: s.id, token: "forged", expires: s.expires }));
  const foreign: Aim[] = [
    ...[d.nodeSocket, d.endpointSocket, d.forwarderSocket].flatMap((target) =>
      segs.map((_, index) => ({
        target,
        path: M.close,
        bytes: bin(ConnectionSchema, {
          id: segs[index]?.id ?? d.canary.id,
          networkService: "svc-canary",
          path: { index, pathSegments: stripped },
        }),
      })),
    ),
    ...[d.registryUrl, d.nodeSocket].flatMap((target) => [
      { target, path: M.nseUnregister, bytes: bin(NetworkServiceEndpointSchema, { name: "nse-1" }) },
      { target, path: M.nseUnregister, bytes: bin(NetworkServiceEndpointSchema, { name: "forwarder-1" }) },
      { target, path: M.nsUnregister, bytes: bin(NetworkServiceSchema, { name: "svc-canary" }) },
      {
        target,
        path: M.nseRegister,
        bytes: bin(NetworkServiceEndpointSchema, { name: "nse-1", networkServiceNames: ["svc-canary"], url: "tcp://127.0.0.1:1" }),
      },
      {
        target,
        path: M.nsRegister,
        bytes: bin(NetworkServiceSchema, {
          name: "svc-canary",
          payload: "IP",
          matches: [{ routes: [{ destinationSelector: { none: "x" } }] }],
        }),
      },
    ]),
  ];
  return { oversized, timestamps, spoofed, foreign };
}
