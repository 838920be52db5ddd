/**
 * Interdomain names: `name@domain` names something registered in another domain (a cluster's registry found
 * through DNS, or a floating registry). Everything before the first `@` is the name there, everything after it the
 * domain (docs/wire-compatibility.md#interdomain-names).
 */

/** True when `name` carries a domain (`svc@cluster-b.example`). */
export function isInterdomain(name: string): boolean {
  return name.includes("@");
}

/** The domain of `name`, or "" when it has none. */
export function domainOf(name: string): string {
  const i = name.indexOf("@");
  return i < 0 ? "" : name.slice(i + 1);
}

/** `name` without its domain. */
export function targetOf(name: string): string {
  const i = name.indexOf("@");
  return i < 0 ? name : name.slice(0, i);
}

/** `name@domain`; `name` unchanged when `domain` is empty. */
export function joinDomain(name: string, domain: string): string {
  return domain === "" || name === "" ? name : `${name}@${domain}`;
}

// A DNS name: labels of letters, digits and inner hyphens, up to 63 characters each, an optional final dot.
const LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const DNS_NAME = new RegExp(`^${LABEL}(\\.${LABEL})*\\.?$`);

/** True when `domain` is a DNS name (what may follow the `@` of an interdomain name). */
export function isDnsName(domain: string): boolean {
  return DNS_NAME.test(domain);
}
