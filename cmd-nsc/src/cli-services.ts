/**
 * `cmd-nsc list services` and `watch services`: the services API of a registry as the operator sees it — per
 * service its ports, frontends (ServiceIP and policy), effective backends (address, port, source, health) and the
 * reconcile status each data-plane node reported. Table or JSON (`-o json`: one object for `list`, one line per
 * event for `watch`).
 */
import { toJson } from "@bufbuild/protobuf";
import {
  ReconcileState,
  type ReconcileStatus,
  ReconcileStatusSchema,
  type ResolvedService,
  ResolvedServiceSchema,
} from "@nsm-ts/api/services";
import type { RunContext } from "@nsm-ts/base/config";
import type { Channel } from "@nsm-ts/base/grpc";
import { healthName, policyName, protocolName, servicesClient } from "@nsm-ts/services";
import type { CliCommand } from "./cli.js";
import type { CliConfig } from "./cli-config.js";
import { type CliOutput, formatTable, RowPrinter } from "./table.js";

/** Table columns of a service. */
export const SERVICE_HEADER = ["NAME", "PORTS", "FRONTENDS", "BACKENDS", "RECONCILE"] as const;

const list = (items: string[]): string => (items.length === 0 ? "<none>" : items.join(","));

/** `reconciled`, `pending`, `error: …`. */
export function statusText(s: ReconcileStatus): string {
  const state = s.state === ReconcileState.RECONCILED ? "reconciled" : s.state === ReconcileState.PENDING ? "pending" : "error";
  return s.message === "" || s.state === ReconcileState.RECONCILED ? state : `${state}: ${s.message}`;
}

/** One service as a table row, with the statuses reported for it. */
export function serviceRow(s: ResolvedService, statuses: readonly ReconcileStatus[]): string[] {
  const ports = s.ports.map((p) => `${p.name ? `${p.name}:` : ""}${p.port}/${protocolName(p.protocol)}`);
  const frontends = [...new Set(s.frontends.map((f) => `${f.address}(${policyName(f.policy)})`))];
  const backends = s.backends.map((b) => `${b.address}:${b.port}[${b.source},${healthName(b.health)}${b.node ? `,${b.node}` : ""}]`);
  const rec = statuses.map((st) => `${st.node}=${statusText(st)}`);
  return [s.name, list(ports), list(frontends), list(backends), list(rec)];
}

/** Runs `list services` or `watch services` on `channel` (a registry). */
export async function runServicesCli(cmd: CliCommand, cfg: CliConfig, ctx: RunContext, out: CliOutput, channel: Channel): Promise<void> {
  const { dataPlane } = servicesClient(channel);
  if (cmd.verb === "list") {
    const opts = { signal: ctx.signal, deadline: Date.now() + cfg.requestTimeout };
    const [services, statuses] = await Promise.all([dataPlane.listResolvedServices({}, opts), dataPlane.listReconcileStatus({}, opts)]);
    const of = (name: string): ReconcileStatus[] =>
      statuses.items.filter((s) => s.service === name).sort((a, b) => a.node.localeCompare(b.node));
    const items = [...services.items].sort((a, b) => a.name.localeCompare(b.name));
    if (cmd.output === "json") {
      const json = items.map((s) => ({
        service: toJson(ResolvedServiceSchema, s),
        status: of(s.name).map((st) => toJson(ReconcileStatusSchema, st)),
      }));
      out.write(`${JSON.stringify({ items: json }, null, 2)}\n`);
    } else if (items.length === 0) out.write("No resources found.\n");
    else
      out.write(
        formatTable(
          SERVICE_HEADER,
          items.map((s) => serviceRow(s, of(s.name))),
        ),
      );
    return;
  }
  const rows = new RowPrinter(["EVENT", ...SERVICE_HEADER], out);
  const latest = new Map<string, ResolvedService>();
  const statuses = new Map<string, Map<string, ReconcileStatus>>();
  const statusesOf = (name: string): ReconcileStatus[] =>
    [...(statuses.get(name)?.values() ?? [])].sort((a, b) => a.node.localeCompare(b.node));
  const services = (async () => {
    for await (const ev of dataPlane.watchResolvedServices({}, { signal: ctx.signal })) {
      if (ev.synced || ev.service === undefined) continue;
      const name = ev.service.name;
      const type = ev.deleted ? "DELETED" : latest.has(name) ? "MODIFIED" : "ADDED";
      if (ev.deleted) latest.delete(name);
      else latest.set(name, ev.service);
      if (cmd.output === "json") out.write(`${JSON.stringify({ type, object: toJson(ResolvedServiceSchema, ev.service) })}\n`);
      else rows.row([type, ...serviceRow(ev.service, ev.deleted ? [] : statusesOf(name))]);
    }
  })();
  const reports = (async () => {
    for await (const ev of dataPlane.watchReconcileStatus({}, { signal: ctx.signal })) {
      const st = ev.status;
      if (st === undefined) continue;
      const byNode = statuses.get(st.service) ?? new Map<string, ReconcileStatus>();
      if (ev.deleted) byNode.delete(st.node);
      else byNode.set(st.node, st);
      statuses.set(st.service, byNode);
      if (cmd.output === "json") {
        out.write(`${JSON.stringify({ type: ev.deleted ? "STATUS_DELETED" : "STATUS", status: toJson(ReconcileStatusSchema, st) })}\n`);
        continue;
      }
      const svc = latest.get(st.service);
      if (svc !== undefined) rows.row(["STATUS", ...serviceRow(svc, statusesOf(st.service))]);
    }
  })();
  await Promise.all([services, reports]);
}
