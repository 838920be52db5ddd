/**
 * authorize (registry server): only the original registrant of a name may refresh or unregister it (policy
 * `registry_client_allowed`), so one workload cannot take over another's endpoint or service. The owner is
 * `path_ids[0]` stored for the name; the caller is the mTLS peer when it is the first hop, else the subject of
 * the path's first token. Before that, the registry path itself is checked (docs/wire-compatibility.md#registry-ownership):
 * - `tokens_valid`: every token of the path up to the caller's decodes;
 * - `tokens_expired` (Register only): those tokens and the caller's per-RPC token have an `exp` in the future
 *   (and a reached `nbf`), by the clock, never by the `expires` metadata;
 * - `prev_token_signed`: the caller's segment is signed by the mTLS peer's certificate key;
 * - `registry_path_allowed`: a path of more than one hop (the registrant is not our peer) is accepted only
 *   from a registrar, a peer allowed to register on behalf of others (an nsmgr; see `registrars`).
 * Calls without a peer (in-process) skip the path checks; without a peer certificate (dev mode) the signature
 * and registrar checks are skipped but the expiry check is not.
 * Reads: the `pathKey` context value, `ctx.peer`, `ctx.clock`. Place after `updatepath` and `begin` (so racing
 * callers for a new name are checked one at a time).
 */
import type { CallContext } from "@nsm-ts/base/context";
import {
  enforce,
  type Policy,
  type RegistryPolicyInput,
  registryClientAllowed,
  spiffeIdMatcher,
  tokenTimeProblem,
} from "@nsm-ts/base/policy";
import { Code, StatusError } from "@nsm-ts/base/status";
import { decodeToken, verifyToken } from "@nsm-ts/base/token";
import type { RegistryElement, RegistryEntry } from "../../core/index.js";
import { pathKey } from "../grpcmetadata/index.js";
import { subjectOf } from "../updatepath/index.js";

/** Options of `authorize.newServer`. */
export interface AuthorizeOptions {
  /** Policies to enforce; default `[registryClientAllowed]`. */
  policies?: readonly Policy<RegistryPolicyInput>[];
  /**
   * The stored `path_ids` of a name, or undefined when it is not registered. Pass the store's lookup so the rule
   * holds across replicas and survives expiry; default: a map this element keeps from its own calls.
   */
  owners?: (name: string) => Promise<readonly string[] | undefined>;
  /**
   * Whether a peer (its SPIFFE ID) may register on behalf of others, i.e. send a path of more than one hop;
   * default `isNsmgrId` (an nsmgr identity). Pass `() => false` where only direct registrants are expected.
   */
  registrars?: (spiffeId: string) => boolean;
}

/**
 * The default registrar rule: a SPIFFE ID whose last path component starts with `nsmgr` (`spiffe://td/nsmgr`,
 * `spiffe://td/nsmgr-node1`, `spiffe://td/ns/nsm-system/sa/nsmgr-sa`). mTLS already limits peers to the trust
 * bundle, so the trust domain is the one of the CA; the name says which workload is an nsmgr.
 */
export function isNsmgrId(spiffeId: string): boolean {
  const m = /^spiffe:\/\/[^/]+\/(.*)$/.exec(spiffeId);
  const last = m?.[1]?.split("/").at(-1) ?? "";
  return last.startsWith("nsmgr");
}

/** Compiles a list of SPIFFE ID patterns (`*` matches any run of characters) into a registrar rule. */
export function registrarPatterns(patterns: readonly string[]): (spiffeId: string) => boolean {
  return spiffeIdMatcher(patterns);
}

function deny(policy: string, reason: string): never {
  throw new StatusError(Code.PermissionDenied, `authorize: policy ${policy} denied: ${reason}`);
}

