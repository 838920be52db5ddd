/**
 * Create, get, list, update and delete of clusters, traffic groups and intents on the intent store, each
 * validated (errors name the field) against the snapshot it commits on top of.
 */
import {
  type Cluster,
  ClusterSchema,
  type Intent,
  IntentSchema,
  type ObjectRef,
  type TrafficGroup,
  TrafficGroupSchema,
} from "@nsm-ts/api/intents";
import { Code, fail } from "@nsm-ts/base/status";
import { decode as decodeMsg, intentId, keys, type Snapshot, schemas } from "./model.js";
import { checkRevision, type IntentStore, type Mutation, type StoreRead, stored } from "./store.js";
import { checkCluster, checkGroup, checkIntent, checkLabel } from "./validate.js";

type Kind = "cluster" | "group" | "intent";

const notFound = (what: string): never => fail(Code.NotFound, `traffic-controller: name: ${what} does not exist`);
const withRevision = <T extends { revision: string }>(msg: T, revision: string): T => Object.assign(msg, { revision });

function replace<T>(m: ReadonlyMap<string, T>, key: string, v: T | undefined): Map<string, T> {
  const out = new Map(m);
  if (v === undefined) out.delete(key);
  else out.set(key, v);
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The operations of the API, independent of the transport. */
export class IntentObjects {
  constructor(readonly store: IntentStore) {}

  async createCluster(c: Cluster): Promise<Cluster> {
    checkCluster(c);
    return this.putCluster(c, "create");
  }

  async updateCluster(c: Cluster): Promise<Cluster> {
    checkCluster(c);
    return this.putCluster(c, "update");
  }

  private putCluster(c: Cluster, op: "create" | "update"): Promise<Cluster> {
    return this.store.write((r) => {
      const had = r.snap.clusters.get(c.name);
      this.checkExistence("cluster", c.name, had, op, c.revision);
      const next = { ...r.snap, clusters: replace(r.snap.clusters, c.name, c) };
      return this.mutation(next, keys.cluster(c.name), stored(ClusterSchema, c), c, `${op} cluster ${c.name}`, []);
    });
  }

  async deleteCluster(ref: ObjectRef): Promise<void> {
    checkLabel("name", ref.name);
    await this.store.write((r) => {
      const had = r.snap.clusters.get(ref.name) ?? notFound(`cluster ${JSON.stringify(ref.name)}`);
      checkRevision(`cluster ${JSON.stringify(ref.name)}`, ref.revision, had.revision);
      for (const [id, i] of r.snap.intents) {
        const s = i.spec.value;
        const uses =
          s !== undefined && (s.cluster === ref.name || ("allowedClients" in s && s.allowedClients.some((a) => a.cluster === ref.name)));
        if (uses)
          fail(Code.FailedPrecondition, `traffic-controller: name: cluster ${JSON.stringify(ref.name)} is still named by intent ${id}`);
      }
      return this.deletion(
        r,
        { ...r.snap, clusters: replace(r.snap.clusters, ref.name, undefined) },
        keys.cluster(ref.name),
        `delete cluster ${ref.name}`,
        [],
      );
    });
  }

  async createGroup(g: TrafficGroup): Promise<TrafficGroup> {
    checkGroup(g);
    return this.putGroup(g, "create");
  }

  async updateGroup(g: TrafficGroup): Promise<TrafficGroup> {
    checkGroup(g);
    return this.putGroup(g, "update");
  }

  private putGroup(g: TrafficGroup, op: "create" | "update"): Promise<TrafficGroup> {
    return this.store.write((r) => {
      this.checkExistence("traffic group", g.name, r.snap.groups.get(g.name), op, g.revision);
      const next = { ...r.snap, groups: replace(r.snap.groups, g.name, g) };
      return this.mutation(next, keys.group(g.name), stored(TrafficGroupSchema, g), g, `${op} traffic group ${g.name}`, []);
    });
  }

  async deleteGroup(ref: ObjectRef): Promise<void> {
    checkLabel("name", ref.name);
    await this.store.write((r) => {
      const had = r.snap.groups.get(ref.name) ?? notFound(`traffic group ${JSON.stringify(ref.name)}`);
      checkRevision(`traffic group ${JSON.stringify(ref.name)}`, ref.revision, had.revision);
      const held = [...r.snap.intents.values()].find((i) => i.trafficGroup === ref.name);
      if (held !== undefined)
        fail(
          Code.FailedPrecondition,
          `traffic-controller: name: traffic group ${JSON.stringify(ref.name)} still holds intent ${held.name}`,
        );
      return this.deletion(
        r,
        { ...r.snap, groups: replace(r.snap.groups, ref.name, undefined) },
        keys.group(ref.name),
        `delete traffic group ${ref.name}`,
        [],
      );
    });
  }

  async createIntent(i: Intent): Promise<Intent> {
    return this.putIntent(i, "create");
  }

  async updateIntent(i: Intent): Promise<Intent> {
    return this.putIntent(i, "update");
  }

  private putIntent(i: Intent, op: "create" | "update"): Promise<Intent> {
    checkLabel("traffic_group", i.trafficGroup);
    checkLabel("name", i.name);
    const id = intentId(i.trafficGroup, i.name);
    return this.store.write((r) => {
      this.checkExistence("intent", id, r.snap.intents.get(id), op, i.revision);
      checkIntent(i, { ...r.snap, intents: replace(r.snap.intents, id, undefined) });
      const next = { ...r.snap, intents: replace(r.snap.intents, id, i) };
      return this.mutation(next, keys.intent(i.trafficGroup, i.name), stored(IntentSchema, i), i, `${op} intent ${id}`, [id]);
    });
  }

  async deleteIntent(ref: ObjectRef): Promise<void> {
    checkLabel("traffic_group", ref.trafficGroup);
    checkLabel("name", ref.name);
    const id = intentId(ref.trafficGroup, ref.name);
    await this.store.write((r) => {
      const had = r.snap.intents.get(id) ?? notFound(`intent ${JSON.stringify(id)}`);
      checkRevision(`intent ${JSON.stringify(id)}`, ref.revision, had.revision);
      if (had.spec.case === "inbound") {
        const svc = had.spec.value.service;
        const user = [...r.snap.intents].find(
          ([, o]) => o.trafficGroup === ref.trafficGroup && o.spec.case === "outbound" && o.spec.value.service === svc,
        );
        if (user !== undefined)
          fail(
            Code.FailedPrecondition,
            `traffic-controller: name: intent ${id} exposes service ${JSON.stringify(svc)}, which intent ${user[0]} still calls`,
          );
      }
      return this.deletion(
        r,
        { ...r.snap, intents: replace(r.snap.intents, id, undefined) },
        keys.intent(ref.trafficGroup, ref.name),
        `delete intent ${id}`,
        [id],
      );
    });
  }

  /** One object, by kind; `NotFound` naming it when absent. */
  async get(kind: "cluster", ref: ObjectRef): Promise<Cluster>;
  async get(kind: "group", ref: ObjectRef): Promise<TrafficGroup>;
  async get(kind: "intent", ref: ObjectRef): Promise<Intent>;
  async get(kind: Kind, ref: ObjectRef): Promise<Cluster | TrafficGroup | Intent> {
    checkLabel("name", ref.name);
    if (kind === "intent") checkLabel("traffic_group", ref.trafficGroup);
    const key =
      kind === "cluster" ? keys.cluster(ref.name) : kind === "group" ? keys.group(ref.name) : keys.intent(ref.trafficGroup, ref.name);
    const e = await this.store.kv.get(key);
    const what =
      kind === "intent"
        ? `intent ${JSON.stringify(intentId(ref.trafficGroup, ref.name))}`
        : `${kind === "group" ? "traffic group" : kind} ${JSON.stringify(ref.name)}`;
    if (e === undefined) return notFound(what);
    return decode(kind, e.value, e.modRevision);
  }

  /** Every object of a kind, in name order; intents of one group when `group` is set. */
  async list(kind: "cluster"): Promise<Cluster[]>;
  async list(kind: "group"): Promise<TrafficGroup[]>;
  async list(kind: "intent", group?: string): Promise<Intent[]>;
  async list(kind: Kind, group = ""): Promise<Array<Cluster | TrafficGroup | Intent>> {
    if (group !== "") checkLabel("traffic_group", group);
    const prefix =
      kind === "cluster" ? "st/cluster/" : kind === "group" ? "st/group/" : group === "" ? "st/intent/" : `st/intent/${group}/`;
    const { entries } = await this.store.kv.list(prefix);
    return entries.map((e) => decode(kind, e.value, e.modRevision));
  }

  private checkExistence(
    what: string,
    name: string,
    had: { revision: string } | undefined,
    op: "create" | "update",
    revision: string,
  ): void {
    if (op === "create" && had !== undefined)
      fail(Code.AlreadyExists, `traffic-controller: name: ${what} ${JSON.stringify(name)} already exists`);
    if (op === "update") {
      if (had === undefined) notFound(`${what} ${JSON.stringify(name)}`);
      checkRevision(`${what} ${JSON.stringify(name)}`, revision, had?.revision);
    }
  }

  private mutation<T extends { revision: string }>(
    next: Snapshot,
    key: string,
    value: string,
    msg: T,
    reason: string,
    changedIntents: string[],
  ): Mutation<T> {
    return { puts: [{ key, value }], deletes: [], changedIntents, next, reason, result: (rev) => withRevision(msg, rev) };
  }

  private deletion(_r: StoreRead, next: Snapshot, key: string, reason: string, changedIntents: string[]): Mutation<void> {
    return { puts: [], deletes: [key], changedIntents, next, reason, result: () => undefined };
  }
}

function decode(kind: Kind, value: string, rev: string): Cluster | TrafficGroup | Intent {
  if (kind === "cluster") return decodeMsg(schemas.cluster, value, rev);
  if (kind === "group") return decodeMsg(schemas.group, value, rev);
  return decodeMsg(schemas.intent, value, rev);
}
