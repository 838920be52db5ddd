/** Helpers that add mechanism preferences to a request (what a client offers the next hop, in order). */
import type { Mechanism, NetworkServiceRequest } from "@nsm-ts/api/networkservice";
import { type KernelMechanismOptions, mechanism as kernelMechanism } from "./kernel/mechanism.js";
import { mechanism as noopMechanism } from "./noop/mechanism.js";
import { prefer } from "./prefer-core.js";

/** Appends a preference unless one of its type is there (re-exported primitive). */
export { prefer };

/** Offers NOOP (no data plane: control-plane-only meshes and tests). */
export function preferNoop(req: NetworkServiceRequest): NetworkServiceRequest {
  return prefer(req, noopMechanism());
}

/** Offers KERNEL with the caller's own netns (and the interface name, when given). */
export function preferKernel(req: NetworkServiceRequest, opts: KernelMechanismOptions = {}): NetworkServiceRequest {
  return prefer(req, kernelMechanism(opts));
}

/** True when `m` is of type `type`. */
export function isType(m: Mechanism | undefined, type: string): boolean {
  return m?.type === type;
}
