/**
 * Path-segment tokens: ES256 JWTs with exactly the upstream claims (`sub`, `aud` when the peer is known,
 * `exp`), so upstream NSM peers and their policies accept ours and the other way round
 * (docs/wire-compatibility.md#token-format).
 */
import { createHash, type KeyObject, type webcrypto, X509Certificate } from "node:crypto";
import { decodeJwt, decodeProtectedHeader, type JWTPayload } from "jose";
import { type Clock, realClock } from "../clock/index.js";
import { certificateNotAfter, type Identity, type PeerInfo, spiffeIdOf } from "../identity/index.js";
import { Code, fail, StatusError } from "../status/index.js";
import { signEs256, verifyEs256 } from "./jws.js";

/** A signed token and its expiry (= the JWT `exp`, whole seconds). */
export interface Token {
  /** The compact JWT. */
  token: string;
  /** When the token expires; equals `exp` × 1000 ms. */
  expires: Date;
}

/** Makes a token for a call to (client) or from (server) `peer`. */
export type TokenGenerator = (peer?: PeerInfo) => Promise<Token>;

/** Options for `createTokenGenerator`. */
export interface TokenGeneratorOptions {
  /** Upper bound on token lifetime (upstream `NSM_MAX_TOKEN_LIFETIME`, default 10 min in the programs). */
  maxTokenLifetimeMs: number;
  /** Source of "now"; default the real clock. */
  clock?: Clock;
}

/** Claims of a decoded (not verified) token. */
export interface TokenClaims {
  /** Issuer identity (SPIFFE ID of the hop that made the token). */
  sub?: string;
  /** Audiences, normalised to a list (empty when absent). */
  aud: string[];
  /** Expiry, seconds since the epoch. */
  exp?: number;
  /** Not valid before, seconds since the epoch (our tokens and upstream's never set it; policies honour it). */
  nbf?: number;
}

/** Builds the peer info for a TLS peer certificate (its SPIFFE ID from the URI SAN). */
export function peerFromCertificate(certificate: X509Certificate): PeerInfo {
  const spiffeId = spiffeIdOf(certificate);
  return spiffeId === undefined ? { certificate } : { spiffeId, certificate };
}

/**
 * Sets `key` as the newest entry of `map`, first dropping the oldest when `map` already holds `max` (the token
 * caches below are small and keyed by what recent calls carried, so insertion order is a good enough recency).
 */
function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  if (map.size >= max) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
  map.set(key, value);
}

/** The last token signed for one audience, and what it was signed with. */
interface Signed {
  exp: number;
  token: string;
  sub: string;
  key: webcrypto.CryptoKey | KeyObject;
}

/** Audiences whose last token a generator keeps (a hop talks to a handful of peers). */
const SIGNED_CACHE_MAX = 256;

/**
 * Creates the token generator of a workload: ES256 signed with the identity's key, `sub` = own SPIFFE ID,
 * `aud` = [peer SPIFFE ID] only when known, `exp` = min(now + max lifetime, own cert expiry, peer cert
 * expiry) truncated to whole seconds. No other claims, as upstream.
 *
 * A hop asks for several tokens per Request (its path segment, the per-RPC token, each for the same peer), and
 * every Request within one second would carry the same claims: the generator signs once per audience and `exp`
 * second and hands the same JWT out again while `exp`, the identity's key and SPIFFE ID are unchanged, so a
 * token is never older or longer-lived than a fresh one would be (and the next hop's verify cache hits).
 */
export function createTokenGenerator(id: Identity, opts: TokenGeneratorOptions): TokenGenerator {
  const clock = opts.clock ?? realClock;
  const maxMs = opts.maxTokenLifetimeMs;
  if (!Number.isFinite(maxMs) || maxMs < 1000) {
    fail(Code.InvalidArgument, `token: maxTokenLifetimeMs must be at least 1000, got ${maxMs}`);
  }
  const signed = new Map<string, Signed>();
  const generate = (peer?: PeerInfo): Token => {
    const now = clock.now();
    let expMs = now + maxMs;
    if (id.notAfter) expMs = Math.min(expMs, id.notAfter.getTime());
    if (peer?.certificate) expMs = Math.min(expMs, certificateNotAfter(peer.certificate).getTime());
    const exp = Math.floor(expMs / 1000);
    if (exp * 1000 <= now) {
      fail(Code.FailedPrecondition, `token: cannot issue a token, a certificate expired at ${new Date(expMs).toISOString()}`);
    }
    const aud = peer?.spiffeId ?? (peer?.certificate ? spiffeIdOf(peer.certificate) : undefined);
    const slot = aud ?? "";
    const last = signed.get(slot);
    if (last !== undefined && last.exp === exp && last.sub === id.spiffeId && last.key === id.privateKey) {
      return { token: last.token, expires: new Date(exp * 1000) };
    }
    // Claim order follows Go's RegisteredClaims (sub, aud, exp) so tokens look the same on the wire.
    const claims: JWTPayload = aud === undefined ? { sub: id.spiffeId, exp } : { sub: id.spiffeId, aud: [aud], exp };
    const token = signEs256(claims, id.privateKey);
    setBounded(signed, slot, { exp, token, sub: id.spiffeId, key: id.privateKey }, SIGNED_CACHE_MAX);
    return { token, expires: new Date(exp * 1000) };
  };
  return async (peer) => generate(peer);
}

