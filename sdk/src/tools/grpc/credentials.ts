/**
 * TLS credentials from certificate files. Files are read when a server starts listening or a channel is
 * dialed, so a restart picks up rotated certificates.
 */
import { readFileSync } from "node:fs";
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

/** Channel credentials: insecure without files; otherwise TLS presenting our cert, verifying with the CA. */
export function channelCredentials(tls: TlsFiles | undefined): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(
    tls.caFile ? readFileSync(tls.caFile) : null,
    readFileSync(tls.keyFile),
    readFileSync(tls.certFile),
  );
}
