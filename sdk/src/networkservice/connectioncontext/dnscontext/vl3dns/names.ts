/**
 * Member-name templates: `{{name}}` (the client's name, its first path segment), `{{networkService}}` and
 * `{{labels.KEY}}` (a connection label). The default `{{name}}.{{networkService}}.` gives
 * `nsc-1.my-vl3-service.`. Upstream writes these as Go templates over the connection; ours is this small fixed
 * set, checked when the element is built, plus upstream's spellings of the same (`{{ .NetworkService }}`,
 * `{{ target .NetworkService }}`, `{{ index .Labels "KEY" }}`, `{{ .Labels.KEY }}`), so upstream's
 * NSM_DNS_TEMPLATES values work unchanged.
 */
import type { Connection } from "@nsm-ts/api/networkservice";
import { Code, fail } from "@nsm-ts/base/status";

/** The default member-name template. */
export const DEFAULT_NAME_TEMPLATE = "{{name}}.{{networkService}}.";

/** A compiled template: the DNS name (lower case, one trailing dot) of a connection's client. */
export type NameTemplate = (conn: Connection) => string;

const PLACEHOLDER = /\{\{\s*([^}]*?)\s*\}\}/g;
const VALID_NAME = /^([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+$/;

/** Our key for a placeholder (upstream's spellings mapped), or undefined when unknown. */
function keyOf(placeholder: string): string | undefined {
  const p = placeholder.trim();
  if (p === "name" || p === "networkService" || /^labels\.[^\s."]+$/.test(p)) return p;
  if (p === ".NetworkService" || p === "target .NetworkService") return "networkService";
  const label = /^index \.Labels "([^"\s]+)"$/.exec(p)?.[1] ?? /^\.Labels\.([^\s."]+)$/.exec(p)?.[1];
  return label === undefined ? undefined : `labels.${label}`;
}

/** Compiles `template`; throws a TypeError naming an unknown placeholder. */
export function compileNameTemplate(template: string): NameTemplate {
  for (const m of template.matchAll(PLACEHOLDER)) {
    const key = m[1] ?? "";
    if (keyOf(key) === undefined) {
      throw new TypeError(
        `unknown placeholder {{${key}}} in name template ${JSON.stringify(template)}; use {{name}}, {{networkService}} or {{labels.KEY}}`,
      );
    }
  }
  return (conn) => {
    const filled = template.replace(PLACEHOLDER, (_all, raw: string) => {
      const key = keyOf(raw) ?? "";
      if (key === "name")
        return conn.path?.pathSegments[0]?.name || fail(Code.InvalidArgument, "vl3dns: connection.path.path_segments[0].name is empty");
      if (key === "networkService") {
        // `target`: the service without its @domain (interdomain), as upstream's template function.
        const service = conn.networkService.split("@")[0] ?? "";
        return service || fail(Code.InvalidArgument, "vl3dns: connection.network_service is empty");
      }
      const label = key.slice("labels.".length);
      return conn.labels[label] ?? fail(Code.InvalidArgument, `vl3dns: connection.labels.${label} is missing (name template ${template})`);
    });
    const name = `${filled
      .toLowerCase()
      .replace(/\.{2,}/g, ".")
      .replace(/^\./, "")
      .replace(/\.?$/, "")}.`;
    if (!VALID_NAME.test(name) || name.length > 254) {
      fail(Code.InvalidArgument, `vl3dns: ${JSON.stringify(name)} (from template ${template}) is not a valid DNS name`);
    }
    return name;
  };
}

/** The parent domains of a name, nearest first: `a.b.c.` → `b.c`, `c` (the search domains of its client). */
export function parentDomains(name: string): string[] {
  const labels = name.replace(/\.$/, "").split(".");
  return labels.slice(1).map((_, i) => labels.slice(i + 1).join("."));
}
