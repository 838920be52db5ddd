/**
 * What defines a table: its primary key and secondary indexes (unique, multi, longest-prefix match), and
 * the keys an object has in each index tree.
 */
import { Code, fail } from "@nsm-ts/base/status";
import { emptyTree } from "./btree.js";
import type { Db } from "./db.js";
import { parsePrefix, prefixKey } from "./lpm.js";
import { type Root, TableBase } from "./txn.js";

/** A unique secondary index: at most one object per key; `key` returning undefined leaves the object out. */
export interface UniqueIndex<T> {
  readonly kind: "unique";
  key(obj: T): string | undefined;
}

/** A non-unique secondary index: an object appears under every key it returns (one per label, per name …). */
export interface MultiIndex<T> {
  readonly kind: "multi";
  keys(obj: T): readonly string[];
}

/**
 * A longest-prefix-match index over IP prefixes (`addr/len`, IPv4 or IPv6; a bare address is a host
 * prefix). Several objects may share a prefix.
 */
export interface LpmIndex<T> {
  readonly kind: "lpm";
  prefixes(obj: T): readonly string[];
}

/** A secondary index definition. */
export type IndexDef<T> = UniqueIndex<T> | MultiIndex<T> | LpmIndex<T>;

/** What defines a table: its name, its primary key and its secondary indexes by name. */
export interface TableSchema<T, I extends string> {
  /** Unique name within the database (used in errors and logs). */
  readonly name: string;
  /** The primary key; unique, any string. */
  primaryKey(obj: T): string;
  /** Secondary indexes by name. Keys of unique/multi indexes must not contain "\0". */
  readonly indexes?: { readonly [K in I]: IndexDef<T> };
}

/** An object with the revision of its last change; for changes, whether that change deleted it. */
export interface Change<T> {
  /** Primary key. */
  readonly key: string;
  /** The object (for a deletion, the object as it was when deleted). */
  readonly object: T;
  /** Global revision of the change. */
  readonly revision: number;
  /** True for a deletion (a tombstone). */
  readonly deleted: boolean;
}

/**
 * @internal The schema layer of `Table`: index definitions in declaration order, the empty root they give,
 * and the keys of an object in each index tree.
 */
export abstract class TableIndexes<T, I extends string> extends TableBase {
  /** @internal */
  readonly emptyRoot: Root<unknown>;
  /** @internal */
  readonly lpmFlags: readonly boolean[];
  protected readonly indexNames: readonly I[];
  protected readonly defs: ReadonlyArray<IndexDef<T>>;

  /** @internal Use `db.createTable`. */
  constructor(
    /** The database the table belongs to. */
    readonly db: Db,
    id: number,
    protected readonly schema: TableSchema<T, I>,
  ) {
    super(schema.name, id);
    const idx = (schema.indexes ?? {}) as Record<string, IndexDef<T>>;
    this.indexNames = Object.keys(idx) as I[];
    this.defs = this.indexNames.map((n) => idx[n] as IndexDef<T>);
    this.lpmFlags = this.defs.map((d) => d.kind === "lpm");
    this.emptyRoot = {
      primary: emptyTree(),
      byRevision: emptyTree(),
      graveyard: emptyTree(),
      secondary: this.defs.map(() => emptyTree()),
      lpmLengths: this.defs.map((d) => (d.kind === "lpm" ? new Array<number>(162).fill(0) : undefined)),
      revision: 0,
      gcRevision: 0,
    };
  }

  /** The primary key of an object. */
  primaryKey(obj: T): string {
    return this.schema.primaryKey(obj);
  }

  protected index(name: I): [number, IndexDef<T>] {
    const i = this.indexNames.indexOf(name);
    if (i < 0) fail(Code.InvalidArgument, `statedb: table "${this.name}" has no index "${name}"`);
    return [i, this.defs[i] as IndexDef<T>];
  }

  /** Keys as the user's index function returns them. */
  protected userKeys(i: number, obj: T): readonly string[] {
    const def = this.defs[i] as IndexDef<T>;
    if (def.kind === "unique") {
      const k = def.key(obj);
      return k === undefined ? [] : [k];
    }
    return def.kind === "multi" ? def.keys(obj) : def.prefixes(obj);
  }

  /** Keys as stored in the index tree. */
  protected storeKeys(i: number, obj: T, pk: string): string[] {
    const keys = this.groupKeys(i, obj);
    return (this.defs[i] as IndexDef<T>).kind === "unique" ? [...keys] : keys.map((k) => `${k}\0${pk}`);
  }

  /** Keys in the index tree before the `"\0" + primary key` that multi and LPM indexes append (unique: the keys). */
  protected groupKeys(i: number, obj: T): readonly string[] {
    const def = this.defs[i] as IndexDef<T>;
    if (def.kind === "unique") {
      const k = def.key(obj);
      return k === undefined ? [] : [k];
    }
    if (def.kind === "multi") return def.keys(obj);
    return def.prefixes(obj).map((p) => prefixKey(parsePrefix(p, `index "${this.indexNames[i]}" prefix`)));
  }
}
