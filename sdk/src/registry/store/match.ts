/**
 * Find's template matching, exactly as docs/wire-compatibility.md#find-and-watch states it (upstream's memory
 * registry semantics): a query is a template whose empty fields match anything.
 */
import { equals } from "@bufbuild/protobuf";
import { MatchSchema, type NetworkService, type NetworkServiceEndpoint } from "@nsm-ts/api/registry";

/**
 * True when `candidate` matches the NS `template`: name empty or equal, payload empty or equal, and `matches`
 * empty or deep-equal (same length, pairwise equal in order).
 */
export function matchNetworkService(template: NetworkService, candidate: NetworkService): boolean {
  if (template.name !== "" && template.name !== candidate.name) return false;
  if (template.payload !== "" && template.payload !== candidate.payload) return false;
  if (template.matches.length > 0) {
    if (template.matches.length !== candidate.matches.length) return false;
    for (let i = 0; i < template.matches.length; i++) {
      const a = template.matches[i];
      const b = candidate.matches[i];
      if (a === undefined || b === undefined || !equals(MatchSchema, a, b)) return false;
    }
  }
  return true;
}

/**
 * True when `candidate` matches the NSE `template`: name empty or equal; every service of the template's
 * `network_service_labels` present in the candidate with every one of its k=v labels; expiration unset or the same
 * seconds; every template service name in the candidate's list; url empty or a substring of the candidate's url.
 */
export function matchNetworkServiceEndpoint(template: NetworkServiceEndpoint, candidate: NetworkServiceEndpoint): boolean {
  if (template.name !== "" && template.name !== candidate.name) return false;
  for (const [svc, want] of Object.entries(template.networkServiceLabels)) {
    const have = candidate.networkServiceLabels[svc];
    if (have === undefined) return false;
    for (const [k, v] of Object.entries(want.labels)) {
      if (have.labels[k] !== v) return false;
    }
  }
  if (template.expirationTime !== undefined) {
    if (template.expirationTime.seconds !== (candidate.expirationTime?.seconds ?? 0n)) return false;
  }
  if (template.networkServiceNames.length > 0) {
    const names = new Set(candidate.networkServiceNames);
    for (const n of template.networkServiceNames) if (!names.has(n)) return false;
  }
  if (template.url !== "" && !candidate.url.includes(template.url)) return false;
  return true;
}
