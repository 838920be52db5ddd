import type { Connection, MonitorScopeSelector, PathSegment } from "@nsm-ts/api/networkservice";

function segmentMatches(want: PathSegment, have: PathSegment | undefined): boolean {
  if (!have) return false;
  return (!want.name || want.name === have.name) && (!want.id || want.id === have.id) && (!want.token || want.token === have.token);
}

/**
 * Upstream's selector rule (docs/wire-compatibility.md#monitor-selector): an empty selector matches every
 * connection; otherwise the connection's network service must be listed (an empty list allows any) and the
 * selector's segments must match a contiguous sub-list of the connection's path segments, comparing name, id and
 * token with an empty selector field as a wildcard.
 */
export function matchesSelector(conn: Connection, selector: MonitorScopeSelector): boolean {
  const want = selector.pathSegments;
  if (want.length === 0 && selector.networkServices.length === 0) return true;
  if (selector.networkServices.length > 0 && !selector.networkServices.includes(conn.networkService)) return false;
  if (want.length === 0) return true;
  const have = conn.path?.pathSegments ?? [];
  for (let start = 0; start + want.length <= have.length; start++) {
    if (want.every((w, j) => segmentMatches(w, have[start + j]))) return true;
  }
  return false;
}
