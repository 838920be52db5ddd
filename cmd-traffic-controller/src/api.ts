/**
 * The `nsmts.intents.v1` handlers, written once against a minimal call context (`{ signal }`) that both our
 * gRPC layer and Connect's handler context satisfy, so the same functions serve gRPC and Connect JSON over HTTP.
 */
import { create } from "@bufbuild/protobuf";
import {
  type ClusterEvent,
  ClusterSchema,
  DeliveryState,
  type IntentEvent,
  IntentSchema,
  type IntentStatus,
  type IntentStatusEvent,
  IntentStatusSchema,
  type StatusRequest,
  type TrafficGroupEvent,
  TrafficGroupSchema,
} from "@nsm-ts/api/intents";
import { decode, keys, type StoredStatus } from "./model.js";
import type { IntentObjects } from "./objects.js";
import { parseStatus } from "./plan.js";
import { watchPrefix } from "./watch.js";

/** What every handler reads of its call. */
export interface CallCtx {
  readonly signal: AbortSignal;
}

const STATE: Record<StoredStatus["state"], DeliveryState> = {
  pending: DeliveryState.PENDING,
  applied: DeliveryState.APPLIED,
  failed: DeliveryState.FAILED,
};

/** Converts one stored status to its message. */
export function statusMessage(id: string, cluster: string, target: string, s: StoredStatus): IntentStatus {
  const [group = "", intent = ""] = id.split("/");
  return create(IntentStatusSchema, {
    trafficGroup: group,
    intent,
    cluster,
    target,
    state: STATE[s.state],
    intentRevision: s.intentRevision,
    attempts: s.attempts,
    lastError: s.lastError,
    sequence: s.sequence,
  });
}

const matches = (f: StatusRequest, s: IntentStatus) =>
  (f.trafficGroup === "" || f.trafficGroup === s.trafficGroup) &&
  (f.intent === "" || f.intent === s.intent) &&
  (f.cluster === "" || f.cluster === s.cluster);

function statusesOf(key: string, value: string | undefined, modRevision: string): IntentStatus[] {
  const [cluster = "", target = ""] = key.slice(keys.statusPrefix.length).split("/");
  const m = parseStatus(value === undefined ? undefined : { key, value, modRevision });
  return Object.entries(m).map(([id, s]) => statusMessage(id, cluster, target, s));
}

/** Every status matching `f`, ordered by cluster, target, then intent. */
export async function listStatus(objects: IntentObjects, f: StatusRequest): Promise<IntentStatus[]> {
  const { entries } = await objects.store.kv.list(keys.statusPrefix);
  return entries.flatMap((e) => statusesOf(e.key, e.value, e.modRevision)).filter((s) => matches(f, s));
}

/** Status changes matching `f`: the current ones first (unless skipped), then each change of one. */
export async function* watchStatus(
  objects: IntentObjects,
  f: StatusRequest,
  signal: AbortSignal,
): AsyncGenerator<Omit<IntentStatusEvent, "$typeName">> {
  const last = new Map<string, Map<string, IntentStatus>>();
  for await (const ev of watchPrefix(objects.store.kv, keys.statusPrefix, false, signal)) {
    const now = new Map<string, IntentStatus>();
    if (ev.type === "put")
      for (const s of statusesOf(ev.entry.key, ev.entry.value, ev.entry.modRevision))
        if (matches(f, s)) now.set(`${s.trafficGroup}/${s.intent}`, s);
    const before = last.get(ev.entry.key) ?? new Map<string, IntentStatus>();
    last.set(ev.entry.key, now);
    if (ev.initial && f.skipExisting) continue;
    // One key holds a whole cluster target: report only the intents whose status moved.
    for (const [id, s] of now) {
      const b = before.get(id);
      if (
        b === undefined ||
        b.state !== s.state ||
        b.attempts !== s.attempts ||
        b.intentRevision !== s.intentRevision ||
        b.sequence !== s.sequence
      )
        yield { status: s, deleted: false };
    }
    for (const [id, s] of before) if (!now.has(id)) yield { status: s, deleted: true };
  }
}

