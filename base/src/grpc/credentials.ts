/**
 * TLS credentials from certificate files. Files are read when a server starts listening or a channel is
 * dialed, so a restart picks up rotated certificates.
 *
 * Workload certificates (SPIFFE X.509-SVIDs) name a `spiffe://` URI SAN and usually no DNS name, so a
 * client cannot check them against the host it dialed: the chain is still verified against the CA by TLS,
 * and a server certificate with a SPIFFE ID passes the identity check (who may do what is the job of the
 * token policies, which bind tokens to that certificate). Certificates without one keep the hostname check.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { checkServerIdentity as checkHostname, type PeerCertificate } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import type { TlsFiles } from "./types.js";

/** Server credentials: insecure without files; TLS with cert+key; mTLS (client cert required) with a CA. */
export function serverCredentials(tls: TlsFiles | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const ca = tls.caFile ? readFileSync(tls.caFile) : null;
  return grpc.ServerCredentials.createSsl(
    ca,
    [{ private_key: readFileSync(tls.keyFile), cert_chain: readFileSync(tls.certFile) }],
    ca !== null,
  );
}

/** Options of `channelCredentials`. */
export interface ChannelCredentialsOptions {
  /**
   * Called with the server's leaf certificate after each successful handshake (chain verified, identity
   * accepted), so the channel can address tokens to the server it is actually connected to.
   */
  onServerCertificate?: (certificate: X509Certificate) => void;
}

const SPIFFE_URI_SAN = /(?:^|,\s*)URI:"?spiffe:\/\/[^/?#\s",]+/;

/**
 * The identity check of a TLS client, run by Node only after the chain verified against the CA: a
 * certificate with a `spiffe://` URI SAN is accepted whatever host was dialed; any other certificate must
 * match `hostname` as usual. Returns an Error to reject the server.
 */
export function checkServerIdentity(hostname: string, cert: PeerCertificate): Error | undefined {
  if (SPIFFE_URI_SAN.test(cert.subjectaltname ?? "")) return undefined;
  return checkHostname(hostname, cert);
}

/** Channel credentials: insecure without files; otherwise TLS presenting our cert, verifying with the CA. */
export function channelCredentials(tls: TlsFiles | undefined, opts: ChannelCredentialsOptions = {}): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  const report = opts.onServerCertificate;
  // A fresh closure per channel also keeps grpc-js from sharing subchannels between channels, so every
  // handshake of this channel is seen by its own callback.
  const verify = (hostname: string, cert: PeerCertificate): Error | undefined => {
    const err = checkServerIdentity(hostname, cert);
    if (err === undefined && report && cert.raw) report(new X509Certificate(cert.raw));
    return err;
  };
  return grpc.credentials.createSsl(tls.caFile ? readFileSync(tls.caFile) : null, readFileSync(tls.keyFile), readFileSync(tls.certFile), {
    checkServerIdentity: verify,
  });
}
