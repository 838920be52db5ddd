/** Builders and waits shared by the services tests. */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  type Backend,
  BackendSchema,
  type Frontend,
  FrontendSchema,
  type LocalRedirect,
  LocalRedirectSchema,
  type ObjectRef,
  ObjectRefSchema,
  type ResolvedService,
  type ResolvedServiceEvent,
  type Service,
  ServiceSchema,
} from "@nsm-ts/api/services";
import type { ServiceModel } from "./model.js";
import { watchResolved } from "./watch.js";

export const svc = (init: MessageInitShape<typeof ServiceSchema>): Service => create(ServiceSchema, init);
export const be = (init: MessageInitShape<typeof BackendSchema>): Backend => create(BackendSchema, init);
export const ref = (init: MessageInitShape<typeof ObjectRefSchema>): ObjectRef => create(ObjectRefSchema, init);
export const lr = (init: MessageInitShape<typeof LocalRedirectSchema>): LocalRedirect => create(LocalRedirectSchema, init);
export const fe = (init: MessageInitShape<typeof FrontendSchema>): Frontend => create(FrontendSchema, init);

/** The resolved view of `name` for `node` now. */
export function resolved(model: ServiceModel, name: string, node = ""): ResolvedService | undefined {
  return model.resolve(model.readTxn(), name, node);
}

/** Backend addresses (with port and source) of a resolved service, sorted. */
export const backendsOf = (r: ResolvedService | undefined): string[] =>
  (r?.backends ?? []).map((b) => `${b.address}:${b.port}@${b.source}`).sort();

/**
 * Follows the resolved watch of one service and resolves with the first event matching `pred` — tests wait on
 * it instead of sleeping. Stops the watch afterwards.
 */
export async function waitResolved(
  model: ServiceModel,
  service: string,
  pred: (ev: ResolvedServiceEvent) => boolean,
  node = "",
): Promise<ResolvedServiceEvent> {
  const ac = new AbortController();
  try {
    for await (const ev of watchResolved(model, { service, node }, ac.signal)) if (!ev.synced && pred(ev)) return ev;
    throw new Error("watch ended");
  } finally {
    ac.abort();
  }
}
