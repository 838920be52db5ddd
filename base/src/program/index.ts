/**
 * Program wiring shared by the `cmd-*` programs. Who this program is, first match wins: the SPIFFE Workload API
 * (SPIFFE_ENDPOINT_SOCKET: an X.509-SVID rotated while running), the certificate files of NSM_TLS_*, or the explicit
 * insecure dev mode (an ephemeral key, announced by one warning line at start); and everything built from it (token
 * generator, server TLS, dial TLS).
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Clock } from "../clock/index.js";
import type { DialOptions, ServerOptions } from "../grpc/index.js";
import { devIdentity, type Identity, loadIdentity } from "../identity/index.js";
import type { Logger } from "../log/index.js";
import { createX509Source, DEFAULT_SPIFFE_START_TIMEOUT_MS } from "../spiffe/index.js";
import { createTokenGenerator, type TokenGenerator } from "../token/index.js";

/** The identity settings every program's table has (commonVars). */
export interface IdentityConfig {
  name: string;
  maxTokenLifetime: number;
  tlsCertFile?: string | undefined;
  tlsKeyFile?: string | undefined;
  tlsCaFile?: string | undefined;
  /** SPIFFE_ENDPOINT_SOCKET as `unix:///path`; set = the Workload API is the identity source. */
  spiffeEndpointSocket?: string | undefined;
  /** NSM_SPIFFE_START_TIMEOUT in ms; default 30 s. */
  spiffeStartTimeout?: number | undefined;
}

/** An identity with what the wiring needs from it. */
export interface ProgramIdentity {
  identity: Identity;
  tokenGenerator: TokenGenerator;
  /** Dev mode: signatures and audiences are not enforced. */
  insecure: boolean;
  /** TLS of our servers (mTLS with the CA bundle), empty in dev mode. */
  serverOptions: Pick<ServerOptions, "tls">;
  /** TLS of our outgoing channels, empty in dev mode. */
  dialOptions: DialOptions;
}

/**
 * grpc-js waits 1 s (growing to 2 min) before reconnecting to a peer that went away or was not up yet; the next hop
 * of a node-local program is usually a restarting process on the same machine, so reconnect sooner.
 */
const FAST_RECONNECT = { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 2000 };

/** NSM_NAME reduced to the SPIFFE path alphabet, so any instance name makes a valid dev identity. */
function devName(name: string, program: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, "-").replace(/^\.+$/, program) || program;
}

/** Options of `programIdentity`. */
export interface ProgramIdentityOptions {
  /** The one-line dev-mode warning; default says that gRPC is plain text and signatures are not verified. */
  devWarning?: string;
  /** The program's lifetime: aborting it ends the Workload API stream (pass `ctx.signal`). */
  signal?: AbortSignal;
  /** Clock of the Workload API's start deadline and retries; default the real clock. */
  clock?: Clock;
}

/** Loads the certificate identity, or creates the dev-mode one after warning on one line. */
export async function programIdentity(
  program: string,
  cfg: IdentityConfig,
  log: Logger,
  opts: ProgramIdentityOptions = {},
): Promise<ProgramIdentity> {
  let identity: Identity;
  if (cfg.spiffeEndpointSocket !== undefined) {
    if (cfg.tlsCertFile !== undefined) {
      log.warn("SPIFFE_ENDPOINT_SOCKET is set, so NSM_TLS_CERT_FILE/NSM_TLS_KEY_FILE/NSM_TLS_CA_FILE are ignored");
    }
    const source = await createX509Source(cfg.spiffeEndpointSocket, {
      log,
      startTimeoutMs: cfg.spiffeStartTimeout ?? DEFAULT_SPIFFE_START_TIMEOUT_MS,
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      ...(opts.clock === undefined ? {} : { clock: opts.clock }),
    });
    identity = source.identity;
  } else if (cfg.tlsCertFile !== undefined && cfg.tlsKeyFile !== undefined) {
    identity = await loadIdentity({
      certFile: cfg.tlsCertFile,
      keyFile: cfg.tlsKeyFile,
      ...(cfg.tlsCaFile === undefined ? {} : { caFile: cfg.tlsCaFile }),
    });
  } else {
    log.warn(
      opts.devWarning ??
        `insecure dev mode: SPIFFE_ENDPOINT_SOCKET and NSM_TLS_CERT_FILE/NSM_TLS_KEY_FILE/NSM_TLS_CA_FILE are unset, so ${program} uses plain-text gRPC and peers' token signatures are not verified; never run it like this in production`,
    );
    identity = await devIdentity(devName(cfg.name, program));
  }
  const tls = identity.tls;
  return {
    identity,
    tokenGenerator: createTokenGenerator(identity, { maxTokenLifetimeMs: cfg.maxTokenLifetime }),
    insecure: identity.insecure,
    serverOptions: tls === undefined ? {} : { tls },
    dialOptions: { ...(tls === undefined ? {} : { tls }), grpcOptions: FAST_RECONNECT },
  };
}

/** Where a program serves: its NSM_LISTEN_ON, or a unix socket in a private temporary folder. */
export interface ListenTarget {
  /** The URL to listen on. */
  url: string;
  /** Removes the temporary folder, if one was made (call at exit; idempotent). */
  cleanup(): void;
}

/**
 * `listenOn` when set; otherwise `unix://<new temp folder>/<socketName>`, so a program started without
 * NSM_LISTEN_ON still serves (a local run, a test) and leaves nothing behind once `cleanup` ran.
 */
export function listenTarget(listenOn: string | undefined, tempPrefix: string, socketName: string): ListenTarget {
  if (listenOn !== undefined) return { url: listenOn, cleanup: () => undefined };
  const dir = mkdtempSync(join(tmpdir(), tempPrefix));
  return { url: `unix://${join(dir, socketName)}`, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
