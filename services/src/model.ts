/**
 * The service model after Cilium's load-balancer tables: every write goes through here, in one statedb write
 * transaction that also rewrites the service's epoch (tables.ts), so the resolved view and its watchers see each
 * change of a service as one unit. Sources own their rows: a source's write or removal never touches another
 * source's rows; the merge (resolve.ts) decides what wins.
 */
import { create } from "@bufbuild/protobuf";
import {
  type Backend,
  BackendSchema,
  type Frontend,
  FrontendSchema,
  type LocalRedirect,
  LocalRedirectSchema,
  type ObjectRef,
  type ReconcileStatus,
  ReconcileStatusSchema,
  type Service,
} from "@nsm-ts/api/services";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { Code, fail } from "@nsm-ts/base/status";
import { KeyedMutex } from "@nsm-ts/resources";
import type { ReadTxn, Table, TableBase, WriteTxn } from "@nsm-ts/statedb";
import { type AddressAllocator, rangeOfPolicy } from "./allocator.js";
import { BackendLeases } from "./leases.js";
import { requireName, requirePolicy, requireSource } from "./names.js";
import { resolveService, type ServiceRows } from "./resolve.js";
import { type Mode, precondition } from "./revisions.js";
import { backendKey, createServiceTables, frontendKey, type ServiceTables, serviceKey, statusKey } from "./tables.js";
import { checkBackend, checkFrontend, checkRedirect, checkService, checkStatus } from "./validate.js";

/** Options of `ServiceModel`. */
export interface ServiceModelOptions {
  /** The tables (default new ones in a new database). */
  tables?: ServiceTables;
  /** Allocates ServiceIPs per policy and instance IPs; without one, frontends must name their address. */
  allocator?: AddressAllocator;
  /** Stamps reconcile statuses and runs backend leases; default the real clock. */
  clock?: Clock;
  log?: Logger;
}

/** The service model; see the module comment. */
export class ServiceModel {
  readonly tables: ServiceTables;
  private readonly allocator: AddressAllocator | undefined;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly all: readonly TableBase[];
  private readonly alloc = new KeyedMutex();
  private readonly leases: BackendLeases;

  constructor(opts: ServiceModelOptions = {}) {
    this.tables = opts.tables ?? createServiceTables();
    this.allocator = opts.allocator;
    this.clock = opts.clock ?? realClock;
    this.log = opts.log ?? silentLogger;
    const t = this.tables;
    this.all = [t.services, t.frontends, t.backends, t.redirects, t.statuses, t.epochs];
    this.leases = new BackendLeases(this.clock, (key) => void this.expire(key));
  }

  /** Stops the lease timer (leased rows then stay until deleted). */
  close(): void {
    this.leases.close();
  }

  // ---- reads ----

  /** A snapshot of every table. */
  readTxn(): ReadTxn {
    return this.tables.db.readTxn();
  }

  /** The stored object under `key` with its revision, or undefined. */
  read<T extends { revision: string }>(table: Table<T, string>, txn: ReadTxn, key: string): T | undefined {
    const e = table.getEntry(txn, key);
    return e === undefined ? undefined : { ...e.object, revision: String(e.revision) };
  }

  /** Every row of `table` (optionally only those of one service, `<service>/` keys), with revisions. */
  rows<T extends { revision: string }>(table: Table<T, string>, txn: ReadTxn, service = ""): T[] {
    const out: T[] = [];
    table.scan(txn, service === "" ? {} : { prefix: `${service}/` }, (e) => {
      out.push({ ...e.object, revision: String(e.revision) });
      return undefined;
    });
    return out;
  }

  /** Everything stored about one service. */
  rowsOf(txn: ReadTxn, service: string): ServiceRows {
    const t = this.tables;
    return {
      services: t.services.prefix(txn, `${service}/`),
      frontends: t.frontends.prefix(txn, `${service}/`),
      backends: t.backends.prefix(txn, `${service}/`),
      redirect: t.redirects.get(txn, service),
    };
  }

  /** The resolved view of `service` for `node` in `txn`, or undefined when no source describes it. */
  resolve(txn: ReadTxn, service: string, node: string): ReturnType<typeof resolveService> {
    const epoch = this.tables.epochs.getEntry(txn, service);
    if (epoch === undefined) return undefined;
    return resolveService(service, this.rowsOf(txn, service), node, String(epoch.revision));
  }

