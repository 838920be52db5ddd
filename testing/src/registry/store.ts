/**
 * The fixture of the registry store tests: cases written once run against the in-memory store (on a mock clock)
 * and against a real etcd (started per suite, skipped when the binary is missing), so both stores are held to the
 * same contract. The cases live in the sdk's `store/*.test.ts` files; this is only their backends and helpers.
 */
import { create } from "@bufbuild/protobuf";
import {
  type NetworkService,
  type NetworkServiceEndpoint,
  NetworkServiceEndpointSchema,
  NetworkServiceLabelsSchema,
} from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { type Etcd3, newEtcdClient } from "@nsm-ts/base/etcd";
import {
  createEtcdStore,
  createMemoryStore,
  type RegistryEntryOf,
  type RegistryKind,
  type RegistryStore,
  type StoreEvent,
} from "@nsm-ts/sdk/registry";
import { expect } from "chai";
import { type EtcdInstance, etcdAvailable, startEtcd } from "../etcd/index.js";

type Entry = NetworkService | NetworkServiceEndpoint;

/** What a backend gives the shared cases. */
export interface StoreBackend {
  store<K extends RegistryKind>(kind: K, opts?: { watchBuffer?: number }): RegistryStore<RegistryEntryOf[K]>;
  /** Makes an entry registered now with `ttlMs` expire, and resolves once the backend has had the chance to. */
  expiryMs: number;
  /** Lets time pass so entries put with `expiryMs` expire (memory: mock clock; etcd: real time, lease TTL). */
  passExpiry(): Promise<void>;
  /** Now, in the time base the store uses for `expiresAtMs`. */
  now(): number;
}

/** An endpoint for the store cases; its URL's port is 5000 + the length of its name. */
export const storeNse = (name: string, svc: string[], l: Record<string, Record<string, string>> = {}): NetworkServiceEndpoint =>
  create(NetworkServiceEndpointSchema, {
    name,
    networkServiceNames: svc,
    networkServiceLabels: Object.fromEntries(Object.entries(l).map(([s, labels]) => [s, create(NetworkServiceLabelsSchema, { labels })])),
    url: `tcp://198.51.100.1:${5000 + name.length}`,
  });

/** A Find template for endpoints (empty fields match anything). */
export const nseTemplate = (init: Parameters<typeof create<typeof NetworkServiceEndpointSchema>>[1] = {}) =>
  create(NetworkServiceEndpointSchema, init);

/** An open Find with a pull-one-event API; aborted in afterEach. */
export class StoreStream<T extends Entry> {
  private readonly it: AsyncIterator<StoreEvent<T>>;
  constructor(iterable: AsyncIterable<StoreEvent<T>>) {
    this.it = iterable[Symbol.asyncIterator]();
  }
  /** The next event; fails when the stream ended. */
  async next(): Promise<StoreEvent<T>> {
    const r = await this.it.next();
    if (r.done) throw new Error("stream ended");
    return r.value;
  }
  /** True when the stream ends now. */
  async ended(): Promise<boolean> {
    return (await this.it.next()).done === true;
  }
  /** The next `n` events as `+name` (put) or `-name` (deleted). */
  async names(n: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const ev = await this.next();
      out.push(`${ev.deleted ? "-" : "+"}${ev.entry.name}`);
    }
    return out;
  }
}

/** What the shared cases get: the current backend and stores and watches that are closed after each case. */
export interface StoreCases {
  /** The backend of the running case (set up afresh before each). */
  readonly backend: StoreBackend;
  /** A store of the backend, closed after the case. */
  open<K extends RegistryKind>(kind: K, opts?: { watchBuffer?: number }): RegistryStore<RegistryEntryOf[K]>;
  /** A Find on `store`, aborted after the case. */
  find<T extends Entry>(store: RegistryStore<T>, template: T, watch: boolean): StoreStream<T>;
  /** The sorted names a Find without watch returns. */
  all<T extends Entry>(store: RegistryStore<T>, template: T): Promise<string[]>;
}

