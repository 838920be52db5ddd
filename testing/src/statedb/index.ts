/** Fixtures of the statedb tests: two tables (endpoints with multi/unique indexes, routes with an LPM index), builders and helpers. */
import { type Change, createDb } from "@nsm-ts/statedb";

export interface Endpoint {
  readonly name: string;
  readonly service: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly url?: string;
}

export interface Route {
  readonly id: string;
  readonly prefix: string;
}

export function setup(opts: { graveyardSize?: number; graveyardMax?: number } = {}) {
  const db = createDb({ freeze: true, ...opts });
  const endpoints = db.createTable({
    name: "endpoints",
    primaryKey: (e: Endpoint) => e.name,
    indexes: {
      byService: { kind: "multi", keys: (e: Endpoint) => e.service },
      byLabel: { kind: "multi", keys: (e: Endpoint) => Object.entries(e.labels).map(([k, v]) => `${k}=${v}`) },
      byUrl: { kind: "unique", key: (e: Endpoint) => e.url },
    },
  });
  const routes = db.createTable({
    name: "routes",
    primaryKey: (r: Route) => r.id,
    indexes: { byPrefix: { kind: "lpm", prefixes: (r: Route) => [r.prefix] } },
  });
  return { db, endpoints, routes };
}

export const ep = (name: string, service: string[] = ["svc"], labels: Record<string, string> = {}, url?: string): Endpoint =>
  url === undefined ? { name, service, labels } : { name, service, labels, url };

/** Lets promise callbacks run, to check that something did not happen. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
}

export function tracker(p: Promise<void>): { fired: boolean } {
  const s = { fired: false };
  void p.then(() => {
    s.fired = true;
  });
  return s;
}

export async function take<T>(it: AsyncIterator<Change<T>>, n: number): Promise<Array<Change<T>>> {
  const out: Array<Change<T>> = [];
  for (let i = 0; i < n; i++) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}
