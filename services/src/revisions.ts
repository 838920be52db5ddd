/** Optimistic concurrency of model writes: presence by write mode, and the caller's expected revision. */
import { Code, fail } from "@nsm-ts/base/status";
import type { ReadTxn, Table } from "@nsm-ts/statedb";

/** How a write treats an existing row: create (must be absent), update (must exist), put (either). */
export type Mode = "create" | "update" | "put";

/** Parses a revision to compare against; "" and "0" mean no check. */
export function expected(revision: string): number {
  if (revision === "" || revision === "0") return 0;
  if (!/^[0-9]{1,16}$/.test(revision)) fail(Code.InvalidArgument, `services: revision: ${JSON.stringify(revision)} is not a revision`);
  return Number(revision);
}

/** Checks presence and the revision of `key` for a write in `mode`; returns the current row. */
export function precondition<T>(
  table: Table<T, string>,
  txn: ReadTxn,
  key: string,
  mode: Mode,
  revision: string,
  what: string,
): T | undefined {
  const e = table.getEntry(txn, key);
  if (mode === "create" && e !== undefined) fail(Code.AlreadyExists, `services: ${what} already exists`);
  if (mode === "update" && e === undefined) fail(Code.NotFound, `services: ${what} not found`);
  const want = expected(revision);
  if (want !== 0 && e?.revision !== want) {
    fail(Code.Aborted, `services: revision: ${what} is at revision ${e?.revision ?? 0}, not ${want}`);
  }
  return e?.object;
}
