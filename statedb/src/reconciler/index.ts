/**
 * Drives an outside system towards the contents of a state table, with a status per object, retries with
 * exponential backoff, periodic refresh and pruning.
 */
export {
  createReconciler,
  type Operations,
  pendingStatus,
  type Reconciler,
  type ReconcilerOptions,
  type Status,
  type StatusKind,
} from "./reconciler.js";
