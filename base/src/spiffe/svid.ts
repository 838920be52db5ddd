/**
 * Turns one `X509SVID` of the Workload API (DER certificates concatenated, a PKCS#8 DER key, a DER bundle) into the
 * pieces an `Identity` and TLS need, checking it the way certificate files are checked: an EC P-256 key (tokens are
 * ES256) matching the leaf, the leaf's SPIFFE ID equal to the one announced, not expired, chaining to the bundle.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import type { X509SVID } from "@nsm-ts/api/spiffe";
import type { Clock } from "../clock/index.js";
import type { TlsMaterial } from "../grpc/types.js";
import { certificateNotAfter, chainsTo, spiffeIdOf } from "../identity/index.js";
import { Code, StatusError } from "../status/index.js";

/** One checked X.509-SVID. */
export interface ParsedSvid {
  /** The SPIFFE ID (the leaf's URI SAN, equal to `spiffe_id`). */
  spiffeId: string;
  /** The leaf certificate. */
  certificate: X509Certificate;
  /** The leaf's EC P-256 private key. */
  privateKey: KeyObject;
  /** When the leaf expires. */
  notAfter: Date;
  /** PEM chain, key and bundle for TLS. */
  material: TlsMaterial;
}

/** Upper bound on certificates in one DER field, so a hostile response cannot make us parse forever. */
const MAX_CERTIFICATES = 64;

function svidError(message: string, cause?: unknown): StatusError {
  return new StatusError(Code.InvalidArgument, `spiffe: ${message}`, { cause });
}

/** Splits concatenated DER values (each an ASN.1 SEQUENCE) into one buffer per value. */
export function splitDer(der: Uint8Array, field: string): Buffer[] {
  const buf = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    if (out.length >= MAX_CERTIFICATES) throw svidError(`${field} holds more than ${MAX_CERTIFICATES} certificates`);
    if (buf[off] !== 0x30 || off + 2 > buf.length) throw svidError(`${field}: no DER SEQUENCE at byte ${off}`);
    const first = buf[off + 1] as number;
    let len = first;
    let header = 2;
    if (first & 0x80) {
      const n = first & 0x7f;
      if (n === 0 || n > 4 || off + 2 + n > buf.length) throw svidError(`${field}: bad DER length at byte ${off}`);
      len = buf.readUIntBE(off + 2, n);
      header = 2 + n;
    }
    const end = off + header + len;
    if (end > buf.length) throw svidError(`${field}: DER value at byte ${off} runs past the end`);
    out.push(buf.subarray(off, end));
    off = end;
  }
  if (out.length === 0) throw svidError(`${field} is empty`);
  return out;
}

/** The certificates of a concatenated-DER field; InvalidArgument naming `field` when one is malformed. */
export function certificates(der: Uint8Array, field: string): X509Certificate[] {
  return splitDer(der, field).map((d, i) => {
    try {
      return new X509Certificate(d);
    } catch (err) {
      throw svidError(`${field}: certificate #${i + 1} is invalid: ${(err as Error).message}`, err);
    }
  });
}

/** Certificates as one PEM bundle. */
export const pemOf = (certs: X509Certificate[]): string => certs.map((c) => c.toString()).join("");

/** Checks one X509SVID and converts it; InvalidArgument naming the field when it is unusable. */
export function parseX509Svid(svid: X509SVID, clock: Clock): ParsedSvid {
  const chain = certificates(svid.x509Svid, "x509_svid");
  const leaf = chain[0] as X509Certificate;
  const bundle = certificates(svid.bundle, "bundle");
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: Buffer.from(svid.x509SvidKey), format: "der", type: "pkcs8" });
  } catch (err) {
    throw svidError(`x509_svid_key is not a PKCS#8 DER private key: ${(err as Error).message}`, err);
  }
  const curve = privateKey.asymmetricKeyDetails?.namedCurve;
  if (privateKey.asymmetricKeyType !== "ec" || curve !== "prime256v1") {
    const kind = privateKey.asymmetricKeyType === "ec" ? `EC ${curve ?? "?"}` : (privateKey.asymmetricKeyType ?? "?");
    throw svidError(`x509_svid_key is a ${kind} key; ES256 tokens need EC P-256 (SPIRE's default ec-p256)`);
  }
  if (!leaf.checkPrivateKey(privateKey)) throw svidError("x509_svid_key does not match the leaf of x509_svid");
  const spiffeId = spiffeIdOf(leaf);
  if (spiffeId === undefined) throw svidError("the leaf of x509_svid has no spiffe:// URI SAN");
  if (spiffeId !== svid.spiffeId) throw svidError(`spiffe_id ${JSON.stringify(svid.spiffeId)} differs from the leaf's ${spiffeId}`);
  const notAfter = certificateNotAfter(leaf);
  // No not-before check: the agent's clock decides when an SVID starts, and a few seconds of skew between hosts
  // must not refuse a fresh rotation.
  if (clock.now() >= notAfter.getTime()) throw svidError(`x509_svid expired at ${notAfter.toISOString()}`);
  if (!chainsTo(leaf, chain.slice(1), bundle)) throw svidError("x509_svid does not chain to a CA of bundle");
  return {
    spiffeId,
    certificate: leaf,
    privateKey,
    notAfter,
    material: {
      certChainPem: pemOf(chain),
      keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      caPem: pemOf(bundle),
    },
  };
}
