/** The typed layer's error statuses: codes, messages and trailers, and a server that keeps serving. */
import { Writable } from "node:stream";
import * as grpc from "@grpc/grpc-js";
import { expectStatus, grpcHarness } from "@nsm-ts/testing/grpc";
import { expect } from "chai";
import { createLogger } from "../log/index.js";
import { Code, StatusError } from "../status/index.js";
import { fromServiceError } from "./errors.js";
import { parseUrl } from "./index.js";

describe("grpc typed layer", () => {
  const { start, closeAll } = grpcHarness();
  afterEach(() => closeAll());

  describe("errors", () => {
    it("reports a call lost with its HTTP/2 session (GOAWAY with an error) as Unavailable; other Internal stays", () => {
      const lost = fromServiceError({
        code: grpc.status.INTERNAL,
        details: "Received RST_STREAM with code 2 triggered by internal client error: Session closed with error code 2",
        metadata: new grpc.Metadata(),
      });
      expect(lost.code).to.equal(Code.Unavailable);
      expect(lost.message).to.match(/Session closed with error code 2/);
      const internal = fromServiceError({ code: grpc.status.INTERNAL, details: "handler failed", metadata: new grpc.Metadata() });
      expect(internal.code).to.equal(Code.Internal);
    });

    it("sends a thrown StatusError's code, message and trailers; other errors become Internal and are logged", async () => {
      const lines: string[] = [];
      const destination = new Writable({
        write(chunk: Buffer, _enc, cb) {
          lines.push(chunk.toString());
          cb();
        },
      });
      let calls = 0;
      const { ns } = await start(
        {
          async request(req) {
            calls++;
            if (calls === 1)
              throw new StatusError(Code.NotFound, "discover: no endpoint for my-service", { metadata: { "x-why": "none" } });
            if (calls === 2) throw new TypeError("boom");
            return req.connection ?? {};
          },
        },
        { log: createLogger({ destination, level: "error" }) },
      );
      const e1 = await expectStatus(ns.request({}), Code.NotFound);
      expect(e1.message).to.equal("discover: no endpoint for my-service");
      expect(e1.metadata).to.include({ "x-why": "none" });
      const e2 = await expectStatus(ns.request({}), Code.Internal);
      expect(e2.message).to.contain("boom");
      expect(lines.join("")).to.contain("boom");
      expect((await ns.request({ connection: { id: "ok" } })).id).to.equal("ok");
    });

    it("delivers streamed messages before the error status that ends the stream", async () => {
      const { monitor } = await start(
        {},
        {
          monitor: {
            async *monitorConnections() {
              yield { type: 1 };
              yield { type: 2 };
              throw new StatusError(Code.ResourceExhausted, "monitor: subscriber too slow");
            },
          },
        },
      );
      const got: number[] = [];
      const run = (async () => {
        for await (const ev of monitor.monitorConnections({})) got.push(ev.type);
      })();
      const err = await expectStatus(run, Code.ResourceExhausted);
      expect(err.message).to.equal("monitor: subscriber too slow");
      expect(got).to.deep.equal([1, 2]);
    });

    it("answers a malformed request body with InvalidArgument naming the message type, and keeps serving", async () => {
      const { url, ns } = await start({}, { monitor: { async *monitorConnections() {} } });
      const raw = new grpc.Client(parseUrl(url).grpcTarget, grpc.credentials.createInsecure());
      const garbage = Buffer.from([0x0a, 0xff, 0xff, 0x01]); // field 1, length far past the end
      const err = await new Promise<grpc.ServiceError | null>((resolve) =>
        raw.makeUnaryRequest(
          "/networkservice.NetworkService/Request",
          (b: Buffer) => b,
          (b: Buffer) => b,
          garbage,
          (e) => resolve(e),
        ),
      );
      // A server-streaming call with the same body: the stream ends with the same status.
      const streamErr = await new Promise<grpc.ServiceError>((resolve) => {
        const call = raw.makeServerStreamRequest(
          "/connection.MonitorConnection/MonitorConnections",
          (b: Buffer) => b,
          (b: Buffer) => b,
          garbage,
        );
        call.on("data", () => undefined);
        call.on("error", resolve);
      });
      raw.close();
      expect(err?.code, String(err)).to.equal(Code.InvalidArgument);
      expect(err?.details).to.match(/not a valid networkservice\.NetworkServiceRequest/);
      expect(streamErr.code, String(streamErr)).to.equal(Code.InvalidArgument);
      expect(streamErr.details).to.match(/not a valid connection\.MonitorScopeSelector/);
      expect((await ns.request({ connection: { id: "still-up" } })).id).to.equal("still-up");
    });
  });
});
