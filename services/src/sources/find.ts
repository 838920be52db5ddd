/**
 * The streams a registry source follows: this process's own endpoint store, or another registry's Find with
 * watch over gRPC.
 */
import { create } from "@bufbuild/protobuf";
import { type NetworkServiceEndpoint, NetworkServiceEndpointRegistry, NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { type Channel, createClient } from "@nsm-ts/base/grpc";
import type { RegistryStore } from "@nsm-ts/sdk/registry";
import type { NseEvent } from "./registry.js";

/** Every NSE of `store`, then every change (in-process, no gRPC). */
export function storeFind(store: RegistryStore<NetworkServiceEndpoint>): (signal: AbortSignal) => AsyncIterable<NseEvent> {
  return (signal) => store.find(create(NetworkServiceEndpointSchema), { watch: true, signal });
}

/** Every NSE of the registry at the other end of `channel`, then every change (Find with watch). */
export function remoteFind(channel: Channel): (signal: AbortSignal) => AsyncIterable<NseEvent> {
  const client = createClient(NetworkServiceEndpointRegistry, channel);
  return async function* (signal) {
    for await (const r of client.find({ networkServiceEndpoint: {}, watch: true }, { signal })) {
      if (r.networkServiceEndpoint !== undefined) yield { entry: r.networkServiceEndpoint, deleted: r.deleted };
    }
  };
}
