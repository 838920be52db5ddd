/**
 * The registry server chains (what cmd-registry serves): for endpoints validate → updatepath → begin → authorize →
 * setregistrationtime → expire → store, for network services validate → updatepath → begin → authorize →
 * setpayload → store; interdomain names (`name@domain`) leave both chains before the store, for the registry
 * proxy (`proxyRegistry`, see `newInterdomainSwitch`). begin runs before authorize so two callers racing for a new name cannot both pass the owner
 * check. Ownership and the first registration time are read back from the store, so they hold
 * across replicas sharing an etcd and across expiry.
 */
import type { NetworkService, NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import type { Channel } from "@nsm-ts/base/grpc";
import type { TokenGenerator } from "@nsm-ts/base/token";
import * as authorize from "../common/authorize/index.js";
import * as begin from "../common/begin/index.js";
import * as expire from "../common/expire/index.js";
import * as setpayload from "../common/setpayload/index.js";
import * as setregistrationtime from "../common/setregistrationtime/index.js";
import * as store from "../common/store/index.js";
import * as updatepath from "../common/updatepath/index.js";
import * as validate from "../common/validate/index.js";
import { type NseHandler, type NsHandler, registryChain, registryHandler } from "../core/index.js";
import type { RegistryStore } from "../store/index.js";
import { newInterdomainSwitch } from "./interdomain.js";

/** Options of `createRegistryServer`. */
export interface RegistryServerOptions {
  /** Signs this registry's path segments. */
  tokenGenerator: TokenGenerator;
  /** Where network services live. */
  nsStore: RegistryStore<NetworkService>;
  /** Where endpoints live. */
  nseStore: RegistryStore<NetworkServiceEndpoint>;
  /** Longest registration lifetime without a refresh; default 60 000 ms (`NSM_EXPIRE_PERIOD`). */
  expirePeriodMs?: number;
  /**
   * Who may register on behalf of others (send a registry path of more than one hop), by SPIFFE ID; passed to
   * both `authorize` elements. Default `authorize.isNsmgrId`; `authorize.registrarPatterns` builds one from
   * `*` patterns (`NSM_REGISTRARS`).
   */
  registrars?: (spiffeId: string) => boolean;
  /**
   * Where interdomain names (`name@domain`) go instead of the stores: the registry of this domain's nsmgr-proxy
   * (`NSM_PROXY_REGISTRY_URL`). Default none: such names are `FailedPrecondition`.
   */
  proxyRegistry?: Channel | (() => Channel);
}

/** The two handlers a registry serves (pass them to `serveRegistry`). */
export interface RegistryServer {
  ns: NsHandler;
  nse: NseHandler;
}

/** Builds the registry server chains over the given stores. */
export function createRegistryServer(opts: RegistryServerOptions): RegistryServer {
  const owners =
    <T extends NetworkService | NetworkServiceEndpoint>(s: RegistryStore<T>) =>
    async (name: string): Promise<readonly string[] | undefined> =>
      (await s.get(name))?.pathIds;
  const registrars = opts.registrars === undefined ? {} : { registrars: opts.registrars };
  const nse = registryHandler(
    registryChain<NetworkServiceEndpoint>(
      validate.newServer(),
      updatepath.newServer(opts.tokenGenerator),
      begin.newServer(),
      authorize.newServer({ owners: owners(opts.nseStore), ...registrars }),
      newInterdomainSwitch("nse", opts.proxyRegistry, opts.tokenGenerator),
      setregistrationtime.newServer({ lookup: (name) => opts.nseStore.get(name) }),
      expire.newServer(opts.expirePeriodMs === undefined ? {} : { expirePeriodMs: opts.expirePeriodMs }),
      store.newServer(opts.nseStore, { check: authorize.ownerCheck() }),
    ),
  );
  const ns = registryHandler(
    registryChain<NetworkService>(
      validate.newServer(),
      updatepath.newServer(opts.tokenGenerator),
      begin.newServer(),
      authorize.newServer({ owners: owners(opts.nsStore), ...registrars }),
      newInterdomainSwitch("ns", opts.proxyRegistry, opts.tokenGenerator),
      setpayload.newServer(),
      store.newServer(opts.nsStore, { check: authorize.ownerCheck() }),
    ),
  );
  return { ns, nse };
}
