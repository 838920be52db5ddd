/**
 * The fixture of the typed gRPC layer's tests: a NetworkService server (with MonitorConnection and IPAM when
 * given) on a loopback port, a channel and typed clients to it, closed after each test; and small helpers to
 * wait for events instead of sleeping and to expect a status code.
 */
import { Health } from "@nsm-ts/api/health";
import { IPAM } from "@nsm-ts/api/ipam";
import { MonitorConnection, NetworkService } from "@nsm-ts/api/networkservice";
import {
  type Channel,
  type Client,
  type ClientInterceptor,
  createClient,
  createServer,
  dial,
  type NsmServer,
  type ServerOptions,
  type ServiceImpl,
} from "@nsm-ts/base/grpc";
import { type Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";

/** A promise with its resolve function, to wait for events instead of sleeping. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Resolves with the signal's reason once it aborts (at once if it has). */
export const aborted = (signal: AbortSignal): Promise<unknown> =>
  signal.aborted
    ? Promise.resolve(signal.reason)
    : new Promise((r) => signal.addEventListener("abort", () => r(signal.reason), { once: true }));

/** Awaits `p`, expects it to fail with a StatusError of `code`, and returns that error. */
export async function expectStatus(p: Promise<unknown>, code: Code): Promise<StatusError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(StatusError);
    expect((err as StatusError).code, (err as Error).message).to.equal(code);
    return err as StatusError;
  }
  throw new Error(`expected a StatusError with code ${code}, got success`);
}

/** Options of `GrpcHarness.start`: the server's, the extra services, and the client channel's interceptors. */
export interface GrpcStartOptions extends ServerOptions {
  monitor?: ServiceImpl<typeof MonitorConnection>;
  ipam?: ServiceImpl<typeof IPAM>;
  clientInterceptors?: ClientInterceptor[];
}

/** A started test server with one channel to it and a typed client per service. */
export interface GrpcStarted {
  server: NsmServer;
  url: string;
  channel: Channel;
  ns: Client<typeof NetworkService>;
  monitor: Client<typeof MonitorConnection>;
  ipam: Client<typeof IPAM>;
  health: Client<typeof Health>;
}

/** Test servers and channels of one suite; call `closeAll` in `afterEach`. */
export interface GrpcHarness {
  /**
   * Serves NetworkService (Request echoes the connection, Close answers empty, unless `impl` says otherwise) and
   * the services in `opts` on `tcp://127.0.0.1:0`, and dials it.
   */
  start(impl: Partial<ServiceImpl<typeof NetworkService>>, opts?: GrpcStartOptions): Promise<GrpcStarted>;
  /** Servers closed by `closeAll`; a test that creates its own pushes it here. */
  readonly servers: NsmServer[];
  /** Channels closed by `closeAll`; a test that dials its own pushes it here. */
  readonly channels: Channel[];
  /** Closes every channel, then every server (500 ms grace). */
  closeAll(): Promise<void>;
}

/** A new harness with no server yet. */
export function grpcHarness(): GrpcHarness {
  const servers: NsmServer[] = [];
  const channels: Channel[] = [];
  return {
    servers,
    channels,
    async closeAll() {
      for (const c of channels.splice(0)) c.close();
      await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 500 })));
    },
    async start(impl, opts = {}) {
      const server = createServer(opts);
      servers.push(server);
      server.addService(NetworkService, {
        request: async (req) => req.connection ?? {},
        close: async () => ({}),
        ...impl,
      });
      if (opts.monitor) server.addService(MonitorConnection, opts.monitor);
      if (opts.ipam) server.addService(IPAM, opts.ipam);
      const url = await server.listen("tcp://127.0.0.1:0");
      const channel = dial(url, { interceptors: opts.clientInterceptors ?? [] });
      channels.push(channel);
      return {
        server,
        url,
        channel,
        ns: createClient(NetworkService, channel),
        monitor: createClient(MonitorConnection, channel),
        ipam: createClient(IPAM, channel),
        health: createClient(Health, channel),
      };
    },
  };
}