/**
 * Decoded claims of recently seen tokens. Policies decode the same few tokens several times per call
 * (valid, expired, chained), and base64+JSON is most of their cost; a small bounded cache removes it.
 */
const decoded = new Map<string, TokenClaims>();
const DECODE_CACHE_MAX = 1024;

/**
 * Decodes a token's claims without verifying the signature. Throws `Unauthenticated` for an empty token
 * and `InvalidArgument` for anything that is not a JWT or has mistyped `sub`/`aud`/`exp`.
 */
export function decodeToken(token: string): TokenClaims {
  let claims = decoded.get(token);
  if (claims === undefined) {
    claims = decodeUncached(token);
    setBounded(decoded, token, claims, DECODE_CACHE_MAX);
  }
  // A copy, so a caller that edits the result cannot poison the cache.
  return { ...claims, aud: [...claims.aud] };
}

function decodeUncached(token: string): TokenClaims {
  if (token === "") fail(Code.Unauthenticated, "token: missing");
  let payload: JWTPayload;
  try {
    decodeProtectedHeader(token);
    payload = decodeJwt(token);
  } catch (err) {
    throw new StatusError(Code.InvalidArgument, `token: malformed JWT: ${(err as Error).message}`, { cause: err });
  }
  const { sub, aud, exp, nbf } = payload;
  if (sub !== undefined && typeof sub !== "string") fail(Code.InvalidArgument, "token: sub is not a string");
  if (exp !== undefined && (typeof exp !== "number" || !Number.isFinite(exp))) {
    fail(Code.InvalidArgument, "token: exp is not a number");
  }
  if (nbf !== undefined && (typeof nbf !== "number" || !Number.isFinite(nbf))) {
    fail(Code.InvalidArgument, "token: nbf is not a number");
  }
  let auds: string[];
  if (aud === undefined) auds = [];
  else if (typeof aud === "string") auds = [aud];
  else if (Array.isArray(aud) && aud.every((a) => typeof a === "string")) auds = [...aud];
  else fail(Code.InvalidArgument, "token: aud is not a string or a list of strings");
  const out: TokenClaims = { aud: auds };
  if (sub !== undefined) out.sub = sub;
  if (exp !== undefined) out.exp = exp;
  if (nbf !== undefined) out.nbf = nbf;
  return out;
}

/** Options for `verifyToken`. */
export interface VerifyTokenOptions {
  /** When set, the token must also not be expired at this time (ms or Date; pass `clock.now()`). */
  now?: number | Date;
}

/**
 * Signatures already checked, per (public key, token). Every hop verifies every earlier segment's token on each
 * Request and refresh, so the same few tokens are verified again and again; a valid signature stays valid, so
 * one check is enough (only successes are kept; the claims are still checked against `now` on every call).
 */
const verifiedSignatures = new Map<string, true>();
const VERIFY_CACHE_MAX = 4096;
const verifyCounts = { cryptoChecks: 0, cacheHits: 0 };

/** How many signature checks ran the crypto and how many a cached success answered (for metrics and tests). */
export function tokenVerifyStats(): { cryptoChecks: number; cacheHits: number } {
  return { ...verifyCounts };
}
const keyIds = new WeakMap<KeyObject, string>();

/** A stable id of a public key (a certificate's `publicKey` is a new object on every read). */
function keyId(key: KeyObject): string {
  let id = keyIds.get(key);
  if (id === undefined) {
    id = createHash("sha256")
      .update(key.export({ type: "spki", format: "der" }))
      .digest("base64");
    keyIds.set(key, id);
  }
  return id;
}

/**
 * True when `token` is an ES256 JWT signed by `key` (or the certificate's key). By default only the
 * signature is checked (as upstream's `io.jwt.verify_es256`); with `now` the `exp` (and `nbf`) claims are checked
 * too, as a JWT verification at that time would.
 */
export async function verifyToken(token: string, key: KeyObject | X509Certificate, opts: VerifyTokenOptions = {}): Promise<boolean> {
  const publicKey = key instanceof X509Certificate ? key.publicKey : key;
  const cacheKey = `${keyId(publicKey)} ${token}`;
  if (verifiedSignatures.has(cacheKey)) verifyCounts.cacheHits++;
  else {
    verifyCounts.cryptoChecks++;
    if (!verifyEs256(token, publicKey)) return false;
    setBounded(verifiedSignatures, cacheKey, true, VERIFY_CACHE_MAX);
  }
  if (opts.now === undefined) return true;
  let claims: TokenClaims;
  try {
    claims = decodeToken(token);
  } catch {
    return false;
  }
  const nowS = Math.floor(new Date(opts.now).getTime() / 1000);
  if (claims.exp !== undefined && claims.exp <= nowS) return false;
  return !(claims.nbf !== undefined && claims.nbf > nowS);
}