  /** Names of every service anything is stored about (described or with orphan backends), in order. */
  serviceNames(txn: ReadTxn): string[] {
    return [...this.tables.epochs.all(txn)].map((e) => e.service);
  }

  // ---- writes ----

  /** Runs `fn` in a write transaction over every table; then rewrites (or drops) the epochs of `touched`. */
  private write<R>(fn: (txn: WriteTxn, touched: Set<string>) => R): Promise<R> {
    return this.tables.db.update(this.all, (txn) => {
      const touched = new Set<string>();
      const r = fn(txn, touched);
      for (const s of touched) this.touch(txn, s);
      return r;
    });
  }

  private touch(txn: WriteTxn, service: string): void {
    const t = this.tables;
    const rows = this.rowsOf(txn, service);
    if (rows.services.length + rows.frontends.length + rows.backends.length > 0 || rows.redirect !== undefined) {
      t.epochs.insert(txn, { service });
      return;
    }
    t.epochs.deleteKey(txn, service);
    for (const s of t.statuses.list(txn, "byService", service)) t.statuses.delete(txn, s);
  }

  /** Creates, updates or puts one source's description of a service. */
  async writeService(input: Service, mode: Mode): Promise<Service> {
    const s = checkService(input);
    const key = serviceKey(s.name, s.source);
    return this.write((txn, touched) => {
      precondition(this.tables.services, txn, key, mode, input.revision, `service "${s.name}" (source ${s.source})`);
      this.tables.services.insert(txn, s);
      touched.add(s.name);
      return s;
    }).then(() => this.read(this.tables.services, this.readTxn(), key) ?? s);
  }

  /** Deletes one source's description of a service (its backends stay: they are rows of their own). */
  async deleteService(ref: ObjectRef): Promise<void> {
    const name = requireName(ref.service, "service");
    const source = requireSource(ref.source);
    await this.write((txn, touched) => {
      const key = serviceKey(name, source);
      precondition(this.tables.services, txn, key, "update", ref.revision, `service "${name}" (source ${source})`);
      this.tables.services.deleteKey(txn, key);
      touched.add(name);
    });
  }

  /** Creates a frontend, allocating its ServiceIP from the policy's range when one is configured. */
  async createFrontend(input: Frontend): Promise<Frontend> {
    const f = checkFrontend(input, this.allocator?.has(rangeOfPolicy(input.policy)) ?? false);
    const key = frontendKey(f.service, f.policy);
    return this.alloc.run(`frontend/${key}`, async () => {
      if (this.tables.frontends.get(this.readTxn(), key) !== undefined) {
        fail(Code.AlreadyExists, `services: frontend of "${f.service}" for policy ${rangeOfPolicy(f.policy)} already exists`);
      }
      const range = rangeOfPolicy(f.policy);
      const allocated = this.allocator?.has(range) ? await this.allocator.allocate(range, `service/${key}`, f.address) : undefined;
      const row = create(FrontendSchema, { ...f, address: allocated ?? f.address });
      try {
        await this.write((txn, touched) => {
          precondition(this.tables.frontends, txn, key, "create", "", `frontend of "${f.service}"`);
          this.tables.frontends.insert(txn, row);
          touched.add(f.service);
        });
      } catch (err) {
        if (allocated !== undefined) await this.allocator?.release(range, allocated);
        throw err;
      }
      return this.read(this.tables.frontends, this.readTxn(), key) ?? row;
    });
  }

  /** Deletes a frontend and releases its ServiceIP. */
  async deleteFrontend(ref: ObjectRef): Promise<void> {
    const service = requireName(ref.service, "service");
    const policy = requirePolicy(ref.policy);
    const key = frontendKey(service, policy);
    const old = await this.write((txn, touched) => {
      const o = precondition(this.tables.frontends, txn, key, "update", ref.revision, `frontend of "${service}"`);
      this.tables.frontends.deleteKey(txn, key);
      touched.add(service);
      return o;
    });
    const range = rangeOfPolicy(policy);
    if (old !== undefined && this.allocator?.has(range)) await this.allocator.release(range, old.address);
  }

