/** Shared fixtures of the traffic-controller tests: a store on memory and a small two-cluster scenario. */
import { create } from "@bufbuild/protobuf";
import { ClusterSchema, IntentSchema, MtlsMode, TrafficGroupSchema } from "@nsm-ts/api/intents";
import { createMemoryKv, type Kv } from "./kv/index.js";
import { IntentObjects } from "./objects.js";
import { IntentStore } from "./store.js";

export function memoryObjects(kv: Kv = createMemoryKv()): IntentObjects {
  return new IntentObjects(new IntentStore(kv));
}

export const clusterA = (gitUrl = "/tmp/none-a") =>
  create(ClusterSchema, { name: "edge-a", labels: { "nsmts.io/eastwest-gateway": "198.51.100.10" }, target: { gitUrl } });
export const clusterB = (gitUrl = "/tmp/none-b") => create(ClusterSchema, { name: "edge-b", target: { gitUrl } });

/** "app b (edge-b) may call service a (edge-a) on 8080 with mTLS; retries 3; timeout 2 s". */
export const inboundA = () =>
  create(IntentSchema, {
    trafficGroup: "shop",
    name: "expose-a",
    spec: {
      case: "inbound",
      value: {
        service: "a",
        cluster: "edge-a",
        ports: [{ number: 8080, protocol: "HTTP" }],
        allowedClients: [{ app: "b" }],
        mtlsMode: MtlsMode.STRICT,
      },
    },
  });

export const outboundB = (timeout = "2s") =>
  create(IntentSchema, {
    trafficGroup: "shop",
    name: "b-calls-a",
    spec: {
      case: "outbound",
      value: {
        clientApp: "b",
        cluster: "edge-b",
        service: "a",
        timeout,
        retries: { attempts: 3, perTryTimeout: "500ms" },
        outlierDetection: { consecutiveErrors: 5, interval: "10s", baseEjectionTime: "30s", maxEjectionPercent: 50 },
        connectionPool: { maxConnections: 100, http1MaxPendingRequests: 10 },
      },
    },
  });

/** Creates both clusters, the group and both intents. */
export async function seedShop(o: IntentObjects, gitA?: string, gitB?: string): Promise<void> {
  await o.createCluster(clusterA(gitA));
  await o.createCluster(clusterB(gitB));
  await o.createGroup(create(TrafficGroupSchema, { name: "shop" }));
  await o.createIntent(inboundA());
  await o.createIntent(outboundB());
}
