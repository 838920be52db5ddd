/**
 * An in-memory table engine after Cilium's StateDB: tables with a primary key and secondary indexes,
 * atomic write transactions over several tables, snapshot reads, a revision per change, change streams
 * with deletions and watch channels. The database hands out revisions, holds the current state and
 * grants tables to write transactions one at a time.
 */
import { Code, fail } from "@nsm-ts/base/status";
import type { TableSchema } from "./schema.js";
import { Table } from "./table.js";
import { type DbState, ReadTxn, TableBase, WriteTxn } from "./txn.js";

/** Options of `createDb`. */
export interface DbOptions {
  /**
   * Tombstones always kept per table for iterators that resume from a revision (default 10 000). Older
   * ones are kept too while a live change iterator or delete tracker has not passed them, up to
   * `graveyardMax`. An iterator that needed a dropped tombstone fails with `ResyncRequiredError`.
   */
  readonly graveyardSize?: number;
  /** Hard bound on tombstones per table, even for trackers that lag (default 100 000). */
  readonly graveyardMax?: number;
  /** Object.freeze every inserted object (shallow), to catch mutation of stored objects; default false. */
  readonly freeze?: boolean;
}

/** An in-memory database of tables. Create with `createDb`. */
export class Db {
  /** @internal */
  readonly graveyardSize: number;
  /** @internal */
  readonly graveyardMax: number;
  /** @internal */
  readonly freeze: boolean;
  private state: DbState = { seq: 0, roots: new Map() };
  private rev = 0;
  private nextTableId = 1;
  private readonly names = new Set<string>();
  private readonly tables: TableBase[] = [];
  private waiters: Array<{ tables: readonly TableBase[]; grant: (txn: WriteTxn) => void }> = [];

  /** @internal Use `createDb`. */
  constructor(opts: DbOptions = {}) {
    this.graveyardSize = opts.graveyardSize ?? 10_000;
    this.graveyardMax = Math.max(this.graveyardSize, opts.graveyardMax ?? 100_000);
    this.freeze = opts.freeze ?? false;
  }

  /** Defines a table. Names are unique within the database. */
  createTable<T, I extends string = never>(schema: TableSchema<T, I>): Table<T, I> {
    if (this.names.has(schema.name)) fail(Code.AlreadyExists, `statedb: table "${schema.name}" already exists`);
    this.names.add(schema.name);
    const t = new Table<T, I>(this, this.nextTableId++, schema);
    this.tables.push(t);
    return t;
  }

  /** A snapshot of every table. */
  readTxn(): ReadTxn {
    return new ReadTxn(this.state);
  }

  /** The last revision handed out (every change takes the next one). */
  revision(): number {
    return this.rev;
  }

  /**
   * Starts a write transaction holding `tables`. Throws `Aborted` when another open write transaction
   * holds one of them (use `update` to wait instead). Always end it with `commit()` or `abort()`.
   */
  writeTxn(...tables: TableBase[]): WriteTxn {
    const busy = tables.find((t) => t.lockedBy);
    if (busy) fail(Code.Aborted, `statedb: table "${busy.name}" is held by another write transaction`);
    return this.lock(tables);
  }

  /**
   * Runs `fn` in a write transaction over `tables` (every table when omitted), waiting for them to be
   * free, and commits; if `fn` throws or rejects, the transaction is aborted and the error rethrown.
   */
  update<R>(fn: (txn: WriteTxn) => R | Promise<R>): Promise<R>;
  update<R>(tables: TableBase | readonly TableBase[], fn: (txn: WriteTxn) => R | Promise<R>): Promise<R>;
  async update<R>(
    a: TableBase | readonly TableBase[] | ((txn: WriteTxn) => R | Promise<R>),
    b?: (txn: WriteTxn) => R | Promise<R>,
  ): Promise<R> {
    const fn = (typeof a === "function" ? a : b) as (txn: WriteTxn) => R | Promise<R>;
    const list: readonly TableBase[] = typeof a === "function" ? this.tables : a instanceof TableBase ? [a] : (a as readonly TableBase[]);
    const txn = list.some((t) => t.lockedBy)
      ? await new Promise<WriteTxn>((grant) => this.waiters.push({ tables: list, grant }))
      : this.lock(list);
    try {
      const r = await fn(txn);
      if (txn.open) txn.commit();
      return r;
    } catch (err) {
      txn.abort();
      throw err;
    }
  }

  private lock(tables: readonly TableBase[]): WriteTxn {
    const txn = new WriteTxn(this, this.state, [...new Set(tables)]);
    for (const t of tables) t.lockedBy = txn;
    return txn;
  }

  /** @internal */
  allocRevision(): number {
    return ++this.rev;
  }

  /** @internal */
  current(): DbState {
    return this.state;
  }

  /** @internal Installs a committed state (if any), releases the transaction's tables, wakes waiters. */
  publish(state: DbState | undefined, txn: WriteTxn): DbState {
    if (state) this.state = state;
    for (const t of txn.tables) if (t.lockedBy === txn) t.lockedBy = undefined;
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      if (w.tables.some((t) => t.lockedBy)) this.waiters.push(w);
      else w.grant(this.lock(w.tables));
    }
    return this.state;
  }

  /** @internal A new state sequence number without table changes (initializers). */
  bumpSeq(): number {
    this.state = { seq: this.state.seq + 1, roots: this.state.roots };
    return this.state.seq;
  }
}

/** Creates an empty in-memory database. */
export function createDb(opts: DbOptions = {}): Db {
  return new Db(opts);
}