/** The three service implementations. */
export function intentHandlers(o: IntentObjects) {
  return {
    clusters: {
      createCluster: (r: Parameters<IntentObjects["createCluster"]>[0]) => o.createCluster(r),
      getCluster: (r: { name: string; trafficGroup: string; revision: string } & object) => o.get("cluster", r as never),
      listClusters: async () => ({ items: await o.list("cluster") }),
      updateCluster: (r: Parameters<IntentObjects["updateCluster"]>[0]) => o.updateCluster(r),
      deleteCluster: async (r: Parameters<IntentObjects["deleteCluster"]>[0]) => {
        await o.deleteCluster(r);
        return {};
      },
      async *watchClusters(r: { skipExisting: boolean }, ctx: CallCtx): AsyncGenerator<Omit<ClusterEvent, "$typeName">> {
        for await (const ev of watchPrefix(o.store.kv, "st/cluster/", r.skipExisting, ctx.signal)) {
          const name = ev.entry.key.slice("st/cluster/".length);
          yield ev.type === "put"
            ? { cluster: decode(ClusterSchema, ev.entry.value, ev.entry.modRevision), deleted: false }
            : { cluster: create(ClusterSchema, { name, revision: ev.entry.modRevision }), deleted: true };
        }
      },
    },
    groups: {
      createTrafficGroup: (r: Parameters<IntentObjects["createGroup"]>[0]) => o.createGroup(r),
      getTrafficGroup: (r: Parameters<IntentObjects["deleteGroup"]>[0]) => o.get("group", r),
      listTrafficGroups: async () => ({ items: await o.list("group") }),
      updateTrafficGroup: (r: Parameters<IntentObjects["updateGroup"]>[0]) => o.updateGroup(r),
      deleteTrafficGroup: async (r: Parameters<IntentObjects["deleteGroup"]>[0]) => {
        await o.deleteGroup(r);
        return {};
      },
      async *watchTrafficGroups(r: { skipExisting: boolean }, ctx: CallCtx): AsyncGenerator<Omit<TrafficGroupEvent, "$typeName">> {
        for await (const ev of watchPrefix(o.store.kv, "st/group/", r.skipExisting, ctx.signal)) {
          const name = ev.entry.key.slice("st/group/".length);
          yield ev.type === "put"
            ? { trafficGroup: decode(TrafficGroupSchema, ev.entry.value, ev.entry.modRevision), deleted: false }
            : { trafficGroup: create(TrafficGroupSchema, { name, revision: ev.entry.modRevision }), deleted: true };
        }
      },
    },
    intents: {
      createIntent: (r: Parameters<IntentObjects["createIntent"]>[0]) => o.createIntent(r),
      getIntent: (r: Parameters<IntentObjects["deleteIntent"]>[0]) => o.get("intent", r),
      listIntents: async (r: { trafficGroup: string }) => ({ items: await o.list("intent", r.trafficGroup) }),
      updateIntent: (r: Parameters<IntentObjects["updateIntent"]>[0]) => o.updateIntent(r),
      deleteIntent: async (r: Parameters<IntentObjects["deleteIntent"]>[0]) => {
        await o.deleteIntent(r);
        return {};
      },
      async *watchIntents(
        r: { trafficGroup: string; skipExisting: boolean },
        ctx: CallCtx,
      ): AsyncGenerator<Omit<IntentEvent, "$typeName">> {
        const prefix = r.trafficGroup === "" ? "st/intent/" : `st/intent/${r.trafficGroup}/`;
        for await (const ev of watchPrefix(o.store.kv, prefix, r.skipExisting, ctx.signal)) {
          const [trafficGroup = "", name = ""] = ev.entry.key.slice("st/intent/".length).split("/");
          yield ev.type === "put"
            ? { intent: decode(IntentSchema, ev.entry.value, ev.entry.modRevision), deleted: false }
            : { intent: create(IntentSchema, { trafficGroup, name, revision: ev.entry.modRevision }), deleted: true };
        }
      },
      listIntentStatus: async (r: StatusRequest) => ({ items: await listStatus(o, r) }),
      watchIntentStatus: (r: StatusRequest, ctx: CallCtx) => watchStatus(o, r, ctx.signal),
    },
  };
}
