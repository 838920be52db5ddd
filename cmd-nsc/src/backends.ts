/**
 * cmd-nsc's optional backend role (NSM_SERVICE_BACKENDS), a readiness probe for services: once the pod has its
 * vL3 address, the sidecar registers the pod as a backend of each named service through the services API
 * (source `api`, name = NSM_NAME), probes each port with a TCP connect to that address from inside the pod's
 * netns, and writes the health on every change: UNHEALTHY after `failures` consecutive failed probes, HEALTHY
 * after one success (a new registration starts UNHEALTHY, like a pod that is not ready yet). A new address
 * (heal) rewrites the rows; `close` (SIGTERM) deletes them. Only changes are written (a write bumps the
 * service's revision, which every data plane reconciles); a write that fails (registry unreachable) is retried on
 * the next probe tick, and an update that finds no row (registry restarted) creates it. The rows carry a lease
 * that every probe round renews (RenewBackend: no revision, nothing to reconcile), so the rows of a sidecar
 * SIGKILLed with its pod go once it runs out; a renewal that finds no row (expired, registry restarted) creates it.
 */
import { connect } from "node:net";
import { BackendHealth, type BackendManager } from "@nsm-ts/api/services";
import { type Clock, realClock, type Timer } from "@nsm-ts/base/clock";
import type { Client } from "@nsm-ts/base/grpc";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { Code, isStatusError } from "@nsm-ts/base/status";

/** Longest NSM_SERVICE_LEASE (the services API's bound on `lease_seconds`). */
export const MAX_LEASE_MS = 86_400_000;

/**
 * The lease in whole seconds: `leaseMs` when set, else 3 × a probe round's worst time (interval + timeout, the
 * time between two renewals), at least 5 s: two renewals may be lost before a live pod's rows go.
 */
export function leaseSecondsOf(leaseMs: number | undefined, intervalMs: number, timeoutMs: number): number {
  return Math.ceil((leaseMs ?? Math.max(3 * (intervalMs + timeoutMs), 5000)) / 1000);
}

/** One `<service>:<port>[/tcp]` entry of NSM_SERVICE_BACKENDS. */
export interface BackendSpec {
  readonly service: string;
  readonly port: number;
}

const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

/** Parses NSM_SERVICE_BACKENDS: comma separated `<service>:<port>[/tcp]` (TCP only: the probe is a TCP connect). */
export function parseServiceBackends(raw: string): BackendSpec[] {
  const out: BackendSpec[] = [];
  for (const item of raw
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")) {
    const m = /^([^:]+):(\d+)(?:\/([A-Za-z]+))?$/.exec(item);
    if (!m) throw new Error(`${JSON.stringify(item)} is not <service>:<port>[/tcp]`);
    const [, service = "", portText = "", proto] = m;
    if (!SERVICE_NAME.test(service)) throw new Error(`${JSON.stringify(service)} is not a service name`);
    const port = Number(portText);
    if (port < 1 || port > 65535) throw new Error(`port ${port} of ${JSON.stringify(service)} is not in 1..65535`);
    if (proto !== undefined && proto.toLowerCase() !== "tcp") {
      throw new Error(`${JSON.stringify(item)}: only tcp ports can be probed`);
    }
    if (out.some((b) => b.service === service)) throw new Error(`service ${JSON.stringify(service)} is listed twice`);
    out.push({ service, port });
  }
  return out;
}

/** TCP connect to host:port; true when it connects within `timeoutMs` (measured on `clock`). */
export function tcpProbe(clock: Clock): (host: string, port: number, timeoutMs: number) => Promise<boolean> {
  return (host, port, timeoutMs) =>
    new Promise<boolean>((resolve) => {
      const sock = connect({ host, port });
      let timer: Timer | undefined;
      const done = (ok: boolean): void => {
        timer?.stop();
        sock.destroy();
        resolve(ok);
      };
      timer = clock.setTimer(timeoutMs, () => done(false));
      sock.once("connect", () => done(true));
      sock.once("error", () => done(false));
    });
}

/** Options of `startBackendRole`. */
export interface BackendRoleOptions {
  readonly api: Client<typeof BackendManager>;
  readonly backends: readonly BackendSpec[];
  /** Backend name in each service (NSM_NAME). */
  readonly name: string;
  readonly node?: string;
  readonly zone?: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Consecutive failed probes before UNHEALTHY. */
  readonly failures: number;
  /** Lease of the rows, renewed every probe round (`leaseSecondsOf`); 0 or unset: no lease. */
  readonly leaseSeconds?: number;
  readonly clock?: Clock;
  readonly log?: Logger;
  /** Deadline of each API call; default 5000 ms. */
  readonly callTimeoutMs?: number;
  /** Called after each probe round (tests wait on it). */
  readonly onRound?: () => void;
  /** Default: a TCP connect on `clock`. */
  readonly probe?: (host: string, port: number, timeoutMs: number) => Promise<boolean>;
}

/** The running role. */
export interface BackendRole {
  /** The pod's (new) address: registers the backends, or rewrites them after a heal that changed it. */
  setAddress(address: string): void;
  /** Stops probing and deletes the backends (best effort). */
  close(): Promise<void>;
}

type BackendInit = Parameters<Client<typeof BackendManager>["updateBackend"]>[0];

interface Entry {
  readonly spec: BackendSpec;
  healthy: boolean;
  failed: number;
  /** What the API has, as far as we know: `${address}/${health}`, or undefined (write needed). */
  written: string | undefined;
  /** The address of the row this role created, if any. */
  row: string | undefined;
}

