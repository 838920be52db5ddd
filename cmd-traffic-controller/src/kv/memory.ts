/** `Kv` in this process's memory: one global revision, synchronous transactions, watches fed on commit. */
import { Code, fail } from "@nsm-ts/base/status";
import type { Kv, KvEntry, KvEvent, KvLock, KvTxn } from "./kv.js";

interface Watch {
  prefix: string;
  onEvent: (ev: KvEvent) => void;
}

/** A `Kv` that lives as long as the process; locks never expire (there is only one holder process). */
export function createMemoryKv(): Kv {
  const data = new Map<string, KvEntry>();
  const watches = new Set<Watch>();
  const locks = new Map<string, AbortController>();
  let revision = 0;
  let closed = false;
  const open = () => {
    if (closed) fail(Code.Unavailable, "traffic-controller store (memory): closed");
  };
  const notify = (ev: KvEvent) => {
    for (const w of watches) if (ev.entry.key.startsWith(w.prefix)) w.onEvent(ev);
  };
  const kv: Kv = {
    async list(prefix) {
      open();
      const entries = [...data.values()]
        .filter((e) => e.key.startsWith(prefix))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      return { entries, revision: String(revision) };
    },
    async get(key) {
      open();
      return data.get(key);
    },
    async txn(t: KvTxn) {
      open();
      for (const c of t.compares)
        if ((data.get(c.key)?.modRevision ?? "0") !== c.modRevision) return { succeeded: false, revision: String(revision) };
      if (t.puts.length === 0 && t.deletes.length === 0) return { succeeded: true, revision: String(revision) };
      revision++;
      const rev = String(revision);
      const events: KvEvent[] = [];
      for (const key of t.deletes) {
        const old = data.get(key);
        if (old === undefined) continue;
        data.delete(key);
        events.push({ type: "delete", entry: { key, value: "", modRevision: rev } });
      }
      for (const p of t.puts) {
        const entry = { key: p.key, value: p.value, modRevision: rev };
        data.set(p.key, entry);
        events.push({ type: "put", entry });
      }
      for (const ev of events) notify(ev);
      return { succeeded: true, revision: rev };
    },
    async watch(prefix, afterRevision, onEvent) {
      open();
      // Memory keeps no history: a watch can only start at the current revision.
      if (Number(afterRevision) < revision) {
        for (const e of data.values())
          if (e.key.startsWith(prefix) && Number(e.modRevision) > Number(afterRevision)) onEvent({ type: "put", entry: e });
      }
      const w: Watch = { prefix, onEvent };
      watches.add(w);
      return {
        stop: async () => {
          watches.delete(w);
        },
      };
    },
    async tryLock(name) {
      open();
      if (locks.has(name)) return undefined;
      const key = `lock/${name}`;
      const { revision: rev } = await kv.txn({ compares: [], puts: [{ key, value: "memory" }], deletes: [] });
      const ac = new AbortController();
      locks.set(name, ac);
      const lock: KvLock = {
        compare: { key, modRevision: rev },
        lost: ac.signal,
        release: async () => {
          if (locks.get(name) !== ac) return;
          locks.delete(name);
          ac.abort();
          if (!closed) await kv.txn({ compares: [], puts: [], deletes: [key] });
        },
      };
      return lock;
    },
    async close() {
      closed = true;
      watches.clear();
      for (const ac of locks.values()) ac.abort();
      locks.clear();
    },
  };
  return kv;
}
