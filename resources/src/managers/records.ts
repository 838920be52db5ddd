/**
 * The managers' access to the store: reads that fail with NotFound naming the request field, and commits that
 * hand back the written messages with their new revisions, in chunks where the store limits a commit's size.
 * Every commit carries the caller (certificate mode), so the store records and checks record creators.
 */
import type { Message } from "@bufbuild/protobuf";
import type { Logger } from "@nsm-ts/base/log";
import { Code, fail, StatusError } from "@nsm-ts/base/status";
import { describeRecord, type ResourceKind, type ResourceStore, type StoredRecord, type StoreOp, type WriteCaller } from "../store.js";

/** A resource message: every one carries the revision of its last write. */
export type WithRevision = Message & { revision: string };

/** The stored message with the record's revision filled in. */
export const withRevision = <T extends WithRevision>(rec: StoredRecord): T => ({ ...(rec.value as T), revision: rec.revision });

/** `ops` made by `caller` (unchanged without one). */
const by = (ops: readonly StoreOp[], caller: WriteCaller | undefined): readonly StoreOp[] =>
  caller === undefined ? ops : ops.map((op) => ({ ...op, caller }));

/** Typed reads and commits over one store. */
export class Records {
  constructor(
    readonly store: ResourceStore,
    private readonly log: Logger,
  ) {}

  /** One record (NotFound names `field`). */
  async get<T extends WithRevision>(kind: ResourceKind, id: string, field = "id"): Promise<T> {
    const rec = await this.store.get(kind, id);
    if (rec === undefined) fail(Code.NotFound, `resources: ${field}: ${describeRecord(kind, id)} not found`);
    return withRevision<T>(rec);
  }

  /** NotFound naming `field` unless the record exists. */
  async requireExists(kind: ResourceKind, id: string, field: string): Promise<void> {
    if ((await this.store.get(kind, id)) === undefined) fail(Code.NotFound, `resources: ${field}: ${describeRecord(kind, id)} not found`);
  }

  /** Commits one create or update by `caller`; resolves to the written message at its new revision. */
  async commitOne<T extends WithRevision>(op: StoreOp, caller?: WriteCaller): Promise<T> {
    const [rev] = await this.store.commit(by([op], caller));
    if (op.type === "delete") throw new StatusError(Code.Internal, "resources: commitOne of a delete");
    return { ...(op.value as T), revision: rev ?? "" };
  }

  /** Creates all records or none: one commit when the store takes them, else chunks undone on failure. */
  async commitMany<T extends WithRevision>(ops: readonly StoreOp[], caller?: WriteCaller): Promise<T[]> {
    const revs = await this.commitChunked(ops, caller);
    return ops.map((op, i) => ({ ...((op as { value: Message }).value as T), revision: revs[i] ?? "" }));
  }

  /** Commits `ops` by `caller` in as few commits as the store allows; resolves to each operation's revision. */
  async commitChunked(all: readonly StoreOp[], caller?: WriteCaller): Promise<string[]> {
    const ops = by(all, caller);
    const max = this.store.maxRecordsPerCommit ?? Infinity;
    if (ops.length <= max) return this.store.commit(ops);
    const revs: string[] = [];
    const doneCreates: StoreOp[] = [];
    try {
      for (let i = 0; i < ops.length; i += max) {
        const chunk = ops.slice(i, i + max);
        revs.push(...(await this.store.commit(chunk)));
        doneCreates.push(...chunk.filter((o) => o.type === "create"));
      }
      return revs;
    } catch (err) {
      // Deletes already committed cannot be undone; creates can (bulk deletes are at most best effort beyond one chunk).
      for (let i = 0; i < doneCreates.length; i += max) {
        const chunk = doneCreates.slice(i, i + max).map((o): StoreOp => ({ type: "delete", kind: o.kind, id: o.id, caller: o.caller }));
        await this.store.commit(chunk).catch((e: unknown) => this.log.error({ err: e }, "resources: undoing a partial bulk create failed"));
      }
      throw err;
    }
  }
}
