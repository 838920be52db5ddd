/**
 * Workload identity: who this process is (a SPIFFE ID) and the key it signs tokens with. Loaded from an
 * X.509 certificate + EC P-256 key on disk (the identity is the certificate's `spiffe://` URI SAN), fetched
 * from the SPIFFE Workload API (`@nsm-ts/base/spiffe`, rotated in place), or created ephemerally for the
 * explicit insecure dev mode (docs/wire-compatibility.md#insecure-dev-mode).
 */
import { createPrivateKey, generateKeyPair, type KeyObject, type webcrypto, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { type Clock, realClock } from "../clock/index.js";
import type { TlsSource } from "../grpc/types.js";
import { Code, StatusError } from "../status/index.js";

/**
 * What is known about the other end of a call: from its TLS certificate, its token and the transport. Tokens are
 * addressed (`aud`) to `spiffeId`; servers fill `token` and `address` from the incoming call.
 */
export interface PeerInfo {
  /** The peer's SPIFFE ID (URI SAN of its TLS certificate), when known. */
  spiffeId?: string;
  /** The peer's TLS leaf certificate, when the connection has one. */
  certificate?: X509Certificate;
  /** The caller's token from `nsm-client-token`, when present exactly once (server side). */
  token?: { token: string; expires: Date };
  /** The remote address as the transport reports it (server side). */
  address?: string;
}

/** The certificate files an identity was loaded from (also what mTLS is built from). */
export interface TlsFiles {
  /** PEM certificate: the leaf first, optionally followed by intermediates. */
  certFile: string;
  /** PEM private key of the leaf (PKCS#8 or SEC1), EC P-256. */
  keyFile: string;
  /** PEM bundle of trusted CA certificates; when given the leaf must chain to one of them. */
  caFile?: string;
}

/**
 * Who this workload is and how it signs; the input of the token generator and of mTLS. A Workload API identity
 * is updated in place on rotation (key, certificate, expiry), so whoever holds it signs with the latest key.
 */
export interface Identity {
  /** The SPIFFE ID (`spiffe://<trust-domain>/<path>`), used as the token `sub`. */
  spiffeId: string;
  /** The ES256 signing key. */
  privateKey: webcrypto.CryptoKey | KeyObject;
  /** The public half, so peers (and tests) can verify our tokens. */
  publicKey: KeyObject;
  /** The leaf certificate (certificate files or Workload API). */
  certificate?: X509Certificate;
  /** PEM of the leaf certificate (what policies get as `auth_info.certificate`). */
  certPem?: string;
  /** Expiry of the certificate; tokens never outlive it. */
  notAfter?: Date;
  /** True for the dev mode: no certificate, signatures and audiences are not enforced. */
  insecure: boolean;
  /** What mTLS credentials are built from: the files the identity came from, or the Workload API's rotating source. */
  tls?: TlsFiles | TlsSource;
}

/** Options for `loadIdentity`. */
export interface LoadIdentityOptions {
  /** Clock used to reject a certificate that is not yet or no longer valid; default the real clock. */
  clock?: Clock;
}

const genKeyPair = promisify(generateKeyPair);

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Upper bound on intermediates walked when checking the chain, so a looping bundle cannot hang us. */
const MAX_CHAIN = 10;

function identityError(message: string, cause?: unknown): StatusError {
  return new StatusError(Code.InvalidArgument, `identity: ${message}`, { cause });
}

async function readPem(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw identityError(`cannot read ${what} file ${file}: ${(err as Error).message}`, err);
  }
}

function parseCertificates(pem: string, file: string, what: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw identityError(`${what} file ${file} holds no PEM certificate`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw identityError(`${what} file ${file}: certificate #${i + 1} is invalid: ${(err as Error).message}`, err);
    }
  });
}

/**
 * Loads the identity from certificate files: an X.509 leaf whose URI SAN `spiffe://…` is the identity and
 * its EC P-256 key. Fails with an `InvalidArgument` StatusError naming the file when something is missing,
 * malformed, mismatched, expired, or (with `caFile`) not issued by a trusted CA.
 */
