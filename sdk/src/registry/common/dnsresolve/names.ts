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