  /** Creates, updates or puts one source's row of a backend; allocates the instance's instance IP once. */
  async writeBackend(input: Backend, mode: Mode): Promise<Backend> {
    const b = checkBackend(input);
    const key = backendKey(b.service, b.source, b.name);
    const what = `backend "${b.name}" of "${b.service}" (source ${b.source})`;
    const instanceKey = `instance/${b.service}/${b.address}`;
    return this.alloc.run(instanceKey, async () => {
      const txn0 = this.readTxn();
      const current = this.tables.backends.get(txn0, key);
      if (mode === "update" && current !== undefined && current.address !== b.address) {
        fail(Code.InvalidArgument, `services: address: a backend's address cannot change (${current.address}); delete and create it`);
      }
      let instanceIp = this.instanceIpOf(txn0, b.service, b.address);
      let allocated = false;
      if (instanceIp === "" && this.allocator?.has("instance")) {
        instanceIp = await this.allocator.allocate("instance", `${b.service}/${b.address}`);
        allocated = true;
      }
      const row = create(BackendSchema, { ...b, instanceIp, revision: "0" });
      try {
        await this.write((txn, touched) => {
          precondition(this.tables.backends, txn, key, mode, input.revision, what);
          this.tables.backends.insert(txn, row);
          touched.add(b.service);
          this.leases.written(key, row.leaseSeconds);
        });
      } catch (err) {
        if (allocated) await this.allocator?.release("instance", instanceIp);
        throw err;
      }
      return this.read(this.tables.backends, this.readTxn(), key) ?? row;
    });
  }

  private instanceIpOf(txn: ReadTxn, service: string, address: string): string {
    for (const r of this.tables.backends.prefix(txn, `${service}/`)) if (r.address === address && r.instanceIp !== "") return r.instanceIp;
    return "";
  }

  /** The key of the backend `ref` names, and how messages name it. */
  private backendRef(ref: ObjectRef): { key: string; what: string } {
    const service = requireName(ref.service, "service");
    const source = requireSource(ref.source);
    if (ref.name === "") fail(Code.InvalidArgument, "services: name: required");
    return { key: backendKey(service, source, ref.name), what: `backend "${ref.name}" of "${service}" (source ${source})` };
  }

  /** Deletes a backend row inside a write (with its lease). */
  private dropBackend(txn: WriteTxn, touched: Set<string>, r: Backend): void {
    this.tables.backends.delete(txn, r);
    touched.add(r.service);
    this.leases.gone(backendKey(r.service, r.source, r.name));
  }

  /** Deletes one source's backend row. */
  async deleteBackend(ref: ObjectRef): Promise<void> {
    const { key, what } = this.backendRef(ref);
    const gone = await this.write((txn, touched) => {
      const o = precondition(this.tables.backends, txn, key, "update", ref.revision, what);
      if (o !== undefined) this.dropBackend(txn, touched, o);
      return o === undefined ? [] : [o];
    });
    await this.releaseInstances(gone);
  }

  /**
   * Restarts the lease of a leased backend without writing it: no revision, no event, nothing for the data planes
   * (see leases.ts). In a transaction of its own so that it cannot interleave with the expiry's write.
   */
  async renewBackend(ref: ObjectRef): Promise<Backend> {
    const { key, what } = this.backendRef(ref);
    await this.tables.db.update([this.tables.backends], (txn) => {
      const o = precondition(this.tables.backends, txn, key, "update", ref.revision, what);
      if (o?.leaseSeconds === 0) fail(Code.FailedPrecondition, `services: lease_seconds: ${what} has no lease`);
      this.leases.written(key, o?.leaseSeconds ?? 0);
    });
    return this.read(this.tables.backends, this.readTxn(), key) ?? fail(Code.NotFound, `services: ${what} not found`);
  }

  /** A lease ran out: deletes the row, unless it was renewed or rewritten without a lease meanwhile. */
  private async expire(key: string): Promise<void> {
    try {
      const gone = await this.write((txn, touched) => {
        const r = this.tables.backends.get(txn, key);
        if (r === undefined || r.leaseSeconds === 0 || this.leases.running(key)) return [];
        this.dropBackend(txn, touched, r);
        return [r];
      });
      for (const r of gone) {
        this.log.info({ service: r.service, source: r.source, backend: r.name, address: r.address }, "services: backend lease expired");
      }
      await this.releaseInstances(gone);
    } catch (err) {
      this.log.warn({ backend: key, err }, "services: cannot delete the expired backend");
    }
  }

