/**
 * Drives an outside system towards the contents of a state table, with a status per object, retries with
 * exponential backoff, periodic refresh and pruning.
 */
export {
  type Operations,
  type Reconciler,
  type ReconcilerOptions,
  type Status,
  type StatusKind,
  createReconciler,
  pendingStatus,
} from "./reconciler.js";
