/**
 * The traffic controller's view of its data: a snapshot of every cluster, traffic group and intent, the keys
 * they live under in the store, and the codec between messages and stored values (protobuf JSON, so etcd's
 * contents stay readable with etcdctl).
 */
import { type DescMessage, fromJsonString, type MessageShape, toJsonString } from "@bufbuild/protobuf";
import { type Cluster, ClusterSchema, type Intent, IntentSchema, type TrafficGroup, TrafficGroupSchema } from "@nsm-ts/api/intents";

/** Every intent-bearing object, in name order (intents by group, then name). */
export interface Snapshot {
  readonly clusters: ReadonlyMap<string, Cluster>;
  readonly groups: ReadonlyMap<string, TrafficGroup>;
  /** Keyed by `intentId` (`<group>/<name>`). */
  readonly intents: ReadonlyMap<string, Intent>;
}

/** Store keys. Everything the compiler reads lives under `st/`, so one read at one revision is a consistent snapshot. */
export const keys = {
  /** Bumped by every object write: comparing it serialises writers across replicas. */
  gen: "st/gen",
  cluster: (name: string) => `st/cluster/${name}`,
  group: (name: string) => `st/group/${name}`,
  intent: (group: string, name: string) => `st/intent/${group}/${name}`,
  /** One key per cluster target (a `DesiredState`): keeps a write's transaction small whatever the tree's size. */
  desiredPrefix: "st/desired/",
  desired: (cluster: string, target: string) => `st/desired/${cluster}/${target}`,
  outboxPrefix: (cluster: string, target: string) => `ob/${cluster}/${target}/`,
  outbox: (cluster: string, target: string, seq: bigint) => `ob/${cluster}/${target}/${seq.toString().padStart(20, "0")}`,
  /** One key per cluster target: a `StatusMap`. */
  statusPrefix: "status/",
  status: (cluster: string, target: string) => `status/${cluster}/${target}`,
};

/** The compiled resources of one cluster target and the last outbox sequence number it used. */
export interface DesiredState {
  readonly seq: string;
  readonly tree: Record<string, DesiredResource>;
}

/** Delivery state of one intent at one cluster target, as stored. `intentRevision` "0": the key's own revision. */
export interface StoredStatus {
  state: "pending" | "applied" | "failed";
  intentRevision: string;
  sequence: string;
  attempts: number;
  lastError: string;
}

/** Intent id → status, of one cluster target. */
export type StatusMap = Record<string, StoredStatus>;

/** `<group>/<name>` of an intent. */
export const intentId = (group: string, name: string): string => `${group}/${name}`;

/** Encodes a message for the store. */
export function encode<D extends DescMessage>(schema: D, msg: MessageShape<D>): string {
  return toJsonString(schema, msg);
}

/** Decodes a stored message, setting its revision from the key's `modRevision`. */
export function decode<D extends DescMessage>(schema: D, value: string, modRevision: string): MessageShape<D> {
  const msg = fromJsonString(schema, value, { ignoreUnknownFields: true });
  (msg as { revision?: bigint | string }).revision = modRevision;
  return msg;
}

export const schemas = { cluster: ClusterSchema, group: TrafficGroupSchema, intent: IntentSchema };

/** The delivery targets of a cluster, by name: `git`, `kubernetes` (both get Istio YAML) and `registry` (NSM). */
export function targetsOf(cluster: Cluster): string[] {
  const t = cluster.target;
  const out: string[] = [];
  if (t?.gitUrl) out.push("git");
  if (t?.kubernetesUrl) out.push("kubernetes");
  if (t?.registryUrl) out.push("registry");
  return out;
}

/** One compiled resource of a cluster target: its bytes and the intents it came from. */
export interface DesiredResource {
  readonly content: string;
  readonly intents: readonly string[];
}

/** An outbox entry: one change of a cluster target's resources, applied as a whole, in sequence order. */
export interface OutboxEntry {
  readonly seq: string;
  /** Path → new content. */
  readonly puts: Record<string, string>;
  readonly deletes: string[];
  /** The intents (`group/name`) whose status this delivery settles, with the intent revision it carries ("0": the entry's own revision). */
  readonly intents: Array<{ id: string; revision: string }>;
  /** Why: e.g. `update intent g1/b-calls-a`. */
  readonly reason: string;
}
