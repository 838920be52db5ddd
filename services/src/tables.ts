/**
 * The statedb tables of the service model, one per kind as in Cilium's load balancer: service rows per source,
 * frontends, backends per source, local redirects, reconcile statuses, and `epochs` — one row per service that
 * every write touching the service rewrites, so its revision is the service's revision and a watch of the
 * resolved view follows one small table.
 */
import type { Backend, Frontend, LocalRedirect, ReconcileStatus, Service } from "@nsm-ts/api/services";
import { createDb, type Db, type Table } from "@nsm-ts/statedb";

/** A service's change marker (see the module comment). */
export interface Epoch {
  readonly service: string;
}

/** Primary key of a service row. */
export const serviceKey = (name: string, source: string): string => `${name}/${source}`;
/** Primary key of a frontend. */
export const frontendKey = (service: string, policy: number): string => `${service}/${policy}`;
/** Primary key of a backend row. */
export const backendKey = (service: string, source: string, name: string): string => `${service}/${source}/${name}`;
/** Primary key of a reconcile status. */
export const statusKey = (node: string, service: string): string => `${node}/${service}`;

/** The tables; each is keyed so that `prefix(txn, "<service>/")` lists a service's rows. */
export interface ServiceTables {
  readonly db: Db;
  readonly services: Table<Service, "bySource">;
  readonly frontends: Table<Frontend, "byAddress">;
  readonly backends: Table<Backend, "bySource">;
  readonly redirects: Table<LocalRedirect>;
  readonly statuses: Table<ReconcileStatus, "byService">;
  readonly epochs: Table<Epoch>;
}

/** Creates the tables in `db` (default a new database). */
export function createServiceTables(db: Db = createDb()): ServiceTables {
  return {
    db,
    services: db.createTable({
      name: "services",
      primaryKey: (s: Service) => serviceKey(s.name, s.source),
      indexes: { bySource: { kind: "multi", keys: (s: Service) => [s.source] } },
    }),
    frontends: db.createTable({
      name: "frontends",
      primaryKey: (f: Frontend) => frontendKey(f.service, f.policy),
      indexes: { byAddress: { kind: "unique", key: (f: Frontend) => (f.address === "" ? undefined : f.address) } },
    }),
    backends: db.createTable({
      name: "backends",
      primaryKey: (b: Backend) => backendKey(b.service, b.source, b.name),
      indexes: { bySource: { kind: "multi", keys: (b: Backend) => [b.source] } },
    }),
    redirects: db.createTable({ name: "local-redirects", primaryKey: (r: LocalRedirect) => r.service }),
    statuses: db.createTable({
      name: "reconcile-statuses",
      primaryKey: (s: ReconcileStatus) => statusKey(s.node, s.service),
      indexes: { byService: { kind: "multi", keys: (s: ReconcileStatus) => [s.service] } },
    }),
    epochs: db.createTable({ name: "service-epochs", primaryKey: (e: Epoch) => e.service }),
  };
}
