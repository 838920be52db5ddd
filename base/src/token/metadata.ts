/**
 * The per-RPC token side channel (docs/wire-compatibility.md#token-metadata): every call carries the caller's
 * token and its expiry as request metadata, and a server reads them back under upstream's exactly-one-value rule.
 */
import { formatExpires, parseExpires } from "./expires.js";
import type { Token } from "./token.js";

/** Request metadata key of the caller's JWT. */
export const TOKEN_METADATA_KEY = "nsm-client-token";

/** Request metadata key of the JWT's expiry (RFC 3339 with nanoseconds). */
export const EXPIRES_METADATA_KEY = "nsm-client-token-expires";

/** The two metadata entries that carry `t` on an outgoing call. */
export function tokenMetadata(t: Token): Record<string, string> {
  return { [TOKEN_METADATA_KEY]: t.token, [EXPIRES_METADATA_KEY]: formatExpires(t.expires) };
}

/**
 * Reads the caller's token from incoming metadata (keys lower-case, as gRPC delivers them). Exactly one
 * non-empty value per key and a parsable expiry are required; otherwise the token counts as absent,
 * as upstream does.
 */
export function tokenFromMetadata(all: Readonly<Record<string, readonly string[]>>): Token | undefined {
  const tokens = all[TOKEN_METADATA_KEY];
  const expires = all[EXPIRES_METADATA_KEY];
  if (tokens?.length !== 1 || expires?.length !== 1) return undefined;
  const token = tokens[0];
  const when = parseExpires(expires[0] ?? "");
  if (!token || when === undefined) return undefined;
  return { token, expires: when };
}
