/**
 * Policies as TypeScript functions — our replacement for upstream's Rego set. A policy answers one
 * question about an input; `enforce` runs a list and turns the first "no" into `PermissionDenied`.
 */
import { Code, StatusError } from "../status/index.js";

/** One authorization rule over inputs of type `I`. Pluggable: any object with a name and a check. */
export interface Policy<I> {
  /** Short name, used in the denial message (upstream's Rego file names, e.g. `tokens_expired`). */
  readonly name: string;
  /** Resolves to undefined when allowed, or to the reason for denying. */
  check(input: I): Promise<string | undefined>;
}

/**
 * Runs `policies` in order and throws `PermissionDenied` (`<element>: policy <name> denied: <reason>`) at
 * the first one that denies. A policy that throws denies too: failing closed is the safe default.
 */
export async function enforce<I>(policies: readonly Policy<I>[], input: I, element = "authorize"): Promise<void> {
  for (const p of policies) {
    let reason: string | undefined;
    try {
      reason = await p.check(input);
    } catch (err) {
      reason = `check failed: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (reason !== undefined) {
      throw new StatusError(Code.PermissionDenied, `${element}: policy ${p.name} denied: ${reason}`);
    }
  }
}