function storeSuite(
  title: string,
  setup: () => Promise<StoreBackend>,
  teardown: () => Promise<void>,
  cases: (t: StoreCases) => void,
): void {
  describe(title, function () {
    this.timeout(20_000);
    let current: StoreBackend;
    let stores: Array<RegistryStore<Entry>> = [];
    let aborts: AbortController[] = [];

    beforeEach(async () => {
      current = await setup();
    });
    afterEach(async () => {
      for (const a of aborts) a.abort();
      aborts = [];
      for (const s of stores) await s.close();
      stores = [];
      await teardown();
    });

    const backend: StoreBackend = {
      store: (kind, opts) => current.store(kind, opts),
      get expiryMs() {
        return current.expiryMs;
      },
      passExpiry: () => current.passExpiry(),
      now: () => current.now(),
    };
    cases({
      backend,
      open(kind, opts) {
        const s = backend.store(kind, opts);
        stores.push(s as RegistryStore<Entry>);
        return s;
      },
      find(store, template, watch) {
        const a = new AbortController();
        aborts.push(a);
        return new StoreStream(store.find(template, { watch, signal: a.signal }));
      },
      async all(store, template) {
        const out: string[] = [];
        for await (const ev of store.find(template, { watch: false, signal: new AbortController().signal })) {
          out.push(ev.entry.name);
        }
        return out.sort();
      },
    });
  });
}

let prefixSeq = 0;
/** A key prefix no other case of this process uses. */
export const etcdTestPrefix = (): string => `/nsm-ts-test/${process.pid}/${++prefixSeq}/`;

/** Starts a private etcd for a suite's `before`, or skips the suite with the reason when there is no etcd binary. */
export async function startEtcdOrSkip(ctx: Mocha.Context): Promise<EtcdInstance> {
  const check = etcdAvailable();
  if (!check.available) {
    console.warn(`    skipping the etcd store cases: ${check.reason}`);
    ctx.skip();
  }
  return startEtcd();
}

/** What `useEtcdStoreSuite` gives a suite's cases. */
export interface EtcdStoreSuite {
  /** The suite's etcd (started in `before`). */
  readonly etcd: EtcdInstance;
  /** A client of it, new for each case and closed after it. */
  readonly client: Etcd3;
  /** Stores a case opened: closed after it. */
  readonly opened: Array<RegistryStore<NetworkServiceEndpoint>>;
  /** Watches a case started: aborted after it. */
  readonly aborts: AbortController[];
}

/**
 * Mocha hooks for a suite of etcd store cases: a private etcd for the suite (skipped without the binary), a
 * client per case, and whatever stores and watches the case left in `opened` / `aborts` ended after it.
 */
export function useEtcdStoreSuite(): EtcdStoreSuite {
  let etcd: EtcdInstance | undefined;
  let client: Etcd3 | undefined;
  const opened: Array<RegistryStore<NetworkServiceEndpoint>> = [];
  const aborts: AbortController[] = [];
  before(async function () {
    etcd = await startEtcdOrSkip(this);
  });
  after(async () => {
    await etcd?.stop();
    etcd = undefined;
  });
  beforeEach(() => {
    client = newEtcdClient({ hosts: etcd?.endpoints ?? [] });
  });
  afterEach(async () => {
    for (const a of aborts.splice(0)) a.abort();
    for (const s of opened.splice(0)) await s.close();
    client?.close();
  });
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`etcd store suite: no ${what} outside a case`);
    return v;
  };
  return {
    get etcd() {
      return need(etcd, "etcd");
    },
    get client() {
      return need(client, "client");
    },
    opened,
    aborts,
  };
}

/**
 * Runs `cases` against both stores: under "registry/store: memory" and under "registry/store: etcd" › "shared
 * cases" (with an etcd of its own). The memory backend checks that no timer is left on its clock after each case.
 */
export function describeStoreBackends(cases: (t: StoreCases) => void): void {
  let clock: MockClock;
  storeSuite(
    "registry/store: memory",
    async () => {
      clock = new MockClock();
      return {
        store: (kind, opts) => createMemoryStore(kind, { clock, ...opts }),
        expiryMs: 1000,
        passExpiry: () => clock.advance(1000),
        now: () => clock.now(),
      };
    },
    async () => {
      expect(clock.pending(), "timers left on the clock").to.equal(0);
    },
    cases,
  );

  describe("registry/store: etcd", function () {
    this.timeout(30_000);
    // The suite's etcd and a client per case (closed after the case's stores, which the inner hooks close first).
    const suite = useEtcdStoreSuite();

    let current = "";
    storeSuite(
      "shared cases",
      async () => {
        current = etcdTestPrefix();
        const client = suite.client;
        return {
          store: (kind, opts) => createEtcdStore(kind, { client, prefix: current, ...opts }),
          expiryMs: 1000,
          // The lease expires in etcd on its own; the test waits for the deletion event, not for a fixed time.
          passExpiry: async () => undefined,
          now: () => Date.now(),
        };
      },
      async () => undefined,
      cases,
    );
  });
}
