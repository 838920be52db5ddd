/** What a delivery target is: something that applies one outbox entry of one cluster, idempotently. */
import type { Cluster } from "@nsm-ts/api/intents";
import type { OutboxEntry } from "../model.js";

/** An outbox entry as a worker hands it over: with the store revision it was enqueued at. */
export interface Delivery extends OutboxEntry {
  readonly cluster: string;
  readonly revision: string;
}

/**
 * Applies entries of one cluster target, in sequence order. `apply` must be idempotent: an entry it applied
 * before (the worker crashed or lost its lock before recording it) is applied again without a second effect.
 */
export interface DeliveryTarget {
  apply(d: Delivery, signal: AbortSignal): Promise<void>;
  close?(): Promise<void>;
}

/** Builds the target `target` ("git", "registry", "kubernetes") of a cluster. */
export type TargetFactory = (cluster: Cluster, target: string) => DeliveryTarget;
