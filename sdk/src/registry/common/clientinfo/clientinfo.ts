/**
 * clientinfo (registry client): labels every service of an endpoint with where the endpoint runs (`nodeName`,
 * `podName`, `clusterName`), so network service matches can select endpoints by them. Values come from options
 * (programs read NODE_NAME / POD_NAME / CLUSTER_NAME); labels already set win. Network services pass through.
 */
import { create } from "@bufbuild/protobuf";
import { Label } from "@nsm-ts/api/constants";
import { NetworkServiceLabelsSchema } from "@nsm-ts/api/registry";
import type { RegistryElement, RegistryEntry } from "../../core/index.js";
import { cloneEntry, isEndpoint } from "../entry.js";

/** Where the endpoint runs; empty or missing values add no label. */
export interface ClientInfoOptions {
  /** Value of the `nodeName` label (programs: NODE_NAME). */
  nodeName?: string;
  /** Value of the `podName` label (programs: POD_NAME). */
  podName?: string;
  /** Value of the `clusterName` label (programs: CLUSTER_NAME). */
  clusterName?: string;
}

/** Creates the client element (see the header comment). */
export function newClient<T extends RegistryEntry>(opts: ClientInfoOptions = {}): RegistryElement<T> {
  const values: [string, string | undefined][] = [
    [Label.NODE_NAME, opts.nodeName],
    [Label.POD_NAME, opts.podName],
    [Label.CLUSTER_NAME, opts.clusterName],
  ];
  return {
    name: "clientinfo",
    async register(ctx, entry, next) {
      if (!isEndpoint(entry)) return next.register(ctx, entry);
      const e = cloneEntry(entry);
      for (const svc of e.networkServiceNames) {
        let l = e.networkServiceLabels[svc];
        if (l === undefined) {
          l = create(NetworkServiceLabelsSchema);
          e.networkServiceLabels[svc] = l;
        }
        for (const [k, v] of values) if (v && l.labels[k] === undefined) l.labels[k] = v;
      }
      return next.register(ctx, e as T);
    },
    find: (ctx, query, next) => next.find(ctx, query),
    unregister: (ctx, entry, next) => next.unregister(ctx, entry),
  };
}
