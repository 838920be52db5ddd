/**
 * cmd-nsc's operator CLI: `list ns|nse`, `watch ns|nse` (through a registry's Find, with watch),
 * `list services` / `watch services` (the services API of a registry: frontends, backends with source and health,
 * reconcile status per node), `list connections` (the connections of the cmd-nsc clients running on this machine, CONNECTED or HEALING, from
 * their state files) and `watch connections` (through an nsmgr's MonitorConnections stream), printed as a
 * kubectl-like table or as JSON (`-o json`: one object for `list`, one line per event for `watch`).
 */

import { create, toJson } from "@bufbuild/protobuf";
import {
  type Connection,
  type ConnectionEvent,
  ConnectionEventType,
  ConnectionSchema,
  MonitorConnection,
  MonitorScopeSelectorSchema,
} from "@nsm-ts/api/networkservice";
import { type NetworkService, type NetworkServiceEndpoint, NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { realClock } from "@nsm-ts/base/clock";
import type { RunContext } from "@nsm-ts/base/config";
import { CallContext } from "@nsm-ts/base/context";
import { createClient, dial } from "@nsm-ts/base/grpc";
import { programIdentity } from "@nsm-ts/base/program";
import { tokenMetadata } from "@nsm-ts/base/token";
import { createRegistryClient, type RegistryEntry } from "@nsm-ts/sdk/registry";
import type { CliConfig } from "./cli-config.js";
import { runServicesCli } from "./cli-services.js";
import { type ClientState, readStates, stateText } from "./state.js";
import { summarize } from "./summary.js";
import { type CliOutput, formatTable, RowPrinter } from "./table.js";
import { watchConnectionEvents } from "./watch-connections.js";

export { type CliOutput, formatTable, RowPrinter } from "./table.js";

/** The subcommands. */
export const CLI_COMMANDS = ["list", "watch"] as const;

/** A parsed command line. */
export interface CliCommand {
  verb: "list" | "watch";
  resource: "ns" | "nse" | "connections" | "services";
  output: "table" | "json";
  /** --registry (ns, nse). */
  registry?: string;
  /** --nsmgr (watch connections). */
  nsmgr?: string;
  /** --state-dir (list connections). */
  stateDir?: string;
}

/** The usage text (`cmd-nsc list --help`). */
export const CLI_USAGE = `Usage:
  cmd-nsc list ns|nse [--registry URL] [-o table|json]
  cmd-nsc watch ns|nse [--registry URL] [-o table|json]
  cmd-nsc list connections [--state-dir DIR] [-o table|json]
  cmd-nsc watch connections [--nsmgr URL] [-o table|json]
  cmd-nsc list services [--registry URL] [-o table|json]
  cmd-nsc watch services [--registry URL] [-o table|json]
  cmd-nsc                 (no arguments: client mode, see cmd-nsc --help)

URLs are tcp://host:port or unix:///path; defaults come from the variables below.
`;

const RESOURCE_ALIASES: Readonly<Record<string, CliCommand["resource"]>> = {
  ns: "ns",
  networkservice: "ns",
  networkservices: "ns",
  nse: "nse",
  networkserviceendpoint: "nse",
  networkserviceendpoints: "nse",
  conn: "connections",
  connection: "connections",
  connections: "connections",
  svc: "services",
  service: "services",
  services: "services",
};

function isUrl(v: string): boolean {
  return /^tcp:\/\/.*:\d+$/.test(v) || /^unix:\/\/\//.test(v);
}

/** Parses the arguments after the program name; throws an Error with a usage message on anything wrong. */
export function parseCliArgs(argv: readonly string[]): CliCommand {
  const [verb, rawResource, ...rest] = argv;
  if (verb !== "list" && verb !== "watch") throw new Error(`unknown command ${JSON.stringify(verb)}: expected list or watch`);
  const resource = rawResource === undefined ? undefined : RESOURCE_ALIASES[rawResource.toLowerCase()];
  if (resource === undefined) {
    throw new Error(`${verb}: expected ns, nse, connections or services, got ${JSON.stringify(rawResource ?? "")}`);
  }
  const cmd: CliCommand = { verb, resource, output: "table" };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] as string;
    const eq = arg.indexOf("=");
    const flag = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (arg.startsWith("--") && eq > 0) return arg.slice(eq + 1);
      const v = rest[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "-o":
      case "--output": {
        const v = value();
        if (v !== "json" && v !== "table" && v !== "wide") throw new Error(`${flag}: expected table or json, got ${JSON.stringify(v)}`);
        cmd.output = v === "json" ? "json" : "table";
        break;
      }
      case "--registry": {
        if (resource === "connections") throw new Error("--registry does not apply to connections: use --nsmgr");
        const v = value();
        if (!isUrl(v)) throw new Error(`--registry: invalid URL ${JSON.stringify(v)}: expected tcp://host:port or unix:///path`);
        cmd.registry = v;
        break;
      }
      case "--nsmgr": {
        if (resource !== "connections") throw new Error("--nsmgr applies to connections only: use --registry");
        if (verb === "list") throw new Error("--nsmgr applies to watch connections: list connections reads --state-dir");
        const v = value();
        if (!isUrl(v)) throw new Error(`--nsmgr: invalid URL ${JSON.stringify(v)}: expected tcp://host:port or unix:///path`);
        cmd.nsmgr = v;
        break;
      }
      case "--state-dir": {
        if (verb !== "list" || resource !== "connections") throw new Error("--state-dir applies to list connections only");
        cmd.stateDir = value();
        break;
      }
      default:
        throw new Error(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  return cmd;
}

function labelsText(labels: Readonly<Record<string, string>>): string {
  const s = Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  return s === "" ? "<none>" : s;
}

/** Human time left until an expiry (`4m10s`, `expired`). */
export function age(ms: number): string {
  if (ms <= 0) return "expired";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ""}`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

/** Table columns of a network service. */
export const NS_HEADER = ["NAME", "PAYLOAD", "MATCHES"] as const;
/** One network service as a table row. */
export function nsRow(ns: NetworkService): string[] {
  return [ns.name, ns.payload || "<none>", String(ns.matches.length)];
}

/** Table columns of an endpoint. */
export const NSE_HEADER = ["NAME", "URL", "SERVICES", "LABELS", "EXPIRES"] as const;
/** One endpoint as a table row; `now` in epoch ms. */
export function nseRow(nse: NetworkServiceEndpoint, now: number): string[] {
  const labels: Record<string, string> = {};
  for (const l of Object.values(nse.networkServiceLabels)) Object.assign(labels, l.labels);
  const exp = nse.expirationTime ? Number(nse.expirationTime.seconds) * 1000 + Math.floor(nse.expirationTime.nanos / 1e6) : undefined;
  return [
    nse.name,
    nse.url,
    nse.networkServiceNames.join(",") || "<none>",
    labelsText(labels),
    exp === undefined ? "<never>" : age(exp - now),
  ];
}

/** Table columns of a connection event. */
export const CONNECTION_HEADER = ["EVENT", "ID", "SERVICE", "STATE", "MECHANISM", "SRC", "DST", "PATH"] as const;
/** One connection of a MonitorConnections event as a table row. */
export function connectionRow(event: string, conn: Connection): string[] {
  const s = summarize(conn);
  return [
    event,
    s.id,
    s.networkService,
    s.state,
    s.mechanism || "<none>",
    s.srcIpAddrs.join(",") || "<none>",
    s.dstIpAddrs.join(",") || "<none>",
    s.path.map((p) => p.name).join(" > "),
  ];
}

/** Table columns of `list connections`. */
export const CLIENT_CONNECTION_HEADER = ["NSC", "ID", "SERVICE", "ENDPOINT", "STATE", "SRC", "DST"] as const;
/** The rows of `list connections`: one per connection of each client, STATE `CONNECTED` or `HEALING (attempt n)`. */
export function clientConnectionRows(states: readonly ClientState[]): string[][] {
  return states.flatMap((s) =>
    s.connections.map(({ connection: c, heal }) => [
      s.name,
      c.id,
      c.networkService,
      c.networkServiceEndpointName || "<none>",
      stateText(heal),
      c.srcIpAddrs.join(",") || "<none>",
      c.dstIpAddrs.join(",") || "<none>",
    ]),
  );
}

/** `list connections`: reads the state files of the clients running here; no identity or network needed. */
function listClientConnections(cmd: CliCommand, cfg: CliConfig, out: CliOutput): void {
  const states = readStates(cmd.stateDir ?? cfg.stateDir);
  if (cmd.output === "json") {
    const items = states.flatMap((s) => s.connections.map((c) => ({ nsc: s.name, pid: s.pid, updatedAt: s.updatedAt, ...c })));
    out.write(`${JSON.stringify({ items }, null, 2)}\n`);
    return;
  }
  const rows = clientConnectionRows(states);
  out.write(rows.length === 0 ? "No resources found.\n" : formatTable(CLIENT_CONNECTION_HEADER, rows));
}

/** Runs one CLI command until it is done (list) or `ctx.signal` aborts (watch). */
export async function runCli(cmd: CliCommand, cfg: CliConfig, ctx: RunContext, out: CliOutput): Promise<void> {
  if (cmd.verb === "list" && cmd.resource === "connections") return listClientConnections(cmd, cfg, out);
  const id = await programIdentity("cmd-nsc", cfg, ctx.log, { signal: ctx.signal });
  if (cmd.resource === "connections") return watchConnections(cmd, cfg, ctx, out, id);
  const url = cmd.registry ?? cfg.registryUrl;
  const channel = dial(url, id.dialOptions);
  try {
    if (cmd.resource === "services") return await runServicesCli(cmd, cfg, ctx, out, channel);
    const watch = cmd.verb === "watch";
    const callCtx = CallContext.create({
      log: ctx.log,
      signal: ctx.signal,
      ...(watch ? {} : { deadline: Date.now() + cfg.requestTimeout }),
    });
    if (cmd.resource === "ns") {
      const reg = createRegistryClient("ns", channel, { tokenGenerator: id.tokenGenerator });
      const results = reg.find(callCtx, { template: create(NetworkServiceSchema), watch });
      await print(results, cmd, out, NetworkServiceSchema, NS_HEADER, (e) => nsRow(e));
    } else {
      const reg = createRegistryClient("nse", channel, { tokenGenerator: id.tokenGenerator });
      const results = reg.find(callCtx, { template: create(NetworkServiceEndpointSchema), watch });
      await print(results, cmd, out, NetworkServiceEndpointSchema, NSE_HEADER, (e) => nseRow(e, Date.now()));
    }
  } catch (err) {
    if (ctx.signal.aborted) return;
    throw err;
  } finally {
    channel.close();
  }
}

async function print<T extends RegistryEntry>(
  results: AsyncIterable<{ entry: T; deleted: boolean }>,
  cmd: CliCommand,
  out: CliOutput,
  schema: typeof NetworkServiceSchema | typeof NetworkServiceEndpointSchema,
  header: readonly string[],
  row: (e: T) => string[],
): Promise<void> {
  const json = (e: T): unknown => toJson(schema as typeof NetworkServiceSchema, e as NetworkService);
  if (cmd.verb === "list") {
    const all: T[] = [];
    for await (const r of results) if (!r.deleted) all.push(r.entry);
    all.sort((a, b) => a.name.localeCompare(b.name));
    if (cmd.output === "json") out.write(`${JSON.stringify({ items: all.map(json) }, null, 2)}\n`);
    else if (all.length === 0) out.write("No resources found.\n");
    else out.write(formatTable(header, all.map(row)));
    return;
  }
  const seen = new Set<string>();
  const rows = new RowPrinter(["EVENT", ...header], out);
  for await (const r of results) {
    const type = r.deleted ? "DELETED" : seen.has(r.entry.name) ? "MODIFIED" : "ADDED";
    if (r.deleted) seen.delete(r.entry.name);
    else seen.add(r.entry.name);
    if (cmd.output === "json") {
      out.write(`${JSON.stringify({ type, object: json(r.entry) })}\n`);
      continue;
    }
    rows.row([type, ...row(r.entry)]);
  }
}

async function watchConnections(
  cmd: CliCommand,
  cfg: CliConfig,
  ctx: RunContext,
  out: CliOutput,
  id: Awaited<ReturnType<typeof programIdentity>>,
): Promise<void> {
  const url = cmd.nsmgr ?? cfg.connectTo;
  const channel = dial(url, id.dialOptions);
  try {
    const rows = new RowPrinter(CONNECTION_HEADER, out);
    const open = async function* (signal: AbortSignal): AsyncGenerator<ConnectionEvent> {
      // A fresh token per stream: a reopen may come long after the first one expired.
      const metadata = tokenMetadata(await id.tokenGenerator());
      yield* createClient(MonitorConnection, channel).monitorConnections(create(MonitorScopeSelectorSchema), { signal, metadata });
    };
    await watchConnectionEvents(
      open,
      (ev) => {
        const type = ConnectionEventType[ev.type] ?? String(ev.type);
        const conns = Object.values(ev.connections);
        if (cmd.output === "json") {
          out.write(`${JSON.stringify({ type, connections: conns.map((c) => toJson(ConnectionSchema, c)) })}\n`);
          return;
        }
        for (const c of conns) rows.row(connectionRow(type, c));
      },
      { signal: ctx.signal, log: ctx.log, clock: realClock },
    );
  } catch (err) {
    if (ctx.signal.aborted) return;
    throw err;
  } finally {
    channel.close();
  }
}
