/**
 * Tokens of nsm-ts: ES256 JWT generation and checking, the RFC 3339 expiry format, the per-RPC metadata
 * side channel. See README.md.
 */

export { formatExpires, parseExpires, parseExpiresTimestamp, type TimestampLike } from "./expires.js";
export { EXPIRES_METADATA_KEY, TOKEN_METADATA_KEY, tokenFromMetadata, tokenMetadata } from "./metadata.js";
export {
  createTokenGenerator,
  decodeToken,
  peerFromCertificate,
  type Token,
  type TokenClaims,
  type TokenGenerator,
  type TokenGeneratorOptions,
  tokenVerifyStats,
  type VerifyTokenOptions,
  verifyToken,
} from "./token.js";
