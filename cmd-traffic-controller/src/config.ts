/**
 * cmd-traffic-controller's environment table: where to serve gRPC and Connect HTTP, where intents live (this
 * process's memory or etcd shared by replicas) and how delivery retries.
 */
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import {
  ConfigError,
  type ConfigValues,
  commonVars,
  defineConfig,
  duration,
  nonEmpty,
  type StoreConfig,
  serverVars,
  storeUrl,
  url,
  urlList,
  validateCommon,
} from "@nsm-ts/base/config";

/** Where intents live: memory (one process) or an etcd cluster shared by every replica. */
export type IntentsStoreConfig = StoreConfig;

/** Parses `memory` or `etcd://host:port[,host:port…]`. */
export const parseIntentsStore: (raw: string) => IntentsStoreConfig = storeUrl;

/** The table; `config.names()` is what manifests may set. */
export const config = defineConfig(
  {
    ...commonVars({ name: `traffic-controller-${hostname()}`, nameLabel: "traffic-controller-<hostname>" }),
    ...serverVars(),
    listenOn: {
      name: "NSM_LISTEN_ON",
      description: "URLs to serve the nsmts.intents.v1 gRPC API on, comma separated (tcp://host:port, unix:///path)",
      default: "tcp://:5090",
      parse: urlList,
    },
    httpListenOn: {
      name: "NSM_HTTP_LISTEN_ON",
      description: "tcp://host:port to serve the same API with the Connect protocol (JSON over HTTP, curl-friendly); off = not served",
      default: "tcp://:5080",
      parse: (raw: string): string | undefined => (raw.trim() === "off" ? undefined : url(raw)),
    },
    store: {
      name: "NSM_INTENTS_STORE",
      description: "memory (this process only) or etcd://host:port[,host:port] (shared by replicas, survives restarts)",
      default: "memory",
      parse: parseIntentsStore,
    },
    etcdPrefix: {
      name: "NSM_INTENTS_ETCD_PREFIX",
      description: "Key prefix of the intents, outboxes and statuses in etcd",
      default: "/nsmts/intents/",
      parse: nonEmpty,
    },
    gitWorkDir: {
      name: "NSM_GIT_WORK_DIR",
      description: "Directory of the git work trees, one per cluster with a git target",
      default: join(tmpdir(), "nsmts-traffic-controller"),
      defaultLabel: "<tmpdir>/nsmts-traffic-controller",
      parse: nonEmpty,
    },
    backoffInitial: {
      name: "NSM_DELIVERY_BACKOFF_INITIAL",
      description: "Delay before the first retry of a failed delivery; it doubles per failure",
      default: "1s",
      parse: duration,
    },
    backoffMax: {
      name: "NSM_DELIVERY_BACKOFF_MAX",
      description: "Longest delay between retries of a failed delivery",
      default: "5m",
      parse: duration,
    },
    lockTtl: {
      name: "NSM_DELIVERY_LOCK_TTL",
      description: "Lease of a replica's delivery lock on a cluster target (etcd); another replica takes over this long after a crash",
      default: "10s",
      parse: duration,
    },
  },
  {
    validate: (cfg) => {
      validateCommon(cfg);
      if (cfg.backoffMax < cfg.backoffInitial)
        throw new ConfigError("NSM_DELIVERY_BACKOFF_MAX", "must not be shorter than NSM_DELIVERY_BACKOFF_INITIAL");
    },
  },
);

/** cmd-traffic-controller's parsed configuration. */
export type Config = ConfigValues<typeof config.vars>;

/** The `status` subcommand's table. */
export const statusConfig = defineConfig({
  ...commonVars({ name: "traffic-controller-status", nameLabel: "traffic-controller-status" }),
  url: {
    name: "NSM_TRAFFIC_CONTROLLER_URL",
    description: "gRPC URL of the traffic controller to ask",
    default: "tcp://127.0.0.1:5090",
    parse: url,
  },
});

/** The `status` subcommand's parsed configuration. */
export type StatusConfig = ConfigValues<typeof statusConfig.vars>;