/** Starts the backend role; nothing is written before `setAddress`. */
export function startBackendRole(opts: BackendRoleOptions): BackendRole {
  const clock = opts.clock ?? realClock;
  const log = opts.log ?? silentLogger;
  const probe = opts.probe ?? tcpProbe(clock);
  const entries: Entry[] = opts.backends.map((spec) => ({ spec, healthy: false, failed: 0, written: undefined, row: undefined }));
  let address: string | undefined;
  let timer: Timer | undefined;
  let closed = false;
  let round: Promise<void> = Promise.resolve();
  // A registry that does not answer must neither stall the probes nor hold up the exit.
  const call = { timeoutMs: opts.callTimeoutMs ?? 5000 };
  const lease = opts.leaseSeconds ?? 0;
  // A registry without leases answers RenewBackend UNIMPLEMENTED; its rows do not expire anyway.
  let renewable = lease > 0;

  const row = (e: Entry, addr: string): BackendInit => ({
    service: e.spec.service,
    source: "api",
    name: opts.name,
    address: addr,
    ports: [{ name: "", port: e.spec.port }],
    node: opts.node ?? "",
    zone: opts.zone ?? "",
    health: e.healthy ? BackendHealth.HEALTHY : BackendHealth.UNHEALTHY,
    leaseSeconds: lease,
  });

  const remove = async (service: string): Promise<void> => {
    try {
      await opts.api.deleteBackend({ service, source: "api", name: opts.name }, call);
    } catch (err) {
      if (!isStatusError(err, Code.NotFound)) throw err;
    }
  };

  // A backend's address never changes in the model: a new one is a delete and a create.
  const put = async (e: Entry, b: BackendInit, addr: string): Promise<void> => {
    if (e.row === addr) {
      try {
        await opts.api.updateBackend(b, call);
        return;
      } catch (err) {
        // The registry lost its API rows (restart): create it again.
        if (!isStatusError(err, Code.NotFound)) throw err;
      }
    } else if (e.row !== undefined) {
      await remove(e.spec.service);
    }
    e.row = undefined;
    try {
      await opts.api.createBackend(b, call);
    } catch (err) {
      // A row of this name from an earlier run of this sidecar (killed before it could delete it): replace it.
      if (!isStatusError(err, Code.AlreadyExists)) throw err;
      await remove(e.spec.service);
      await opts.api.createBackend(b, call);
    }
    e.row = addr;
  };

  /** Renews the lease of an unchanged row; false when the row is gone and must be created again. */
  const renew = async (e: Entry): Promise<boolean> => {
    if (!renewable) return true;
    const fields = { service: e.spec.service, backend: opts.name };
    try {
      await opts.api.renewBackend({ service: e.spec.service, source: "api", name: opts.name }, call);
    } catch (err) {
      if (isStatusError(err, Code.NotFound)) {
        log.warn(fields, "service backend gone (lease expired or registry restarted); creating it again");
        return false;
      }
      if (isStatusError(err, Code.Unimplemented)) {
        renewable = false;
        log.warn(fields, "the services API has no backend leases; not renewing");
      } else {
        log.warn({ ...fields, err }, "cannot renew the service backend's lease; retrying on the next probe");
      }
    }
    return true;
  };

  const write = async (e: Entry, addr: string): Promise<void> => {
    const state = `${addr}/${e.healthy ? "healthy" : "unhealthy"}`;
    if (e.written === state) {
      if (await renew(e)) return;
      e.written = undefined;
      e.row = undefined;
    }
    const b = row(e, addr);
    const fields = { service: b.service, backend: opts.name, address: addr, health: e.healthy ? "HEALTHY" : "UNHEALTHY" };
    try {
      await put(e, b, addr);
      e.written = state;
      log.info(fields, "service backend written");
    } catch (err) {
      log.warn({ ...fields, err }, "cannot write the service backend; retrying on the next probe");
    }
  };

  const probeRound = async (): Promise<void> => {
    const addr = address;
    if (addr === undefined || closed) return;
    await Promise.all(
      entries.map(async (e) => {
        const ok = await probe(addr, e.spec.port, opts.timeoutMs);
        if (ok) {
          e.failed = 0;
          e.healthy = true;
        } else if (++e.failed >= opts.failures) {
          e.healthy = false;
        }
        if (!closed && addr === address) await write(e, addr);
      }),
    );
  };

  const schedule = (): void => {
    if (closed) return;
    timer = clock.setTimer(opts.intervalMs, () => {
      timer = undefined;
      round = probeRound().finally(() => {
        opts.onRound?.();
        schedule();
      });
    });
  };

  return {
    setAddress(addr) {
      if (closed || addr === "" || addr === address) return;
      const first = address === undefined;
      log.info({ address: addr, previous: address, services: entries.map((e) => e.spec.service) }, "service backend address");
      address = addr;
      for (const e of entries) e.written = undefined;
      if (first) {
        // Probe at once (no interval's wait before the first registration), then every interval.
        round = probeRound().finally(() => {
          opts.onRound?.();
          schedule();
        });
      }
    },
    async close() {
      closed = true;
      timer?.stop();
      timer = undefined;
      await round.catch(() => undefined);
      if (address === undefined) return;
      await Promise.all(
        entries.map(async (e) => {
          try {
            await remove(e.spec.service);
            log.info({ service: e.spec.service, backend: opts.name }, "service backend deleted");
          } catch (err) {
            log.warn({ service: e.spec.service, backend: opts.name, err }, "cannot delete the service backend");
          }
        }),
      );
    },
  };
}
