/**
 * Test tokens, the counterpart of upstream's sandbox `GenerateTestToken`: a fixed test subject and a
 * custom lifetime. Upstream signs them HS256 with a shared secret; ours are ES256 with a per-process key,
 * so they pass every policy including the signature checks when the test identity's key is the peer's.
 */
import { type Clock, realClock } from "@nsm-ts/base/clock";
import type { PeerInfo } from "@nsm-ts/base/identity";
import { ephemeralIdentity, type Identity } from "@nsm-ts/base/identity";
import { createTokenGenerator, type Token, type TokenGenerator } from "@nsm-ts/base/token";

/** Subject of test tokens (upstream's sandbox value). */
export const TEST_SPIFFE_ID = "spiffe://test.com/subject";

/** Default lifetime of test tokens: one hour, as upstream's sandbox. */
export const TEST_TOKEN_LIFETIME_MS = 60 * 60 * 1000;

let testId: Promise<Identity> | undefined;

/** The process-wide test identity (`spiffe://test.com/subject`, ephemeral key, insecure). */
export function testIdentity(): Promise<Identity> {
  testId ??= ephemeralIdentity(TEST_SPIFFE_ID);
  return testId;
}

/** Options for test tokens. */
export interface TestTokenOptions {
  /** Token lifetime; default one hour. */
  lifetimeMs?: number;
  /** Source of "now"; default the real clock (tests normally pass their MockClock). */
  clock?: Clock;
}

/** A token generator signing as the test identity, for chains under test. */
export function createTestTokenGenerator(opts: TestTokenOptions = {}): TokenGenerator {
  const gen = testIdentity().then((id) =>
    createTokenGenerator(id, { maxTokenLifetimeMs: opts.lifetimeMs ?? TEST_TOKEN_LIFETIME_MS, clock: opts.clock ?? realClock }),
  );
  return async (peer) => (await gen)(peer);
}

/** One test token (sub = `spiffe://test.com/subject`, exp = now + lifetime), addressed to `peer` if given. */
export async function generateTestToken(opts: TestTokenOptions = {}, peer?: PeerInfo): Promise<Token> {
  return createTestTokenGenerator(opts)(peer);
}
