export { createEtcdKv, type EtcdKvOptions } from "./etcd.js";
export type { Kv, KvCompare, KvEntry, KvEvent, KvLock, KvTxn } from "./kv.js";
export { createMemoryKv } from "./memory.js";
