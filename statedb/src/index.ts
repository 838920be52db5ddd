/**
 * State tables after Cilium's StateDB: an in-memory database of indexed tables with atomic multi-table
 * write transactions, snapshot reads, revisions, change streams with deletions, watch and initializers.
 */
export { BulkInsert } from "./bulk.js";
export { type DeleteTracker, ResyncRequiredError } from "./changes.js";
export { createDb, Db, type DbOptions } from "./db.js";
export type { Change, IndexDef, LpmIndex, MultiIndex, TableSchema, UniqueIndex } from "./schema.js";
export { Table } from "./table.js";
export { ReadTxn, TableBase, WriteTxn } from "./txn.js";
