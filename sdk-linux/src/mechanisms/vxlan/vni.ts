/**
 * The VXLAN mechanism (docs/wire-compatibility.md#vxlan-mechanism): builder, accessors and VNI allocation. A VNI is
 * random with its parity fixed by the order of the two tunnel addresses (even when src ≤ dst, odd otherwise), so
 * connections set up in the two directions between the same pair of forwarders never pick the same VNI.
 */
import { randomInt } from "node:crypto";
import { isIP } from "node:net";
import { create } from "@bufbuild/protobuf";
import { CommonParam, MechanismClass, MechanismType, VxlanParam } from "@nsm-ts/api/constants";
import { type Mechanism, MechanismSchema } from "@nsm-ts/api/networkservice";
import { Code, fail } from "@nsm-ts/base/status";

/** IANA's VXLAN port, upstream's default. */
export const DEFAULT_VXLAN_PORT = 4789;

/** Largest 24-bit VNI. */
export const MAX_VNI = 0xffffff;

/** A VXLAN mechanism as the requesting forwarder offers it: `src_ip` is its tunnel address (NSM_TUNNEL_IP). */
export function mechanism(srcIp: string): Mechanism {
  return create(MechanismSchema, { cls: MechanismClass.REMOTE, type: MechanismType.VXLAN, parameters: { [VxlanParam.SRC_IP]: srcIp } });
}

/** True for a VXLAN mechanism. */
export function isVxlan(m: Mechanism | undefined): m is Mechanism {
  return m?.type === MechanismType.VXLAN;
}

/** The VNI of a mechanism, or 0 when unset or not a number. */
export function vniOf(m: Mechanism | undefined): number {
  const s = m?.parameters[VxlanParam.VNI] ?? "";
  const n = /^\d+$/.test(s) ? Number(s) : 0;
  return n >= 1 && n <= MAX_VNI ? n : 0;
}

function bytes16(addr: string): number[] {
  const f = isIP(addr);
  if (f === 4) return [...Array<number>(10).fill(0), 0xff, 0xff, ...addr.split(".").map(Number)];
  if (f !== 6) fail(Code.InvalidArgument, `vxlan: ${JSON.stringify(addr)} is not an IP address`);
  const [head = "", tail] = addr.split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  const out: number[] = [];
  for (const g of groups) {
    if (g.includes(".")) out.push(...g.split(".").map(Number));
    else {
      const v = Number.parseInt(g || "0", 16);
      out.push(v >> 8, v & 0xff);
    }
  }
  return out;
}

/** Compares two addresses as 16-byte values (IPv4 mapped into IPv6): negative, 0 or positive. */
export function compareIp(a: string, b: string): number {
  const x = bytes16(a);
  const y = bytes16(b);
  for (let i = 0; i < 16; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The parity a VNI for this mechanism must have: `even` when src ≤ dst (original addresses first, if set). */
export function vniParity(m: Mechanism): "even" | "odd" {
  const p = m.parameters;
  const src = p[CommonParam.SRC_ORIGINAL_IP] || p[VxlanParam.SRC_IP] || "";
  const dst = p[CommonParam.DST_ORIGINAL_IP] || p[VxlanParam.DST_IP] || "";
  if (src === "" || dst === "") fail(Code.InvalidArgument, "vxlan: src_ip and dst_ip are needed to allocate a VNI");
  return compareIp(src, dst) <= 0 ? "even" : "odd";
}

/**
 * A random VNI of the mechanism's parity that is not in `used`. Throws ResourceExhausted after many misses
 * (millions of VNIs per parity make that practically a full table).
 */
export function allocateVni(m: Mechanism, used: ReadonlySet<number>, rand: (maxExclusive: number) => number = randomInt): number {
  const odd = vniParity(m) === "odd" ? 1 : 0;
  for (let i = 0; i < 1000; i++) {
    // Even VNIs 2..0xfffffe, odd 1..0xffffff (0 is not a valid VNI).
    const vni = odd ? rand((MAX_VNI + 1) / 2) * 2 + 1 : (rand((MAX_VNI + 1) / 2 - 1) + 1) * 2;
    if (!used.has(vni)) return vni;
  }
  return fail(Code.ResourceExhausted, "vxlan: no free VNI found");
}
