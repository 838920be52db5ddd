/**
 * mechanisms: hands a Request to the element that implements its mechanism type. A refresh (mechanism
 * already set) goes to that type's element; a new request goes to the first preference this server
 * supports, falling back to the next supported preference when that element fails
 * (docs/wire-compatibility.md#mechanism-selection).
 * Reads: `connection.mechanism`, `mechanism_preferences`. Writes: `connection.mechanism` (the chosen preference).
 * Each per-type element continues the chain with `next` as usual.
 */
import { clone } from "@bufbuild/protobuf";
import { type Mechanism, MechanismSchema } from "@nsm-ts/api/networkservice";
import { Code, fail, StatusError, toStatusError } from "@nsm-ts/base/status";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";

/** Per-type elements, keyed by `Mechanism.type` (`KERNEL`, `NOOP`, …). */
export type MechanismElements = Readonly<Record<string, NetworkServiceElement>>;

function describe(ms: readonly Mechanism[]): string {
  return ms.length === 0 ? "none" : ms.map((m) => m.type || '""').join(", ");
}

/** Creates the dispatching server element. */
export function newServer(elements: MechanismElements): NetworkServiceElement {
  const supported = Object.keys(elements).join(", ") || "none";
  const elementOf = (type: string): NetworkServiceElement | undefined => (Object.hasOwn(elements, type) ? elements[type] : undefined);
  return {
    name: "mechanisms",
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      if (conn.mechanism) {
        const el =
          elementOf(conn.mechanism.type) ??
          fail(
            Code.InvalidArgument,
            `mechanisms: unsupported mechanism type "${conn.mechanism.type}" (connection.mechanism.type); supported: ${supported}`,
          );
        return el.request(ctx, req, next);
      }
      const errors: StatusError[] = [];
      for (const pref of req.mechanismPreferences) {
        const el = elementOf(pref.type);
        if (!el) continue;
        conn.mechanism = clone(MechanismSchema, pref);
        try {
          return await el.request(ctx, req, next);
        } catch (err) {
          conn.mechanism = undefined;
          errors.push(toStatusError(err, "mechanisms"));
          ctx.log.info({ connId: conn.id, mechanism: pref.type, err }, "mechanisms: preference failed, trying the next one");
        }
      }
      if (errors.length === 1) throw errors[0];
      if (errors.length > 1) {
        const last = errors[errors.length - 1] as StatusError;
        throw new StatusError(last.code, `mechanisms: every supported preference failed: ${errors.map((e) => e.message).join("; ")}`, {
          cause: new AggregateError(errors),
        });
      }
      return fail(
        Code.InvalidArgument,
        `mechanisms: no supported mechanism type in mechanism_preferences (${describe(req.mechanismPreferences)}); supported: ${supported}`,
      );
    },
    async close(ctx, conn, next) {
      if (!conn.mechanism) return next.close(ctx, conn);
      const el = elementOf(conn.mechanism.type);
      if (el) return el.close(ctx, conn, next);
      // Close is best effort: the rest of the chain still frees what it holds.
      await next.close(ctx, conn);
      fail(
        Code.InvalidArgument,
        `mechanisms: unsupported mechanism type "${conn.mechanism.type}" (connection.mechanism.type); supported: ${supported}`,
      );
    },
  };
}
