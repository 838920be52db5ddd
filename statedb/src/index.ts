/**
 * State tables after Cilium's StateDB: an in-memory database of indexed tables with atomic multi-table
 * write transactions, snapshot reads, revisions, change streams with deletions, watch and initializers.
 */
export {
  type Change,
  createDb,
  Db,
  type DbOptions,
  type DeleteTracker,
  type IndexDef,
  type LpmIndex,
  type MultiIndex,
  ReadTxn,
  ResyncRequiredError,
  Table,
  TableBase,
  type TableSchema,
  type UniqueIndex,
  WriteTxn,
} from "./db.js";
export { type PrefixBits, parsePrefix } from "./ip.js";
