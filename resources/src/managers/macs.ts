/**
 * MAC addresses: random ones come from one bitmap per OUI, loaded once from the store; specific ones may lie
 * under any OUI. Multicast addresses are refused.
 */
import { create } from "@bufbuild/protobuf";
import { type BulkAllocateMacAddressesRequest, type MacAddress, type MacAddressRef, MacAddressSchema } from "@nsm-ts/api/resources";
import { Code, fail, isStatusError } from "@nsm-ts/base/status";
import { formatMac, requireMac, requireOui } from "../address.js";
import { KeyedMutex, MacAllocator } from "../allocator.js";
import type { StoreOp, WriteCaller } from "../store.js";
import type { ChangeFeeds } from "./feed.js";
import { requireCount } from "./fields.js";
import type { Records } from "./records.js";

/** The MAC address manager and the per-OUI bitmaps (internal; `ResourceManagers` serves it). */
export class MacAddresses {
  private readonly locks = new KeyedMutex();
  private readonly macs = new Map<bigint, MacAllocator>();

  constructor(
    private readonly records: Records,
    private readonly feeds: ChangeFeeds,
    private readonly defaultOui: bigint,
  ) {}

  /** Allocates `count` random MACs, all or none. */
  async bulkAllocate(req: BulkAllocateMacAddressesRequest, caller?: WriteCaller): Promise<MacAddress[]> {
    requireCount(req.count);
    const alloc = await this.allocator(req.oui === "" ? this.defaultOui : requireOui(req.oui, "oui"));
    const taken: bigint[] = [];
    for (let i = 0; i < req.count; i++) {
      const v = alloc.take() ?? fail(Code.ResourceExhausted, "resources: oui: no free MAC under the OUI");
      taken.push(v);
    }
    try {
      return await this.records.commitMany<MacAddress>(
        taken.map((v) => createOp(formatMac(v), req.owner)),
        caller,
      );
    } catch (err) {
      for (const v of taken) alloc.clear(v);
      throw err;
    }
  }

  /** Reads one MAC. */
  async get(ref: MacAddressRef): Promise<MacAddress> {
    return this.records.get<MacAddress>("mac", formatMac(requireMac(ref.address, "address")), "address");
  }

  /** Changes a MAC's owner. */
  async update(m: MacAddress, caller?: WriteCaller): Promise<MacAddress> {
    const address = formatMac(requireMac(m.address, "address"));
    return this.records.commitOne<MacAddress>({ ...createOp(address, m.owner), type: "update", revision: m.revision }, caller);
  }

  /** Releases several MACs, all or none (FailedPrecondition while a port holds one). */
  async bulkRelease(refs: readonly MacAddressRef[], caller?: WriteCaller): Promise<void> {
    const macs = refs.map((r, i) => ({ v: requireMac(r.address, `refs[${i}].address`), revision: r.revision }));
    await this.records.commitChunked(
      macs.map((m) => ({ type: "delete", kind: "mac", id: formatMac(m.v), revision: m.revision })),
      caller,
    );
    for (const m of macs) this.forget(m.v);
  }

  /** Allocates `address` (`field` names it in errors), or a random MAC under `oui` (default OUI when empty). */
  async allocate(address: string, oui: string, owner: string, field: string, caller?: WriteCaller): Promise<MacAddress> {
    if (address !== "") {
      const v = requireMac(address, field);
      if ((v >> 40n) & 1n) fail(Code.InvalidArgument, `resources: ${field}: ${address} is a multicast address`);
      const text = formatMac(v);
      const alloc = this.macs.get(v >> 24n);
      const fresh = alloc?.mark(v) ?? false;
      if (alloc !== undefined && !fresh && this.records.store.exclusive)
        fail(Code.AlreadyExists, `resources: ${field}: ${text} is already allocated`);
      try {
        return await this.records.commitOne<MacAddress>(createOp(text, owner), caller);
      } catch (err) {
        if (fresh && (this.records.store.exclusive || !isStatusError(err, Code.AlreadyExists))) alloc?.clear(v);
        if (isStatusError(err, Code.AlreadyExists)) fail(Code.AlreadyExists, `resources: ${field}: ${text} is already allocated`);
        throw err;
      }
    }
    const alloc = await this.allocator(oui === "" ? this.defaultOui : requireOui(oui, "oui"));
    for (;;) {
      const v = alloc.take() ?? fail(Code.ResourceExhausted, `resources: ${field}: no free MAC under the OUI`);
      try {
        return await this.records.commitOne<MacAddress>(createOp(formatMac(v), owner), caller);
      } catch (err) {
        if (isStatusError(err, Code.AlreadyExists)) continue;
        alloc.clear(v);
        throw err;
      }
    }
  }

  /** Clears a released MAC's bit, when its OUI's bitmap is loaded. */
  forget(v: bigint): void {
    this.macs.get(v >> 24n)?.clear(v);
  }

  /** The OUI's allocator, loaded once (under the OUI's lock) from the MACs allocated under it. */
  private async allocator(oui: bigint): Promise<MacAllocator> {
    const have = this.macs.get(oui);
    if (have !== undefined) return have;
    return this.locks.run(`oui/${oui}`, async () => {
      const again = this.macs.get(oui);
      if (again !== undefined) return again;
      await this.feeds.follow("mac", (id, deleted) => {
        const v = BigInt(`0x${id.replace(/:/g, "")}`);
        if (deleted) this.forget(v);
        else this.macs.get(v >> 24n)?.mark(v);
      });
      const alloc = new MacAllocator(oui);
      const prefix = formatMac(oui << 24n).slice(0, 9);
      for (const r of await this.records.store.list("mac", { prefix })) alloc.mark(requireMac(r.id, "address"));
      this.macs.set(oui, alloc);
      return alloc;
    });
  }
}

function createOp(address: string, owner: string): StoreOp & { type: "create" } {
  return { type: "create", kind: "mac", id: address, value: create(MacAddressSchema, { address, owner }), refs: [] };
}
