/**
 * Endpoint selection by a network service's matches (upstream `matchutils`): source selectors are checked
 * against the request's connection labels, destination selectors against each endpoint's labels for the
 * service, and selector values may be Go-template references to connection labels (`{{.nodeName}}`).
 */

import type { NetworkService, NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { timestampMs } from "@nsm-ts/base/limits";

/** What Go's text/template prints for a missing map key; kept so selectors behave as upstream's do. */
const NO_VALUE = "<no value>";
const ACTION = /\{\{-?\s*([^}]*?)\s*-?\}\}/g;
const FIELD = /^\.([A-Za-z_][A-Za-z0-9_]*)$/;

/**
 * Evaluates the template subset NSM selectors use: every `{{.key}}` is replaced by `labels[key]`
 * (`<no value>` when absent, as Go prints it). A value with any other template action is returned
 * unchanged, as upstream returns the raw string when its template fails to parse or execute.
 */
export function processLabel(value: string, labels: Readonly<Record<string, string>>): string {
  if (!value.includes("{{")) return value;
  let supported = true;
  const out = value.replace(ACTION, (_all, expr: string) => {
    const m = FIELD.exec(expr);
    if (!m || m[1] === undefined) {
      supported = false;
      return "";
    }
    return Object.hasOwn(labels, m[1]) ? (labels[m[1]] as string) : NO_VALUE;
  });
  // An unclosed "{{" is a parse error in Go: the raw value is used.
  if (!supported || out.includes("{{")) return value;
  return out;
}

/**
 * True when every `selector` entry (its value evaluated against `connLabels`) equals the label of that key in
 * `labels` (a missing label counts as ""); like upstream, `labels` with fewer entries than the selector never match.
 */
export function isSubset(
  labels: Readonly<Record<string, string>>,
  selector: Readonly<Record<string, string>>,
  connLabels: Readonly<Record<string, string>>,
): boolean {
  const keys = Object.keys(selector);
  if (Object.keys(labels).length < keys.length) return false;
  for (const k of keys) {
    if ((labels[k] ?? "") !== processLabel(selector[k] as string, connLabels)) return false;
  }
  return true;
}

/**
 * The endpoints `ns` offers a client with `connLabels`: the first Match whose source selector fits gives the
 * endpoints matching any of its routes' destination selectors (unless that is empty and the match falls
 * through); with no fitting Match, every endpoint.
 */
export function matchEndpoints(
  connLabels: Readonly<Record<string, string>>,
  ns: NetworkService,
  nses: readonly NetworkServiceEndpoint[],
): NetworkServiceEndpoint[] {
  for (const match of ns.matches) {
    if (!isSubset(connLabels, match.sourceSelector, connLabels)) continue;
    const out: NetworkServiceEndpoint[] = [];
    for (const route of match.routes) {
      for (const nse of nses) {
        const labels = nse.networkServiceLabels[ns.name]?.labels ?? {};
        if (isSubset(labels, route.destinationSelector, connLabels) && !out.includes(nse)) out.push(nse);
      }
    }
    if (match.fallthrough && out.length === 0) continue;
    return out;
  }
  return [...nses];
}

/** True when the endpoint's registration has an expiration time at or before `nowMs`. */
export function isExpired(nse: NetworkServiceEndpoint, nowMs: number): boolean {
  const exp = nse.expirationTime;
  if (!exp || (exp.seconds === 0n && exp.nanos === 0)) return false;
  try {
    return timestampMs("discover", "expiration_time", exp) <= nowMs;
  } catch {
    return true; // an entry with an invalid expiration is not one to hand out
  }
}
