/**
 * Serving `nsmts.services.v1`: thin handlers over the model (it validates and maps failures to status codes).
 * Writes through the API default to source "api"; the registry sources write in-process.
 */
import { create } from "@bufbuild/protobuf";
import {
  type Backend,
  BackendEventSchema,
  BackendManager,
  type Frontend,
  FrontendEventSchema,
  FrontendManager,
  type LocalRedirect,
  LocalRedirectEventSchema,
  LocalRedirectManager,
  ReconcileStatusEventSchema,
  type Service,
  ServiceDataPlane,
  ServiceEventSchema,
  ServiceManager,
} from "@nsm-ts/api/services";
import type { NsmServer } from "@nsm-ts/base/grpc";
import { Code, fail } from "@nsm-ts/base/status";
import type { Table } from "@nsm-ts/statedb";
import type { ServiceModel } from "./model.js";
import { requireName, requirePolicy, requireSource } from "./names.js";
import { backendKey, frontendKey, serviceKey } from "./tables.js";
import { listResolved, watchResolved, watchTable } from "./watch.js";

/** Rows matching a list/watch filter (empty fields match everything). */
function filter<T extends { service?: string; name?: string; source?: string }>(service: string, source: string, svcOf: (o: T) => string) {
  return (o: T): boolean => (service === "" || svcOf(o) === service) && (source === "" || o.source === undefined || o.source === source);
}

function found<T>(o: T | undefined, what: string): T {
  return o ?? fail(Code.NotFound, `services: ${what} not found`);
}

/** Serves every `nsmts.services.v1` service on `server` from `model`. */
export function registerServices(server: NsmServer, model: ServiceModel): void {
  const t = model.tables;
  const list = <T extends { revision: string }>(table: Table<T, string>, keep: (o: T) => boolean): T[] =>
    model.rows(table, model.readTxn()).filter(keep);
  const ok = async (p: Promise<unknown>): Promise<Record<string, never>> => {
    await p;
    return {};
  };
  const svcOf = (s: Service): string => s.name;
  const ofService = (o: { service: string }): string => o.service;

  server.addService(ServiceManager, {
    createService: (r) => model.writeService(r, "create"),
    getService: async (r) => {
      const key = serviceKey(requireName(r.service, "service"), requireSource(r.source));
      return found(model.read(t.services, model.readTxn(), key), `service "${r.service}"`);
    },
    updateService: (r) => model.writeService(r, "update"),
    deleteService: (r) => ok(model.deleteService(r)),
    listServices: async (r) => ({ items: list(t.services, filter<Service>(r.service, r.source, svcOf)) }),
    watchServices: async function* (r, ctx) {
      const keep = filter<Service>(r.service, r.source, svcOf);
      for await (const e of watchTable(model, t.services, keep, r.skipExisting, ctx.signal)) {
        yield create(ServiceEventSchema, { service: e.object, deleted: e.deleted });
      }
    },
  });

  server.addService(FrontendManager, {
    createFrontend: (r) => model.createFrontend(r),
    getFrontend: async (r) => {
      const key = frontendKey(requireName(r.service, "service"), requirePolicy(r.policy));
      return found(model.read(t.frontends, model.readTxn(), key), `frontend of "${r.service}"`);
    },
    deleteFrontend: (r) => ok(model.deleteFrontend(r)),
    listFrontends: async (r) => ({ items: list(t.frontends, filter<Frontend>(r.service, "", ofService)) }),
    watchFrontends: async function* (r, ctx) {
      for await (const e of watchTable(model, t.frontends, filter<Frontend>(r.service, "", ofService), r.skipExisting, ctx.signal)) {
        yield create(FrontendEventSchema, { frontend: e.object, deleted: e.deleted });
      }
    },
  });

  server.addService(BackendManager, {
    createBackend: (r) => model.writeBackend(r, "create"),
    getBackend: async (r) => {
      if (r.name === "") fail(Code.InvalidArgument, "services: name: required");
      const key = backendKey(requireName(r.service, "service"), requireSource(r.source), r.name);
      return found(model.read(t.backends, model.readTxn(), key), `backend "${r.name}" of "${r.service}"`);
    },
    updateBackend: (r) => model.writeBackend(r, "update"),
    deleteBackend: (r) => ok(model.deleteBackend(r)),
    renewBackend: (r) => model.renewBackend(r),
    listBackends: async (r) => ({ items: list(t.backends, filter<Backend>(r.service, r.source, ofService)) }),
    watchBackends: async function* (r, ctx) {
      for await (const e of watchTable(model, t.backends, filter<Backend>(r.service, r.source, ofService), r.skipExisting, ctx.signal)) {
        yield create(BackendEventSchema, { backend: e.object, deleted: e.deleted });
      }
    },
  });

  server.addService(LocalRedirectManager, {
    createLocalRedirect: (r) => model.writeLocalRedirect(r, "create"),
    getLocalRedirect: async (r) =>
      found(model.read(t.redirects, model.readTxn(), requireName(r.service, "service")), `local redirect of "${r.service}"`),
    deleteLocalRedirect: (r) => ok(model.deleteLocalRedirect(r)),
    listLocalRedirects: async (r) => ({ items: list(t.redirects, filter<LocalRedirect>(r.service, "", ofService)) }),
    watchLocalRedirects: async function* (r, ctx) {
      for await (const e of watchTable(model, t.redirects, filter<LocalRedirect>(r.service, "", ofService), r.skipExisting, ctx.signal)) {
        yield create(LocalRedirectEventSchema, { localRedirect: e.object, deleted: e.deleted });
      }
    },
  });

  server.addService(ServiceDataPlane, {
    listResolvedServices: async (r) => ({ items: listResolved(model, r) }),
    watchResolvedServices: (r, ctx) => watchResolved(model, r, ctx.signal),
    reportReconcileStatus: (r) => model.reportStatus(r),
    listReconcileStatus: async (r) => ({ items: model.listStatus(r.node, r.service) }),
    watchReconcileStatus: async function* (r, ctx) {
      const keep = (s: { node: string; service: string }): boolean =>
        (r.node === "" || s.node === r.node) && (r.service === "" || s.service === r.service);
      for await (const e of watchTable(model, t.statuses, keep, r.skipExisting, ctx.signal)) {
        yield create(ReconcileStatusEventSchema, { status: e.object, deleted: e.deleted });
      }
    },
  });
}
