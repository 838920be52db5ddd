/** Key ranges and transaction compares, the vocabulary of etcd's prefix scans and compare-and-swap writes. */
import type { ICompare } from "etcd3";

/** The end of etcd's prefix range: the prefix with its last byte incremented. */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    const byte = b[i];
    if (byte !== undefined && byte < 0xff) {
      const out = Buffer.from(b.subarray(0, i + 1));
      out[i] = byte + 1;
      return out;
    }
  }
  return Buffer.from([0]);
}

/** The first key after `key` (a range resumes there). */
export function keyAfter(key: Buffer | string): Buffer {
  return Buffer.concat([Buffer.from(key), Buffer.from([0])]);
}

/** Transaction compares: each holds when the key is as the caller last read it. */
export const compare = {
  /** The key does not exist (create only if absent). */
  absent: (key: Buffer): ICompare => ({ key, target: "Version", result: "Equal", version: 0 }),
  /** The key exists. */
  present: (key: Buffer): ICompare => ({ key, target: "Version", result: "Greater", version: 0 }),
  /** The key was last written at `revision` ("0": it does not exist). */
  modRevision: (key: Buffer, revision: string): ICompare => ({ key, target: "Mod", result: "Equal", mod_revision: revision }),
  /** No key under `prefix` was written after `revision`, so none was added since a read at that revision. */
  unchangedSince: (prefix: string, revision: string): ICompare => ({
    key: Buffer.from(prefix),
    range_end: prefixEnd(prefix),
    target: "Mod",
    result: "Less",
    mod_revision: String(BigInt(revision) + 1n),
  }),
};
