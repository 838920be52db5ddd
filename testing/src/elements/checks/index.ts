/** checks: test helper elements that run assertions inside a chain, before and/or after `next`. */
import type { Connection, NetworkServiceRequest } from "@nsm-ts/api/networkservice";
import type { CallContext } from "@nsm-ts/base/context";
import type { NetworkServiceElement } from "@nsm-ts/sdk/networkservice";

/** Hooks of a checking element; each may throw (an assertion) to fail the call. */
export interface CheckHooks {
  beforeRequest?: (ctx: CallContext, req: NetworkServiceRequest) => void | Promise<void>;
  afterRequest?: (ctx: CallContext, conn: Connection) => void | Promise<void>;
  beforeClose?: (ctx: CallContext, conn: Connection) => void | Promise<void>;
  afterClose?: (ctx: CallContext, conn: Connection) => void | Promise<void>;
}

/** An element running `hooks` around `next`. */
export function newCheck(hooks: CheckHooks, name = "check"): NetworkServiceElement {
  return {
    name,
    async request(ctx, req, next) {
      await hooks.beforeRequest?.(ctx, req);
      const conn = await next.request(ctx, req);
      await hooks.afterRequest?.(ctx, conn);
      return conn;
    },
    async close(ctx, conn, next) {
      await hooks.beforeClose?.(ctx, conn);
      await next.close(ctx, conn);
      await hooks.afterClose?.(ctx, conn);
    },
  };
}

/** Records the order in which named steps run, to compare with an expected list. */
export class StepRecorder {
  readonly steps: string[] = [];
  /** An element recording `<name>:request`, `<name>:request-done`, `<name>:close`. */
  element(name: string): NetworkServiceElement {
    return {
      name,
      request: async (ctx, req, next) => {
        this.steps.push(`${name}:request`);
        const c = await next.request(ctx, req);
        this.steps.push(`${name}:request-done`);
        return c;
      },
      close: async (ctx, conn, next) => {
        this.steps.push(`${name}:close`);
        await next.close(ctx, conn);
      },
    };
  }
}
