/**
 * TLS credentials from certificate files or from a rotating `TlsSource`. Files are read when a server starts
 * listening or a channel is dialed, so a restart picks up rotated certificates; a source (the SPIFFE Workload
 * API) is followed while running: each new connection, in either direction, uses its latest material.
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
import type { TlsConfig, TlsFiles, TlsMaterial, TlsSource } from "./types.js";

type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

/** True for a rotating source rather than certificate files. */
export function isTlsSource(tls: TlsConfig): tls is TlsSource {
  return typeof (tls as Partial<TlsSource>).current === "function";
}

/**
 * A grpc-js certificate provider fed by a `TlsSource`: a new listener gets the current material at once and every
 * change after it. It subscribes to the source only while grpc-js listens (a bound server, a channel with a
 * connection), so closed servers and channels leave no subscription behind.
 */
class SourceCertificateProvider implements grpc.experimental.CertificateProvider {
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly source: TlsSource) {}

  private changed(): void {
    if (this.caListeners.size + this.identityListeners.size === 0) {
      this.unsubscribe?.();
      this.unsubscribe = undefined;
    } else if (this.unsubscribe === undefined) {
      this.unsubscribe = this.source.subscribe((m) => {
        for (const l of this.caListeners) l(caUpdate(m));
        for (const l of this.identityListeners) l(identityUpdate(m));
      });
    }
  }
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    this.changed();
    // Delivered on the next microtask: grpc-js's server credentials register their watcher only after adding
    // this listener, and would miss a synchronous first update.
    queueMicrotask(() => {
      if (this.caListeners.has(listener)) listener(caUpdate(this.source.current()));
    });
  }
  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
    this.changed();
  }
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    this.changed();
    queueMicrotask(() => {
      if (this.identityListeners.has(listener)) listener(identityUpdate(this.source.current()));
    });
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
    this.changed();
  }
}

function caUpdate(m: TlsMaterial): grpc.experimental.CaCertificateUpdate {
  return { caCertificate: Buffer.from(m.caPem) };
}

function identityUpdate(m: TlsMaterial): grpc.experimental.IdentityCertificateUpdate {
  return { certificate: Buffer.from(m.certChainPem), privateKey: Buffer.from(m.keyPem) };
}

/**
 * Server credentials: insecure without TLS; TLS with cert+key files; mTLS (client cert required) with a CA file
 * or with a source (whose CA bundle is always required of clients).
 */
export function serverCredentials(tls: TlsConfig | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  if (isTlsSource(tls)) {
    // One provider serves as both identity and CA provider; grpc-js's argument names are unreliable here, and
    // passing the same object both ways makes their order irrelevant.
    const provider = new SourceCertificateProvider(tls);
    return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, true);
  }
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

/** Channel credentials: insecure without TLS; otherwise TLS presenting our cert, verifying with the CA. */
export function channelCredentials(tls: TlsConfig | undefined, opts: ChannelCredentialsOptions = {}): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  const report = opts.onServerCertificate;
  // A fresh closure per channel also keeps grpc-js from sharing subchannels between channels, so every
  // handshake of this channel is seen by its own callback.
  const verify = (hostname: string, cert: PeerCertificate): Error | undefined => {
    const err = checkServerIdentity(hostname, cert);
    if (err === undefined && report && cert.raw) report(new X509Certificate(cert.raw));
    return err;
  };
  if (isTlsSource(tls)) {
    const provider = new SourceCertificateProvider(tls);
    return grpc.experimental.createCertificateProviderChannelCredentials(provider, provider, { checkServerIdentity: verify });
  }
  return fileChannelCredentials(tls, verify);
}

function fileChannelCredentials(
  tls: TlsFiles,
  verify: (hostname: string, cert: PeerCertificate) => Error | undefined,
): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(tls.caFile ? readFileSync(tls.caFile) : null, readFileSync(tls.keyFile), readFileSync(tls.certFile), {
    checkServerIdentity: verify,
  });
}
