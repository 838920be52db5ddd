/**
 * Garbage collection of network services: a service that no endpoint lists in `network_service_names` is deleted
 * once it has stayed unreferenced and unchanged for two sweeps in a row, so services of endpoints that are gone
 * do not pile up in the registry. Upstream's registry keeps a service until it is unregistered; we collect them
 * because nothing else bounds them (docs/wire-compatibility.md#service-collection). An endpoint that still needs
 * its service registers it again (its registry client heals the registration after the deletion event).
 */
import { create } from "@bufbuild/protobuf";
import { type NetworkService, type NetworkServiceEndpoint, NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import type { RegistryStore } from "./types.js";

/** Options of `startServiceCollector`. */
export interface ServiceCollectorOptions {
  /** Time between sweeps; a service goes after two unreferenced sweeps. Default 60 000 ms (`NSM_EXPIRE_PERIOD`). */
  periodMs?: number;
  /** Time source; default the real clock. */
  clock?: Clock;
  /** Logger; default silent. */
  log?: Logger;
  /** Stops the sweeps. */
  signal: AbortSignal;
}

/** Starts sweeping `ns` against `nse` (see the module comment); resolves once the signal stops it. */
export async function startServiceCollector(
  ns: RegistryStore<NetworkService>,
  nse: RegistryStore<NetworkServiceEndpoint>,
  opts: ServiceCollectorOptions,
): Promise<void> {
  const clock = opts.clock ?? realClock;
  const log = opts.log ?? silentLogger;
  const periodMs = opts.periodMs ?? 60_000;
  // Unreferenced services seen by the last sweep, by name, with the revision they had then.
  let suspects = new Map<string, string>();
  while (!opts.signal.aborted) {
    try {
      await clock.sleep(periodMs, opts.signal);
    } catch {
      return; // aborted
    }
    try {
      suspects = await sweep(ns, nse, suspects, opts.signal, log);
    } catch (err) {
      // A store that is briefly unavailable (etcd) only delays collection.
      if (!opts.signal.aborted) log.warn({ err }, "network service collection failed; retrying next period");
    }
  }
}

async function sweep(
  ns: RegistryStore<NetworkService>,
  nse: RegistryStore<NetworkServiceEndpoint>,
  suspects: Map<string, string>,
  signal: AbortSignal,
  log: Logger,
): Promise<Map<string, string>> {
  const referenced = new Set<string>();
  for await (const ev of nse.find(create(NetworkServiceEndpointSchema), { watch: false, signal })) {
    for (const name of ev.entry.networkServiceNames) referenced.add(name);
  }
  const next = new Map<string, string>();
  for await (const ev of ns.find(create(NetworkServiceSchema), { watch: false, signal })) {
    const name = ev.entry.name;
    if (referenced.has(name)) continue;
    const current = await ns.getVersioned(name);
    if (current === undefined) continue;
    if (suspects.get(name) === current.revision) {
      await ns.delete(name);
      log.info({ networkService: name }, "network service deleted: no endpoint has referenced it for two periods");
    } else {
      next.set(name, current.revision);
    }
  }
  return next;
}
