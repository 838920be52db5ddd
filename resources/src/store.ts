/**
 * The store interface of the resource managers: records of seven kinds, each with the references it holds
 * to other records, written by atomic multi-operation commits with compare-on-revision. The memory store
 * (statedb tables) and the etcd store (transactions) both enforce, inside one commit: create only if
 * absent, update/delete only at the expected revision, references only to existing records, delete only
 * when nothing references the record; and, for writes made by an identity (certificate mode), that a record is
 * updated or deleted only by the identity that created it, or by an admin.
 */
import type { Message } from "@bufbuild/protobuf";
import { Code, fail } from "@nsm-ts/base/status";

/** The kinds of record. */
export type ResourceKind = "network" | "subnet" | "ip" | "mac" | "port" | "securitygroup" | "routetable" | "vip" | "dns" | "node";

/** A reference to another record (`kind` + `id`), e.g. a subnet's network. */
export interface RecordRef {
  readonly kind: ResourceKind;
  readonly id: string;
}

/** A stored record: the message, the references it holds and the store revision of its last write. */
export interface StoredRecord<T extends Message = Message> {
  readonly kind: ResourceKind;
  readonly id: string;
  readonly value: T;
  readonly refs: readonly RecordRef[];
  /** Decimal store revision of the last write. */
  readonly revision: string;
  /**
   * SPIFFE ID of the identity that created the record (certificate mode); undefined when it was created without
   * one (dev mode, in-process, or before creators were recorded): then anyone may change it. Kept beside the
   * message, never in it, so the wire stays as it is.
   */
  readonly creator?: string | undefined;
}

/**
 * The identity a write is made by (the caller's SPIFFE ID from mTLS). A create records it as the record's
 * creator; an update or delete of a record created by another identity fails with PermissionDenied (policy
 * `record_creator`) unless `admin`. Operations without a caller (dev mode, in-process) record and check nothing.
 */
export interface WriteCaller {
  /** The caller's SPIFFE ID. */
  readonly spiffeId: string;
  /** True when the caller may change records created by others. */
  readonly admin: boolean;
}

/**
 * One operation of a commit. `revision` on update/delete: the write happens only if the record still has
 * it (else `Aborted`); undefined, "" or "0" means no check.
 */
export type StoreOp =
  | {
      readonly type: "create";
      readonly kind: ResourceKind;
      readonly id: string;
      readonly value: Message;
      readonly refs: readonly RecordRef[];
      readonly caller?: WriteCaller | undefined;
    }
  | {
      readonly type: "update";
      readonly kind: ResourceKind;
      readonly id: string;
      readonly value: Message;
      readonly refs: readonly RecordRef[];
      readonly revision?: string | undefined;
      readonly caller?: WriteCaller | undefined;
    }
  | {
      readonly type: "delete";
      readonly kind: ResourceKind;
      readonly id: string;
      readonly revision?: string | undefined;
      readonly caller?: WriteCaller | undefined;
    };

/** Options of `ResourceStore.list`. */
export interface StoreListOptions {
  /** Only ids starting with this. */
  prefix?: string;
  /** Only ids sorting after this one (pagination). */
  after?: string;
  /** At most this many records (after filtering). */
  limit?: number;
  /** Keeps only records it accepts. */
  filter?: (r: StoredRecord) => boolean;
}

/**
 * One event of a store watch: a record written (`put`, also the current records of a watch from revision 0), a
 * record deleted (`record`: its last state, with the delete's revision, when the store still has it), or the end
 * of the initial listing (`synced`, watches from revision 0 only). `revision` is the store revision to resume after.
 */
export type StoreWatchEvent =
  | { readonly type: "put"; readonly record: StoredRecord; readonly revision: string }
  | {
      readonly type: "delete";
      readonly kind: ResourceKind;
      readonly id: string;
      readonly record?: StoredRecord | undefined;
      readonly revision: string;
    }
  | { readonly type: "synced"; readonly revision: string };

/** Options of `ResourceStore.watch`. */
export interface StoreWatchOptions {
  /** "0" or undefined: the current records, `synced`, then the changes; else the changes after this revision. */
  fromRevision?: string | undefined;
  /** Ends the watch (normally) when aborted. */
  signal: AbortSignal;
  /** Live events buffered before a slow watcher is ended with ResourceExhausted; default `DEFAULT_WATCH_BUFFER`. */
  bufferSize?: number | undefined;
}

