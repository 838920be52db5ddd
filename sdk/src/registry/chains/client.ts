/**
 * The registry client chains (what endpoints, nsmgrs and tools use to talk to a registry): begin → retry →
 * [heal] → refresh → [clientinfo] → updatepath → connect. Registering through it keeps the entry alive (refresh,
 * optionally heal) until Unregister or until `signal` aborts.
 */
import type { NetworkService, NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import type { Channel } from "@nsm-ts/base/grpc";
import type { TokenGenerator } from "@nsm-ts/base/token";
import * as begin from "../common/begin/index.js";
import * as clientinfo from "../common/clientinfo/index.js";
import * as connect from "../common/connect/index.js";
import * as heal from "../common/heal/index.js";
import * as refresh from "../common/refresh/index.js";
import * as retry from "../common/retry/index.js";
import * as updatepath from "../common/updatepath/index.js";
import { type RegistryElement, type RegistryHandler, registryChain, registryHandler } from "../core/index.js";
import type { RegistryEntryOf, RegistryKind } from "../store/index.js";

/** Options of `createRegistryClient`. */
export interface RegistryClientOptions {
  /** Makes our path-segment and per-RPC tokens. */
  tokenGenerator: TokenGenerator;
  /** Ends refresh and heal work when aborted. */
  signal?: AbortSignal;
  /** Watch our own registrations and restore them (heal); default false. */
  heal?: boolean;
  /** Labels added to every service of an endpoint (clientinfo). */
  clientInfo?: clientinfo.ClientInfoOptions;
  /** retry options; default 1 s interval, 15 s budget. */
  retry?: retry.RetryOptions;
  /** Elements run just before `updatepath` (e.g. localbypass-style rewrites). */
  additional?: RegistryElement<NetworkService | NetworkServiceEndpoint>[];
}

/** A registry client chain for `kind` on `channel`. */
export function createRegistryClient<K extends RegistryKind>(
  kind: K,
  channel: Channel | (() => Channel),
  opts: RegistryClientOptions,
): RegistryHandler<RegistryEntryOf[K]> {
  type T = RegistryEntryOf[K];
  const lifetime = opts.signal === undefined ? {} : { signal: opts.signal };
  const els: RegistryElement<T>[] = [begin.newClient<T>(), retry.newClient<T>(opts.retry ?? {})];
  if (opts.heal === true) els.push(heal.newClient<T>(lifetime));
  els.push(refresh.newClient<T>(lifetime));
  if (opts.clientInfo !== undefined) els.push(clientinfo.newClient<T>(opts.clientInfo));
  for (const a of opts.additional ?? []) els.push(a as unknown as RegistryElement<T>);
  els.push(updatepath.newClient<T>(opts.tokenGenerator));
  els.push(connect.newClient(kind, channel, { tokenGenerator: opts.tokenGenerator }));
  return registryHandler(registryChain<T>(...els));
}
