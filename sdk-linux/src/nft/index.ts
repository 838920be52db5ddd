/**
 * A generic nftables layer: whole tables of ours (prefix `nsmts_`) applied atomically inside a network namespace
 * with one `nft -f -` transaction, deleted, listed, and found or removed as leftovers.
 */
export { createNftExecutor, type NftExecutor, type NftExecutorOptions, nftFailure, parseTables } from "./executor.js";
export { findNftLeftovers, type NftLeftoverOptions, type NftTableIn, removeNftLeftovers } from "./leftovers.js";
export {
  isNftFamily,
  NFT_TABLE_PREFIX,
  type NftChain,
  type NftChainHook,
  type NftFamily,
  type NftHook,
  type NftSet,
  type NftTable,
  type NftTableRef,
  renderDelete,
  renderTable,
  tableSpec,
  validateNftName,
  validateTableName,
} from "./table.js";