/** The path checks of the header comment; `register` says whether expiry applies. */
async function checkPath(ctx: CallContext, register: boolean, registrars: (id: string) => boolean): Promise<void> {
  const peer = ctx.peer;
  if (peer === undefined) return;
  const path = pathKey.get(ctx);
  const own = path?.index ?? 0;
  const theirs = (path?.segments ?? []).slice(0, own).map((s) => s.token);
  const now = ctx.clock.now();
  const tokens = peer.token ? [...theirs, peer.token.token] : theirs;
  for (const [i, t] of tokens.entries()) {
    const which = i < theirs.length ? `token of path segment ${i}` : "per-RPC token";
    let claims: ReturnType<typeof decodeToken>;
    try {
      claims = decodeToken(t);
    } catch (err) {
      deny("tokens_valid", `${which} is invalid: ${(err as Error).message}`);
    }
    const problem = register ? tokenTimeProblem(claims, now) : undefined;
    if (problem !== undefined) deny("tokens_expired", `${which} ${problem}`);
  }
  if (peer.certificate === undefined) return;
  const prev = theirs.at(-1);
  if (prev === undefined || !(await verifyToken(prev, peer.certificate.publicKey))) {
    deny("prev_token_signed", `token of path segment ${own - 1} is not signed by the peer ${peer.spiffeId ?? ""}`);
  }
  if (own > 1 && !registrars(peer.spiffeId ?? "")) {
    deny(
      "registry_path_allowed",
      `a path of ${own} hops is accepted only from a registrar; ${JSON.stringify(peer.spiffeId ?? "")} is not one`,
    );
  }
}

/** The registrant's SPIFFE ID: the mTLS peer when it is the first hop, else the first path token's subject. */
export function callerOf(ctx: CallContext): string {
  const path = pathKey.get(ctx);
  // When the registrant is our direct peer (we are hop 1), its mTLS certificate is proof; a token is only a claim.
  if (ctx.peer?.spiffeId !== undefined && (path === undefined || path.index <= 1)) return ctx.peer.spiffeId;
  return subjectOf(path?.segments[0]?.token) ?? ctx.peer?.spiffeId ?? subjectOf(ctx.peer?.token?.token) ?? "";
}

/** Creates the server element (see the header comment). */
export function newServer<T extends RegistryEntry>(opts: AuthorizeOptions = {}): RegistryElement<T> {
  const policies = opts.policies ?? [registryClientAllowed];
  const local = new Map<string, string[]>();
  const owners = opts.owners ?? (async (name: string) => local.get(name));
  const registrars = opts.registrars ?? isNsmgrId;
  const check = async (ctx: CallContext, name: string, register: boolean): Promise<void> => {
    await checkPath(ctx, register, registrars);
    const ids = await owners(name);
    const pathIdsMap = new Map<string, string[]>();
    if (ids !== undefined) pathIdsMap.set(name, [...ids]);
    await enforce(policies, { resourceId: callerOf(ctx), resourceName: name, pathIdsMap }, "authorize");
  };
  return {
    name: "authorize",
    async register(ctx, entry, next) {
      await check(ctx, entry.name, true);
      const res = await next.register(ctx, entry);
      if (opts.owners === undefined && !local.has(res.name)) local.set(res.name, [...res.pathIds]);
      return res;
    },
    find: (ctx, query, next) => next.find(ctx, query),
    async unregister(ctx, entry, next) {
      await check(ctx, entry.name, false);
      await next.unregister(ctx, entry);
      local.delete(entry.name);
    },
  };
}

/**
 * The owner rule as a check for the store element's compare-and-swap (`store.newServer(s, { check })`): the same
 * policies, applied to the entry the swap is based on, so two replicas cannot both hand out a new name.
 */
export function ownerCheck<T extends RegistryEntry>(
  policies: readonly Policy<RegistryPolicyInput>[] = [registryClientAllowed],
): (ctx: CallContext, stored: T | undefined, incoming: T) => Promise<void> {
  return async (ctx, stored, incoming) => {
    const pathIdsMap = new Map<string, string[]>();
    if (stored !== undefined) pathIdsMap.set(stored.name, [...stored.pathIds]);
    await enforce(policies, { resourceId: callerOf(ctx), resourceName: incoming.name, pathIdsMap }, "authorize");
  };
}
