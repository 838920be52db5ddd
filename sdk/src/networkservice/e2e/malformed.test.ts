/**
 * Acceptance (issue 4): malformed Requests sent over gRPC to the standard endpoint chain get the right status
 * code and a message naming the field, and the server goes on serving good requests after each of them.
 */

import type { MessageInitShape } from "@bufbuild/protobuf";
import { MechanismClass, MechanismType } from "@nsm-ts/api/constants";
import { type ConnectionSchema, NetworkService, type NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { type Channel, type Client, createClient, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { devIdentity } from "@nsm-ts/base/identity";
import { Code, codeName, StatusError } from "@nsm-ts/base/status";
import { createTokenGenerator, type TokenGenerator, tokenMetadata } from "@nsm-ts/base/token";
import { type Transport, tcpTransport, unixTransport } from "@nsm-ts/testing/e2e";
import { type Counter, newCounter } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { type Endpoint, endpoint } from "../chains/index.js";
import * as mechanisms from "../common/mechanisms/index.js";
import { passThrough } from "../core/chain.js";

type RequestInit = MessageInitShape<typeof NetworkServiceRequestSchema>;

for (const makeTransport of [tcpTransport, unixTransport]) {
  describe(`malformed Requests over gRPC (${makeTransport().name})`, () => {
    let transport: Transport;
    let clock: MockClock;
    let server: NsmServer;
    let ep: Endpoint;
    let counter: Counter;
    let channel: Channel;
    let nsClient: Client<typeof NetworkService>;
    let clientTokens: TokenGenerator;
    let good = 0;

    beforeEach(async () => {
      transport = makeTransport();
      clock = new MockClock();
      counter = newCounter("nse-count");
      const [nsc, nse] = await Promise.all([devIdentity("nsc"), devIdentity("nse")]);
      clientTokens = createTokenGenerator(nsc, { maxTokenLifetimeMs: 600_000, clock });
      ep = endpoint({
        name: "nse",
        tokenGenerator: createTokenGenerator(nse, { maxTokenLifetimeMs: 600_000, clock }),
        insecure: true,
        clock,
        additional: [mechanisms.newServer({ KERNEL: passThrough }), counter],
      });
      server = createServer();
      ep.serve(server);
      channel = dial(await server.listen(transport.listenUrl()));
      nsClient = createClient(NetworkService, channel);
    });

    afterEach(async () => {
      channel.close();
      await server.close({ graceMs: 100 });
      transport.cleanup();
      expect(clock.pending(), "timers left on the mock clock").to.equal(0);
    });

    const kernel = { cls: MechanismClass.LOCAL, type: MechanismType.KERNEL };
    type ConnectionInit = MessageInitShape<typeof ConnectionSchema>;
    const wellFormed = (id: string, change: Omit<Exclude<ConnectionInit, { $typeName: string }>, "$typeName"> = {}): RequestInit => ({
      connection: { id, networkService: "ns-1", path: { index: 0, pathSegments: [{ name: "nsc", id }] }, ...change } as ConnectionInit,
      mechanismPreferences: [kernel],
    });

    async function withToken(): Promise<{ metadata: Record<string, string> }> {
      return { metadata: tokenMetadata(await clientTokens()) };
    }

    /** The Request fails with `code` and a message containing every `fragments` entry. */
    async function expectStatus(req: RequestInit, code: Code, fragments: string[], token = true): Promise<void> {
      const err = await nsClient.request(req, token ? await withToken() : {}).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, "the request should fail").to.be.instanceOf(StatusError);
      const status = err as StatusError;
      expect(codeName(status.code), status.message).to.equal(codeName(code));
      for (const f of fragments) expect(status.message).to.include(f);
    }

    /** A good Request still succeeds (the server keeps serving); it is closed again right away. */
    async function expectServing(): Promise<void> {
      const before = counter.requests;
      const conn = await nsClient.request(wellFormed(`good-${++good}`), await withToken());
      expect(conn.path?.pathSegments.map((s) => s.name)).to.deep.equal(["nsc", "nse"]);
      expect(counter.requests).to.equal(before + 1);
      await nsClient.close(conn, await withToken());
    }

    it("missing connection: InvalidArgument naming request.connection", async () => {
      await expectStatus({ mechanismPreferences: [kernel] }, Code.InvalidArgument, ["request.connection"]);
      await expectServing();
    });

    it("bad path index: InvalidArgument naming path.index", async () => {
      const req = wellFormed("bad-index", { path: { index: 3, pathSegments: [{ name: "nsc", id: "bad-index" }] } });
      await expectStatus(req, Code.InvalidArgument, ["path.index 3", "path.path_segments"]);
      await expectServing();
    });

    it("connection id that is not the current segment's id: InvalidArgument naming both", async () => {
      const req = wellFormed("segment-id", { id: "other-id" });
      await expectStatus(req, Code.InvalidArgument, ["connection.id", "path.path_segments[0].id"]);
      await expectServing();
    });

    it("unknown mechanism: InvalidArgument naming mechanism_preferences or connection.mechanism.type", async () => {
      const req = wellFormed("unknown-mech");
      req.mechanismPreferences = [{ cls: MechanismClass.LOCAL, type: MechanismType.MEMIF }];
      await expectStatus(req, Code.InvalidArgument, ["mechanism_preferences", "MEMIF", "supported: KERNEL"]);
      await expectServing();
      const refresh = wellFormed("unknown-mech-2", { mechanism: { cls: MechanismClass.LOCAL, type: MechanismType.VFIO } });
      await expectStatus(refresh, Code.InvalidArgument, ["connection.mechanism.type", "VFIO"]);
      await expectServing();
    });

    it("token missing: InvalidArgument naming the expiry field and nsm-client-token", async () => {
      await expectStatus(wellFormed("no-token"), Code.InvalidArgument, ["path.path_segments[0].expires", "nsm-client-token"], false);
      await expectServing();
    });

    it("token present but not a JWT: PermissionDenied naming the policy", async () => {
      const req = wellFormed("junk-token");
      const err = await nsClient
        .request(req, { metadata: { "nsm-client-token": "not-a-jwt", "nsm-client-token-expires": "2026-01-01T00:10:00Z" } })
        .then(
          () => undefined,
          (e: unknown) => e as StatusError,
        );
      expect(err?.code).to.equal(Code.PermissionDenied);
      expect(err?.message).to.include("tokens_valid");
      await expectServing();
    });

    it("failed requests leave no state at the endpoint", async () => {
      await expectStatus({ mechanismPreferences: [kernel] }, Code.InvalidArgument, ["request.connection"]);
      await expectStatus(wellFormed("no-token"), Code.InvalidArgument, ["nsm-client-token"], false);
      expect(ep.monitor.connections()).to.have.length(0);
      expect(counter.requests).to.equal(0);
    });
  });
}
