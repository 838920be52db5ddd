/**
 * The registry as a source: every NSE of a network service whose labels name an address (labels.ts) becomes a
 * backend of the service with the NSE's name, and the service gets a row of this source with the ports the NSEs
 * declare. An unregistration or expiry removes the NSE's rows at once (one write per event); `markDown` removes
 * them when a monitor reports the NSE DOWN, until it registers again.
 *
 * The same code follows this process's own store (source "registry") and another cluster's registry over gRPC
 * (source "remote", lower priority). When the followed stream fails, the source's rows are dropped (their
 * instances are unreachable as far as we know) and the stream is reopened after `retryMs`.
 */
import { create } from "@bufbuild/protobuf";
import { type NetworkServiceEndpoint, NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { type ServicePort, ServiceSchema } from "@nsm-ts/api/services";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { toStatusError } from "@nsm-ts/base/status";
import type { ServiceModel } from "../model.js";
import type { SourceName } from "../names.js";
import { backendsOf, type NseBackend } from "./labels.js";

/** One registration change: an NSE registered or refreshed, or gone (`deleted`). */
export interface NseEvent {
  readonly entry: NetworkServiceEndpoint;
  readonly deleted: boolean;
}

/** Options of `startRegistrySource`. */
export interface RegistrySourceOptions {
  readonly model: ServiceModel;
  /** "registry" (this cluster) or "remote" (another one). */
  readonly source: SourceName;
  /** Opens the followed stream: the current NSEs, then every change, until `signal` aborts. */
  readonly find: (signal: AbortSignal) => AsyncIterable<NseEvent>;
  /** Pause before reopening a failed stream; default 1000 ms. */
  readonly retryMs?: number;
  readonly clock?: Clock;
  readonly log?: Logger;
}

/** A running registry source. */
export interface RegistrySource {
  /** Removes an NSE's backends (a DOWN monitor event); they return with its next registration or refresh. */
  markDown(nseName: string): Promise<void>;
  /** Resolves after every event seen so far is written (tests wait on it instead of sleeping). */
  idle(): Promise<void>;
  /** Stops following and removes nothing (the rows stay until the model goes). */
  stop(): Promise<void>;
}

/** Follows `find` into the model as `source`. */
export function startRegistrySource(opts: RegistrySourceOptions): RegistrySource {
  const { model, source } = opts;
  const clock = opts.clock ?? realClock;
  const log = opts.log ?? silentLogger;
  const ac = new AbortController();
  /** Per NSE the backends it describes (only NSEs that describe some). */
  const nses = new Map<string, NseBackend[]>();
  let tail: Promise<void> = Promise.resolve();
  const serial = (fn: () => Promise<void>): Promise<void> => {
    tail = tail
      .then(fn, fn)
      .catch((err: unknown) => log.error({ err: toStatusError(err).message, source }, "services: source write failed"));
    return tail;
  };

  /** Rewrites the source's row of each service in `services` from the NSEs that still describe it. */
  const syncServices = async (services: Iterable<string>): Promise<void> => {
    for (const service of services) {
      const ports = new Map<string, ServicePort>();
      let any = false;
      for (const list of nses.values()) {
        for (const b of list) {
          if (b.backend.service !== service) continue;
          any = true;
          for (const p of b.ports) if (!ports.has(`${p.name}/${p.port}/${p.protocol}`)) ports.set(`${p.name}/${p.port}/${p.protocol}`, p);
        }
      }
      if (!any) {
        const txn = model.readTxn();
        if (model.tables.services.get(txn, `${service}/${source}`) !== undefined) await model.removeSource(source, service);
        continue;
      }
      // Ports with the same number and protocol but different names would be ambiguous: keep the first.
      const unique = [...ports.values()].filter((p, i, all) => all.findIndex((q) => q.port === p.port && q.protocol === p.protocol) === i);
      const named = unique.length > 1 ? unique.map((p) => ({ ...p, name: p.name || `port-${p.port}` })) : unique;
      await model.writeService(create(ServiceSchema, { name: service, source, ports: named }), "put");
    }
  };

  const apply = (ev: NseEvent): Promise<void> =>
    serial(async () => {
      const name = ev.entry.name;
      const before = new Set((nses.get(name) ?? []).map((b) => b.backend.service));
      let now: NseBackend[] = [];
      if (!ev.deleted) {
        try {
          now = backendsOf(ev.entry, source);
        } catch (err) {
          log.warn({ nse: name, source, err: toStatusError(err).message }, "services: NSE labels malformed; not a backend");
        }
      }
      if (now.length > 0) nses.set(name, now);
      else nses.delete(name);
      await model.setSourceBackends(
        source,
        name,
        now.map((b) => b.backend),
      );
      for (const b of now) before.add(b.backend.service);
      await syncServices(before);
      log.debug({ nse: name, source, deleted: ev.deleted, services: [...before] }, "services: NSE applied");
    });

  const run = async (): Promise<void> => {
    while (!ac.signal.aborted) {
      try {
        for await (const ev of opts.find(ac.signal)) void apply(ev);
        if (ac.signal.aborted) return;
        log.warn({ source }, "services: registry stream ended; reopening");
      } catch (err) {
        if (ac.signal.aborted) return;
        log.warn({ source, err: toStatusError(err).message }, "services: registry stream failed; dropping the source's rows and reopening");
      }
      await serial(async () => {
        nses.clear();
        await model.removeSource(source);
      });
      try {
        await clock.sleep(opts.retryMs ?? 1000, ac.signal);
      } catch {
        return;
      }
    }
  };
  const running = run();

  return {
    markDown: (nseName) => apply({ entry: create(NetworkServiceEndpointSchema, { name: nseName }), deleted: true }),
    idle: () => tail,
    async stop() {
      ac.abort();
      await running;
      await tail;
    },
  };
}
