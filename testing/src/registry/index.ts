/**
 * Test helpers shared by the registry element tests (not exported from the package): entry builders and a
 * pull-one-result view of a Find stream that cleans up on `close`; the registry store tests' backends come from
 * store.ts.
 */
import { create } from "@bufbuild/protobuf";
import {
  type NetworkService,
  type NetworkServiceEndpoint,
  NetworkServiceEndpointSchema,
  NetworkServiceLabelsSchema,
  NetworkServiceSchema,
} from "@nsm-ts/api/registry";
import type { FindResult, RegistryEntry } from "@nsm-ts/sdk/registry";

/** An endpoint named `name` offering `services`, with optional per-service labels. */
export function nse(
  name: string,
  services: string[] = [],
  labels: Record<string, Record<string, string>> = {},
  url = "tcp://198.51.100.1:5001",
): NetworkServiceEndpoint {
  return create(NetworkServiceEndpointSchema, {
    name,
    networkServiceNames: services,
    networkServiceLabels: Object.fromEntries(
      Object.entries(labels).map(([s, l]) => [s, create(NetworkServiceLabelsSchema, { labels: l })]),
    ),
    url,
  });
}

/** A network service named `name`. */
export function ns(name: string, payload = ""): NetworkService {
  return create(NetworkServiceSchema, { name, payload });
}

/** Every result of a finite Find. */
export async function collect<T extends RegistryEntry>(it: AsyncIterable<FindResult<T>>): Promise<FindResult<T>[]> {
  const out: FindResult<T>[] = [];
  for await (const r of it) out.push(r);
  return out;
}

/** A Find stream read one result at a time; `close` ends it (call in afterEach). */
export class Pull<T extends RegistryEntry> {
  private readonly it: AsyncIterator<FindResult<T>>;
  private pending: Promise<IteratorResult<FindResult<T>>> | undefined;
  /** Starts the stream at once (an async generator only runs once pulled), so an in-process watch is attached. */
  constructor(iterable: AsyncIterable<FindResult<T>>) {
    this.it = iterable[Symbol.asyncIterator]();
    this.pending = this.it.next();
    this.pending.catch(() => undefined);
  }
  private pull(): Promise<IteratorResult<FindResult<T>>> {
    const p = this.pending ?? this.it.next();
    this.pending = undefined;
    return p;
  }
  /** The next result; fails when the stream ended. */
  async next(): Promise<FindResult<T>> {
    const r = await this.pull();
    if (r.done === true) throw new Error("find stream ended");
    return r.value;
  }
  /** Resolves with the end of the stream: undefined when it ended normally, the error otherwise. */
  async end(): Promise<unknown> {
    try {
      for (;;) {
        const r = await this.pull();
        if (r.done === true) return undefined;
      }
    } catch (err) {
      return err;
    }
  }
  /** Ends the stream early. */
  async close(): Promise<void> {
    await this.it.return?.();
  }
}

export { MemRegistry, memNseRegistry, memNsRegistry, nseOf, nsOf } from "./memory.js";
export {
  describeStoreBackends,
  type EtcdStoreSuite,
  etcdTestPrefix,
  nseTemplate,
  type StoreBackend,
  type StoreCases,
  StoreStream,
  startEtcdOrSkip,
  storeNse,
  useEtcdStoreSuite,
} from "./store.js";