/** Where the managers keep their records. */
export interface ResourceStore {
  /**
   * True when this process is the store's only writer (memory): allocators then trust their bitmaps. False
   * (etcd, shared by replicas): an allocator's bitmap is a hint that the store's create-if-absent confirms.
   */
  readonly exclusive: boolean;
  /** Most records one commit may carry (etcd's operation limit); undefined = no limit. */
  readonly maxRecordsPerCommit?: number;
  /**
   * Optional feed of other writers' changes (shared stores): calls `onChange` with the id of every record of
   * `kind` written (`deleted` false) or deleted after the watch started, until the returned stop function is
   * called or the store closes. Allocators use it to keep their bitmaps close to the store; correctness never
   * depends on it (the store's compares decide), it only saves conflicts.
   */
  watchKind?(kind: ResourceKind, onChange: (id: string, deleted: boolean) => void): Promise<() => void>;
  /** One record, or undefined. */
  get(kind: ResourceKind, id: string): Promise<StoredRecord | undefined>;
  /** Records of a kind in id order. */
  list(kind: ResourceKind, opts?: StoreListOptions): Promise<StoredRecord[]>;
  /**
   * Applies every operation or none; resolves to the revision of each written record (deletes: the commit
   * revision). Fails with AlreadyExists, NotFound, Aborted (stale revision), FailedPrecondition (a
   * reference to a missing record, or a delete of a record that a record outside this commit references) or
   * PermissionDenied (an update or delete by a caller other than the record's creator, see `WriteCaller`), the
   * message naming the record. Creates store `caller.spiffeId` as the creator; updates keep the stored creator.
   */
  commit(ops: readonly StoreOp[]): Promise<string[]>;
  /**
   * Every change of the records of `kind` (see `StoreWatchEvent`) until `signal` aborts. Fails with InvalidArgument
   * for a malformed revision, OutOfRange when the changes after `fromRevision` are gone (watch from 0), and
   * ResourceExhausted, after the buffered events, when the watcher fell `bufferSize` events behind. Open watches
   * end with Unavailable when the store closes.
   */
  watch(kind: ResourceKind, opts: StoreWatchOptions): AsyncIterable<StoreWatchEvent>;
  /** Releases the store's resources; later calls fail with Unavailable. */
  close(): Promise<void>;
}

/** The store key of a record: `kind/` + the id, URI-encoded so that ids never contain the separator. */
export function recordKey(kind: ResourceKind, id: string): string {
  return `${kind}/${encodeURIComponent(id)}`;
}

/** Whether a revision argument asks for a check. */
export function checksRevision(revision: string | undefined): revision is string {
  return revision !== undefined && revision !== "" && revision !== "0";
}

/** A readable record name for messages: `subnet "s1"`. */
export function describeRecord(kind: ResourceKind, id: string): string {
  return `${kind} "${id}"`;
}

/** The failures of the commit rules, worded alike by every store. */
export const ruleFailure = {
  exists: (kind: ResourceKind, id: string): never => fail(Code.AlreadyExists, `resources: id: ${describeRecord(kind, id)} already exists`),
  missing: (kind: ResourceKind, id: string): never => fail(Code.NotFound, `resources: id: ${describeRecord(kind, id)} not found`),
  dangling: (kind: ResourceKind, id: string, ref: RecordRef): never =>
    fail(
      Code.FailedPrecondition,
      `resources: ${describeRecord(kind, id)} references ${describeRecord(ref.kind, ref.id)}, which does not exist`,
    ),
  /** `holder` is already readable, e.g. `port "p1"`. */
  referenced: (kind: ResourceKind, id: string, holder: string): never =>
    fail(Code.FailedPrecondition, `resources: id: ${describeRecord(kind, id)} is still referenced by ${holder}`),
};

/**
 * The rule of an update or delete: the record exists (`current`: its revision, undefined when absent), and is
 * still at the revision the operation expects when it checks one.
 */
export function checkCurrent(kind: ResourceKind, id: string, current: string | undefined, expected: string | undefined): void {
  if (current === undefined) ruleFailure.missing(kind, id);
  if (checksRevision(expected) && current !== expected) {
    fail(Code.Aborted, `resources: revision: ${describeRecord(kind, id)} is at revision ${current}, not ${expected}`);
  }
}

/**
 * The owner rule of an update or delete (policy `record_creator`): a record created by an identity may be changed
 * only by that identity or an admin. Records without a creator and operations without a caller pass.
 */
export function checkCreator(
  kind: ResourceKind,
  id: string,
  creator: string | undefined,
  caller: WriteCaller | undefined,
  verb: "update" | "delete",
): void {
  if (caller === undefined || caller.admin || creator === undefined || creator === caller.spiffeId) return;
  fail(
    Code.PermissionDenied,
    `resources: policy record_creator denied: ${describeRecord(kind, id)} was created by ${creator}; ` +
      `only its creator or a resources admin may ${verb} it, not ${caller.spiffeId}`,
  );
}
