/**
 * Tokens of nsm-ts: ES256 JWT generation and checking, the RFC 3339 expiry format, the per-RPC metadata
 * side channel, and test tokens. See README.md.
 */
export {
  type Token,
  type PeerInfo,
  type TokenGenerator,
  type TokenGeneratorOptions,
  type TokenClaims,
  type VerifyTokenOptions,
  createTokenGenerator,
  decodeToken,
  verifyToken,
  peerFromCertificate,
} from "./token.js";
export { type TimestampLike, formatExpires, parseExpires, parseExpiresTimestamp } from "./expires.js";
export { TOKEN_METADATA_KEY, EXPIRES_METADATA_KEY, tokenMetadata, tokenFromMetadata } from "./metadata.js";
export {
  TEST_SPIFFE_ID,
  TEST_TOKEN_LIFETIME_MS,
  type TestTokenOptions,
  testIdentity,
  createTestTokenGenerator,
  generateTestToken,
} from "./testing.js";
