/**
 * clientinfo: labels a connection with where its client runs (`nodeName`, `podName`, `clusterName`), so
 * network service matches can select by them (`{{.nodeName}}`). The values come from options (programs read
 * NODE_NAME / POD_NAME / CLUSTER_NAME from their environment); labels already on the connection win.
 * Writes: `connection.labels`. Place before discover (server side) or anywhere in a client chain.
 */
import { Label } from "@nsm-ts/api/constants";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";

/** Where the client runs; empty or missing values add no label. */
export interface ClientInfoOptions {
  /** Kubernetes node name (env NODE_NAME in the programs). */
  nodeName?: string;
  /** Pod name (env POD_NAME). */
  podName?: string;
  /** Cluster name (env CLUSTER_NAME). */
  clusterName?: string;
}

/** Adds the labels of `info` to `labels` without overwriting existing keys. */
export function addClientInfo(labels: Record<string, string>, info: ClientInfoOptions): void {
  const add = (k: string, v: string | undefined): void => {
    if (v && !Object.hasOwn(labels, k)) labels[k] = v;
  };
  add(Label.NODE_NAME, info.nodeName);
  add(Label.POD_NAME, info.podName);
  add(Label.CLUSTER_NAME, info.clusterName);
}

function make(info: ClientInfoOptions, name: string): NetworkServiceElement {
  const fixed: ClientInfoOptions = { ...info };
  return {
    name,
    request(ctx, req, next) {
      addClientInfo(connectionOf(req).labels, fixed);
      return next.request(ctx, req);
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}

/** Client side. */
export function newClient(info: ClientInfoOptions): NetworkServiceElement {
  return make(info, "clientinfo-client");
}

/** Server side (nsmgr labels connections of local clients that did not label themselves). */
export function newServer(info: ClientInfoOptions): NetworkServiceElement {
  return make(info, "clientinfo");
}
