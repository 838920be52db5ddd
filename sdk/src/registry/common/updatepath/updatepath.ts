/**
 * updatepath (registry): each hop of a Register/Unregister adds its own token to the call's registry path and its
 * SPIFFE ID to the entry's `path_ids`, so the registry knows who registered a name (`path_ids[0]`, used by
 * authorize) and which hops it went through. Reads/writes: the `pathKey` context value, `entry.path_ids`.
 * Server: place right after the transport (first in the chain). Client: place just before `connect`.
 */
import type { CallContext } from "@nsm-ts/base/context";
import { Code, fail } from "@nsm-ts/base/status";
import { decodeToken, type Token, type TokenGenerator } from "@nsm-ts/base/token";
import type { RegistryElement, RegistryEntry } from "../../core/index.js";
import { cloneEntry, setPathId } from "../entry.js";
import { emptyPath, pathKey, type RegistryPath } from "../grpcmetadata/index.js";

/**
 * Moves the path to the next hop and stores `token` there (a new segment at the end, or the existing one on a
 * refresh through the same hops). Returns the index to restore once the call returns, as upstream does.
 */
export function updatePath(path: RegistryPath, token: string): number {
  if (path.segments.length === 0) {
    path.index = 0;
    path.segments.push({ token });
    return 0;
  }
  if (path.index >= path.segments.length) {
    fail(
      Code.InvalidArgument,
      `updatepath: path Index ${path.index} must be less than the number of PathSegments (${path.segments.length})`,
    );
  }
  const prev = path.index;
  path.index++;
  const seg = path.segments[path.index];
  if (seg === undefined) path.segments.push({ token });
  else seg.token = token;
  return prev;
}

/** The SPIFFE ID (`sub`) of a token, or undefined when it has none or is not a JWT. */
export function subjectOf(token: string | undefined): string | undefined {
  if (!token) return undefined;
  try {
    return decodeToken(token).sub;
  } catch {
    return undefined;
  }
}

async function ownToken(ctx: CallContext, gen: TokenGenerator): Promise<Token> {
  const peer = ctx.peer;
  return gen(peer === undefined ? undefined : { spiffeId: peer.spiffeId, certificate: peer.certificate });
}

/** Server side: the caller's segment is the current one; ours goes after it (see the header comment). */
export function newServer<T extends RegistryEntry>(gen: TokenGenerator): RegistryElement<T> {
  const run = async <R>(ctx: CallContext, entry: T, call: (ctx: CallContext, e: T) => Promise<R>): Promise<R> => {
    let path = pathKey.get(ctx);
    if (path === undefined) {
      path = emptyPath();
      ctx = ctx.with(pathKey, path);
    }
    // An old client sends no path: its per-RPC token stands in for its segment, so ownership still works.
    if (path.segments.length === 0 && ctx.peer?.token !== undefined) path.segments.push({ token: ctx.peer.token.token });
    const callerId = ctx.peer?.spiffeId ?? subjectOf(path.segments[path.index]?.token) ?? subjectOf(ctx.peer?.token?.token);
    const tok = await ownToken(ctx, gen);
    const prev = updatePath(path, tok.token);
    const e = cloneEntry(entry);
    if (path.index >= 1 && callerId !== undefined) e.pathIds = setPathId(e.pathIds, path.index - 1, callerId);
    const ownId = subjectOf(tok.token);
    if (ownId !== undefined) e.pathIds = setPathId(e.pathIds, path.index, ownId);
    try {
      return await call(ctx, e);
    } finally {
      path.index = prev;
    }
  };
  return {
    name: "updatepath",
    register: (ctx, entry, next) => run(ctx, entry, (c, e) => next.register(c, e)),
    find: (ctx, query, next) => next.find(ctx, query),
    unregister: (ctx, entry, next) => run(ctx, entry, (c, e) => next.unregister(c, e)),
  };
}

/** Client side: starts (or continues) the path with our own token at the current hop. */
export function newClient<T extends RegistryEntry>(gen: TokenGenerator): RegistryElement<T> {
  const run = async <R>(ctx: CallContext, entry: T, call: (ctx: CallContext, e: T) => Promise<R>): Promise<R> => {
    let path = pathKey.get(ctx);
    if (path === undefined) {
      path = emptyPath();
      ctx = ctx.with(pathKey, path);
    }
    const tok = await ownToken(ctx, gen);
    const prev = updatePath(path, tok.token);
    const e = cloneEntry(entry);
    const ownId = subjectOf(tok.token);
    if (ownId !== undefined) e.pathIds = setPathId(e.pathIds, path.index, ownId);
    try {
      return await call(ctx, e);
    } finally {
      path.index = prev;
    }
  };
  return {
    name: "updatepath",
    register: (ctx, entry, next) => run(ctx, entry, (c, e) => next.register(c, e)),
    find: (ctx, query, next) => next.find(ctx, query),
    unregister: (ctx, entry, next) => run(ctx, entry, (c, e) => next.unregister(c, e)),
  };
}