  /**
   * Makes `backends` the rows `source` has under the backend name `name` (in any service): rows no longer listed
   * go, the others are written. Sources call it per registration (an NSE's name names its rows).
   */
  async setSourceBackends(source: string, name: string, backends: readonly Backend[]): Promise<void> {
    const src = requireSource(source);
    const keep = new Set(backends.map((b) => backendKey(b.service, src, name)));
    for (const b of backends) await this.writeBackend(create(BackendSchema, { ...b, source: src, name }), "put");
    const gone = await this.write((txn, touched) => {
      const out: Backend[] = [];
      for (const r of this.tables.backends.list(txn, "byOwner", `${src}/${name}`)) {
        if (keep.has(backendKey(r.service, r.source, r.name))) continue;
        this.dropBackend(txn, touched, r);
        out.push(r);
      }
      return out;
    });
    await this.releaseInstances(gone);
  }

  /** Removes every row (services and backends) of `source`, only of `service` when given; returns how many. */
  async removeSource(source: string, service = ""): Promise<number> {
    const src = requireSource(source);
    const gone = await this.write((txn, touched) => {
      const out: Backend[] = [];
      let n = 0;
      for (const r of this.tables.services.list(txn, "bySource", src)) {
        if (service !== "" && r.name !== service) continue;
        this.tables.services.delete(txn, r);
        touched.add(r.name);
        n++;
      }
      for (const r of this.tables.backends.list(txn, "bySource", src)) {
        if (service !== "" && r.service !== service) continue;
        this.dropBackend(txn, touched, r);
        out.push(r);
      }
      return { out, n };
    });
    await this.releaseInstances(gone.out);
    this.log.debug({ source: src, service, rows: gone.n + gone.out.length }, "services: source removed");
    return gone.n + gone.out.length;
  }

  /** Releases the instance IPs of deleted rows whose instance no other row describes any more. */
  private async releaseInstances(gone: readonly Backend[]): Promise<void> {
    if (!this.allocator?.has("instance")) return;
    const txn = this.readTxn();
    for (const b of gone) {
      if (b.instanceIp === "" || this.instanceIpOf(txn, b.service, b.address) !== "") continue;
      await this.allocator.release("instance", b.instanceIp);
    }
  }

  /** Creates or replaces (mode) the local-redirect override of a service. */
  async writeLocalRedirect(input: LocalRedirect, mode: Mode): Promise<LocalRedirect> {
    const r = checkRedirect(input);
    await this.write((txn, touched) => {
      precondition(this.tables.redirects, txn, r.service, mode, input.revision, `local redirect of "${r.service}"`);
      this.tables.redirects.insert(txn, create(LocalRedirectSchema, { ...r, revision: "0" }));
      touched.add(r.service);
    });
    return this.read(this.tables.redirects, this.readTxn(), r.service) ?? r;
  }

  /** Removes the override: the service is resolved again as if it had never been there. */
  async deleteLocalRedirect(ref: ObjectRef): Promise<void> {
    const service = requireName(ref.service, "service");
    await this.write((txn, touched) => {
      precondition(this.tables.redirects, txn, service, "update", ref.revision, `local redirect of "${service}"`);
      this.tables.redirects.deleteKey(txn, service);
      touched.add(service);
    });
  }

  /** Stores a node's reconcile status of a service (replacing its previous one), stamped with the time. */
  async reportStatus(input: ReconcileStatus): Promise<ReconcileStatus> {
    const s = create(ReconcileStatusSchema, { ...checkStatus(input), updatedUnixMs: String(this.clock.now()) });
    await this.tables.db.update([this.tables.statuses, this.tables.epochs], (txn) => {
      // A status of a service that is gone would never be cleaned up; the node drops it on NotFound.
      if (this.tables.epochs.get(txn, s.service) === undefined) fail(Code.NotFound, `services: service: "${s.service}" does not exist`);
      this.tables.statuses.insert(txn, s);
    });
    return s;
  }

  /** Statuses of a node and/or service (empty: all). */
  listStatus(node: string, service: string): ReconcileStatus[] {
    const txn = this.readTxn();
    const list = service !== "" ? this.tables.statuses.list(txn, "byService", service) : [...this.tables.statuses.all(txn)];
    return list.filter((s) => node === "" || s.node === node);
  }

  /** Reads one status. */
  getStatus(node: string, service: string): ReconcileStatus | undefined {
    return this.tables.statuses.get(this.readTxn(), statusKey(node, service));
  }
}
