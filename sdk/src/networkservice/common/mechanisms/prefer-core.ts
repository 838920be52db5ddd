/** The one primitive the preference helpers and mechanism clients share (kept apart to avoid an import cycle). */
import { clone } from "@bufbuild/protobuf";
import { type Mechanism, MechanismSchema, type NetworkServiceRequest } from "@nsm-ts/api/networkservice";

/** Appends `m` to `req.mechanism_preferences` unless a preference of the same type is already there; returns `req`. */
export function prefer(req: NetworkServiceRequest, m: Mechanism): NetworkServiceRequest {
  if (!req.mechanismPreferences.some((p) => p.type === m.type)) req.mechanismPreferences.push(clone(MechanismSchema, m));
  return req;
}