export async function loadIdentity(files: TlsFiles, opts: LoadIdentityOptions = {}): Promise<Identity> {
  const clock = opts.clock ?? realClock;
  const certs = parseCertificates(await readPem(files.certFile, "certificate"), files.certFile, "certificate");
  const leaf = certs[0] as X509Certificate;

  const keyPem = await readPem(files.keyFile, "private key");
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(keyPem);
  } catch (err) {
    throw identityError(`private key file ${files.keyFile} is not a valid PEM private key: ${(err as Error).message}`, err);
  }
  const curve = privateKey.asymmetricKeyDetails?.namedCurve;
  if (privateKey.asymmetricKeyType !== "ec" || curve !== "prime256v1") {
    const kind = privateKey.asymmetricKeyType === "ec" ? `EC ${curve ?? "?"}` : (privateKey.asymmetricKeyType ?? "?");
    throw identityError(`private key file ${files.keyFile} holds a ${kind} key; ES256 needs EC P-256`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw identityError(`private key file ${files.keyFile} does not match certificate ${files.certFile}`);
  }

  const spiffeId = spiffeIdOf(leaf);
  if (spiffeId === undefined) {
    throw identityError(`certificate ${files.certFile} has no spiffe:// URI SAN (subjectAltName: ${leaf.subjectAltName ?? "none"})`);
  }

  const notAfter = certificateNotAfter(leaf);
  const notBefore = new Date(leaf.validFrom);
  const now = clock.now();
  if (now >= notAfter.getTime()) {
    throw identityError(`certificate ${files.certFile} expired at ${notAfter.toISOString()}`);
  }
  if (now < notBefore.getTime()) {
    throw identityError(`certificate ${files.certFile} is not valid before ${notBefore.toISOString()}`);
  }

  if (files.caFile !== undefined) {
    const cas = parseCertificates(await readPem(files.caFile, "CA"), files.caFile, "CA");
    if (!chainsTo(leaf, certs.slice(1), cas)) {
      throw identityError(`certificate ${files.certFile} is not issued by a CA in ${files.caFile}`);
    }
  }

  return {
    spiffeId,
    privateKey,
    publicKey: leaf.publicKey,
    certificate: leaf,
    certPem: leaf.toString(),
    notAfter,
    insecure: false,
    tls: { ...files },
  };
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** True when `leaf` chains to one of `cas`, directly or through `intermediates` (at most a few levels deep). */
export function chainsTo(leaf: X509Certificate, intermediates: X509Certificate[], cas: X509Certificate[]): boolean {
  let cur = leaf;
  for (let i = 0; i <= MAX_CHAIN; i++) {
    if (cas.some((ca) => issuedBy(cur, ca))) return true;
    const next = intermediates.find((c) => c !== cur && issuedBy(cur, c));
    if (!next) return false;
    cur = next;
  }
  return false;
}

/**
 * Creates an identity with a fresh ES256 key pair and the given SPIFFE ID, marked insecure. The key lives
 * only in memory; peers cannot verify it against a certificate, which is why dev mode skips signatures.
 */
export async function ephemeralIdentity(spiffeId: string): Promise<Identity> {
  if (!isSpiffeId(spiffeId)) throw identityError(`"${spiffeId}" is not a spiffe:// ID`);
  const { privateKey, publicKey } = await genKeyPair("ec", { namedCurve: "P-256" });
  return { spiffeId, privateKey, publicKey, insecure: true };
}

/** Trust domain of the dev-mode identities. */
export const DEV_TRUST_DOMAIN = "nsm-ts.dev";

const SPIFFE_PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;

/**
 * The identity of the insecure dev mode: an ephemeral key pair and `spiffe://nsm-ts.dev/<name>`. `name`
 * may contain `/`-separated segments of letters, digits, `.`, `_` and `-` (the SPIFFE path alphabet).
 */
export async function devIdentity(name: string): Promise<Identity> {
  const segments = name.split("/");
  if (name === "" || !segments.every((s) => SPIFFE_PATH_SEGMENT.test(s) && s !== "." && s !== "..")) {
    throw identityError(`dev identity name "${name}" is not a valid SPIFFE path (letters, digits, . _ - and /)`);
  }
  return ephemeralIdentity(`spiffe://${DEV_TRUST_DOMAIN}/${name}`);
}

/** True for a string shaped like a SPIFFE ID: `spiffe://` followed by a non-empty trust domain. */
export function isSpiffeId(s: string): boolean {
  return /^spiffe:\/\/[^/?#\s]+(\/[^?#\s]*)?$/.test(s);
}

/**
 * The certificate's SPIFFE ID: its first URI SAN that starts with `spiffe://`, or undefined. Node prints
 * SAN values with separators or quotes inside as JSON strings, so those are decoded too.
 */
export function spiffeIdOf(cert: X509Certificate): string | undefined {
  const san = cert.subjectAltName;
  if (!san) return undefined;
  const entry = /(?:^|, )URI:("(?:[^"\\]|\\.)*"|[^,]*)/g;
  for (let m = entry.exec(san); m !== null; m = entry.exec(san)) {
    let value = m[1] ?? "";
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        continue;
      }
    }
    if (value.startsWith("spiffe://") && isSpiffeId(value)) return value;
  }
  return undefined;
}

/** The certificate's expiry as a Date (Node 20 only exposes it as a string). */
export function certificateNotAfter(cert: X509Certificate): Date {
  return new Date(cert.validTo);
}
