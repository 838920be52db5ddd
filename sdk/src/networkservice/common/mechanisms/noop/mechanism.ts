/** The NOOP mechanism: no data plane at all, for control-plane-only meshes and tests. */
import { create } from "@bufbuild/protobuf";
import { MechanismType } from "@nsm-ts/api/constants";
import { type Mechanism, MechanismSchema } from "@nsm-ts/api/networkservice";
import type { NetworkServiceElement } from "../../../core/types.js";
import { prefer } from "../prefer-core.js";

/** A NOOP mechanism; like upstream's helper it carries no class and is treated as local. */
export function mechanism(): Mechanism {
  return create(MechanismSchema, { type: MechanismType.NOOP, cls: "" });
}

/** Client element offering NOOP in `mechanism_preferences` (added once, at the end). */
export function newClient(): NetworkServiceElement {
  return {
    name: "noop-mechanism-client",
    request: (ctx, req, next) => next.request(ctx, prefer(req, mechanism())),
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}
