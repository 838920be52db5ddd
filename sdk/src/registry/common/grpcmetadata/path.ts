/**
 * The registry path side channel (docs/wire-compatibility.md#registry-path-metadata): Register and Unregister carry
 * the chain of hop tokens as JSON in the request metadata key `path` (`{"Index":n,"PathSegments":[{"token":"…"}]}`,
 * Go `encoding/json` field names), and the server answers with the updated document in the response header of the
 * same key. Find carries none.
 */
import { type CallContext, ContextKey } from "@nsm-ts/base/context";
import { Code, fail } from "@nsm-ts/base/status";

/** Metadata (request) and header (response) key of the registry path. */
export const PATH_METADATA_KEY = "path";

/** One hop of a registry path: just its token, as upstream's registry path has no names or ids. */
export interface RegistryPathSegment {
  token: string;
}

/** The registry path of one Register/Unregister call; elements update it in place (index and segments). */
export interface RegistryPath {
  index: number;
  segments: RegistryPathSegment[];
}

/** Context key of the call's registry path (set by the gRPC server adapter or the client `updatepath`). */
export const pathKey = new ContextKey<RegistryPath>("registry.path");

/** The call's path, or undefined when no element or transport put one there. */
export function pathOf(ctx: CallContext): RegistryPath | undefined {
  return pathKey.get(ctx);
}

/** An empty path (what a server starts from when an old client sends none). */
export function emptyPath(): RegistryPath {
  return { index: 0, segments: [] };
}

/** The JSON a Go peer produces for `path`: exactly `Index` then `PathSegments`, segments as `{"token":…}`. */
export function formatPath(path: RegistryPath): string {
  return JSON.stringify({ Index: path.index, PathSegments: path.segments.map((s) => ({ token: s.token })) });
}

/** Go's decoder matches object keys case-insensitively; so do we, so any Go-compatible peer is understood. */
function field(obj: Record<string, unknown>, name: string): unknown {
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(obj)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/** Parses a `path` document; InvalidArgument naming the bad field when it is not one. `null` segments = none. */
export function parsePath(json: string): RegistryPath {
  const bad = (why: string): never => fail(Code.InvalidArgument, `grpcmetadata: path metadata ${why}`);
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (err) {
    return bad(`is not JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return bad("is not a JSON object");
  const rawIndex = field(doc as Record<string, unknown>, "Index") ?? 0;
  if (typeof rawIndex !== "number" || !Number.isInteger(rawIndex) || rawIndex < 0 || rawIndex > 0xffffffff) {
    return bad(`field Index must be a non-negative integer, got ${JSON.stringify(rawIndex)}`);
  }
  const rawSegments = field(doc as Record<string, unknown>, "PathSegments") ?? [];
  if (!Array.isArray(rawSegments)) return bad("field PathSegments must be an array");
  const segments = rawSegments.map((s: unknown, i): RegistryPathSegment => {
    if (s === null) return { token: "" };
    if (typeof s !== "object" || Array.isArray(s)) return bad(`field PathSegments[${i}] must be an object`);
    const token = field(s as Record<string, unknown>, "token") ?? "";
    if (typeof token !== "string") return bad(`field PathSegments[${i}].token must be a string`);
    return { token };
  });
  return { index: rawIndex, segments };
}

/** Copies `from` into `to` in place (the client adopting the server's answer). */
export function assignPath(to: RegistryPath, from: RegistryPath): void {
  to.index = from.index;
  to.segments = from.segments.map((s) => ({ token: s.token }));
}
