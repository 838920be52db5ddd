/**
 * The Connect protocol beside gRPC: the handlers a program registers on its nsm-ts gRPC server, served again over
 * HTTP/1.1 and HTTP/2 cleartext with `@connectrpc/connect-node`, so REST-style clients reach them as JSON
 * (`curl -H 'content-type: application/json' -d '{…}' http://host:port/<package>.<Service>/<Method>`); Connect
 * also answers its binary protocol and gRPC-Web there. Handlers written against `{ signal }` serve both paths;
 * status errors keep their code (Connect's codes are gRPC's numbers), a non-status throw is Internal and logged.
 */
import { once } from "node:events";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import type { Code as ConnectCode, ConnectError, ConnectRouter } from "@connectrpc/connect";
import type { NsmServer } from "../grpc/server.js";
import { parseUrl } from "../grpc/url.js";
import { lazyRequire } from "../lazy.js";
import { type Logger, silentLogger } from "../log/index.js";
import { Code, fail, toStatusError } from "../status/index.js";

// Connect loads when a program first builds a Connect handler, not at every program's start (see lazy.ts); both
// packages come from their CommonJS builds, so the adapter and our errors share one ConnectError class.
const connect = lazyRequire<typeof import("@connectrpc/connect")>("@connectrpc/connect");
const connectNode = lazyRequire<typeof import("@connectrpc/connect-node")>("@connectrpc/connect-node");

/** A handler as Connect and our gRPC layer both call it: the request and a context with at least `signal`. */
type Fn = (req: never, ctx: never) => unknown;

/** One service to serve over Connect: its descriptor and the same handler object registered on the gRPC server. */
export interface ConnectRoute {
  readonly service: DescService;
  readonly impl: Readonly<Record<string, Fn>>;
}

/** Pairs a service with its handlers (the handlers' context type is checked by the gRPC registration). */
export function connectRoute<S extends DescService>(service: S, impl: object): ConnectRoute {
  return { service, impl: impl as Record<string, Fn> };
}

/**
 * A view of `server` whose `addService` also appends the service to `routes`, so a `registerXxx(server, …)` function
 * is reachable over Connect with one line: `registerXxx(withConnectRoutes(server, routes), …)`. Only for handlers
 * that read nothing of their call context but `signal` (Connect's context has no gRPC peer or metadata).
 */
export function withConnectRoutes(server: NsmServer, routes: ConnectRoute[]): NsmServer {
  return {
    addService(service, impl) {
      server.addService(service, impl);
      routes.push(connectRoute(service, impl));
    },
    listen: (url) => server.listen(url),
    health: server.health,
    close: (o) => server.close(o),
  };
}

/**
 * `route` with its reading methods only (names starting with get, list or watch); every other method fails with
 * PermissionDenied. For services whose writes need an identity that plain HTTP does not carry.
 */
export function readOnlyRoute(route: ConnectRoute, what: string): ConnectRoute {
  const impl: Record<string, Fn> = {};
  for (const [name, fn] of Object.entries(route.impl)) {
    impl[name] = /^(get|list|watch)/.test(name)
      ? fn
      : ((() =>
          fail(
            Code.PermissionDenied,
            `${what}: ${route.service.typeName}/${name}: a Connect (HTTP) call has no identity; write over gRPC with mTLS`,
          )) as Fn);
  }
  return { service: route.service, impl };
}

/** A status error as Connect reports it; a non-status throw becomes Internal and is logged. */
function toConnect(err: unknown, log: Logger, what: string): ConnectError {
  const { ConnectError } = connect();
  if (err instanceof ConnectError) return err;
  const s = toStatusError(err);
  if (s.code === Code.Internal) log.error({ err }, `${what}: internal error in a Connect call`);
  return new ConnectError(s.message, s.code as number as ConnectCode);
}

/** The handlers with their status errors turned into Connect errors (unary and streaming). */
function wrap(impl: Readonly<Record<string, Fn>>, log: Logger, what: string): Record<string, Fn> {
  const out: Record<string, Fn> = {};
  for (const [name, fn] of Object.entries(impl)) {
    out[name] = ((req: never, ctx: never) => {
      let res: unknown;
      try {
        res = fn(req, ctx);
      } catch (err) {
        throw toConnect(err, log, what);
      }
      if (res instanceof Promise) return res.catch((err: unknown) => Promise.reject(toConnect(err, log, what)));
      const it = res as AsyncIterable<unknown>;
      return (async function* () {
        try {
          yield* it;
        } catch (err) {
          throw toConnect(err, log, what);
        }
      })();
    }) as Fn;
  }
  return out;
}

/** Options of `createConnectHandler`. */
export interface ConnectHandlerOptions {
  /** Where internal errors are logged; default silent. */
  log?: Logger;
  /** The program or area named in log lines; default "connect". */
  what?: string;
}

/** A Node HTTP handler serving the Connect protocol (JSON and binary) and gRPC-Web for `routes`. */
export function createConnectHandler(
  routes: readonly ConnectRoute[],
  opts: ConnectHandlerOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const log = opts.log ?? silentLogger;
  const what = opts.what ?? "connect";
  return connectNode().connectNodeAdapter({
    routes: (router: ConnectRouter) => {
      for (const r of routes) router.service(r.service, wrap(r.impl, log, what) as never);
    },
  });
}

/** A running Connect listener. */
export interface ConnectListener {
  /** `http://host:port` it listens on (the port resolved when 0 was asked for). */
  readonly url: string;
  /** Stops accepting, ends open calls (watch streams included) and resolves once the server closed. */
  close(): Promise<void>;
}

/** Serves `handler` over HTTP on `listenOn` (`tcp://host:port`; port 0 picks one; default port `defaultPort`). */
export async function listenConnect(
  listenOn: string,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  defaultPort = 5080,
): Promise<ConnectListener> {
  const p = parseUrl(listenOn);
  const http: Server = createHttpServer(handler);
  http.listen(p.port ?? defaultPort, p.host === "" ? undefined : p.host);
  await Promise.race([once(http, "listening"), once(http, "error").then(([err]) => Promise.reject(err))]);
  const url = `http://${p.host || "0.0.0.0"}:${(http.address() as AddressInfo).port}`;
  return {
    url,
    close: async () => {
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    },
  };
}
