/**
 * The Watch RPCs of every manager: a store watch turned into the kind's event messages. The reader's pace sets
 * the pace (the server sends the next event once the previous one is written), so a slow reader fills its
 * store buffer and is ended with ResourceExhausted.
 */
import { create, type Message } from "@bufbuild/protobuf";
import { WatchEventType, type WatchRequest } from "@nsm-ts/api/resources";
import type { ServerCallContext } from "@nsm-ts/base/grpc";
import { schemaOf } from "./codec.js";
import { ipIdParts } from "./managers/fields.js";
import type { ResourceKind, ResourceStore, StoredRecord } from "./store.js";

/** A watch event of a kind whose message is `T`. */
export interface WatchEventOf<T extends Message> {
  type: WatchEventType;
  object?: T;
  revision: string;
}

/** The message of a record with the record's revision. */
const messageOf = <T extends Message>(rec: StoredRecord): T => ({ ...(rec.value as T), revision: rec.revision });

/** The message naming a deleted record whose last state is gone (etcd without the previous value). */
function identityOf<T extends Message>(kind: ResourceKind, id: string, revision: string): T {
  const schema = schemaOf[kind];
  if (kind === "ip") {
    const { subnetId, address } = ipIdParts(id);
    return create(schema, { subnetId, address, revision }) as unknown as T;
  }
  if (kind === "mac") return create(schema, { address: id, revision }) as unknown as T;
  return create(schema, { id, revision }) as unknown as T;
}

/** The server-streaming handler of a kind's Watch RPC. */
export function watchHandler<T extends Message>(
  store: ResourceStore,
  kind: ResourceKind,
  bufferSize: number | undefined,
): (req: WatchRequest, sctx: ServerCallContext) => AsyncIterable<WatchEventOf<T>> {
  return async function* (req, sctx) {
    for await (const ev of store.watch(kind, { fromRevision: req.fromRevision, signal: sctx.signal, bufferSize })) {
      if (ev.type === "synced") yield { type: WatchEventType.SYNCED, revision: ev.revision };
      else if (ev.type === "put") yield { type: WatchEventType.PUT, object: messageOf<T>(ev.record), revision: ev.revision };
      else {
        const object = ev.record === undefined ? identityOf<T>(kind, ev.id, ev.revision) : messageOf<T>(ev.record);
        yield { type: WatchEventType.DELETE, object, revision: ev.revision };
      }
    }
  };
}
