/** The typed layer's receive size limit: oversized messages are refused before the handler runs. */

import { grpcHarness } from "@nsm-ts/testing/grpc";
import { expect } from "chai";
import { DEFAULT_MAX_RECV_MESSAGE_BYTES } from "../limits/index.js";
import { Code, isStatusError } from "../status/index.js";

describe("grpc typed layer", () => {
  const { start, closeAll } = grpcHarness();
  afterEach(() => closeAll());

  describe("receive size", () => {
    it("maxRecvMessageBytes: a larger message is ResourceExhausted before the handler, a smaller one is served, the server keeps serving", async () => {
      let handled = 0;
      const { ns } = await start(
        {
          request: async (req) => {
            handled++;
            return req.connection ?? {};
          },
        },
        { maxRecvMessageBytes: 64 * 1024 },
      );
      const err = await ns.request({ connection: { id: "x".repeat(100 * 1024) } }, { timeoutMs: 5000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isStatusError(err, Code.ResourceExhausted), String(err)).to.equal(true);
      expect(handled).to.equal(0);
      expect((await ns.request({ connection: { id: "x".repeat(10 * 1024) } }, { timeoutMs: 5000 })).id).to.have.length(10 * 1024);
      expect(handled).to.equal(1);
    });

    it("the default is DEFAULT_MAX_RECV_MESSAGE_BYTES (4 MiB)", async () => {
      const { ns } = await start({});
      const err = await ns.request({ connection: { id: "x".repeat(DEFAULT_MAX_RECV_MESSAGE_BYTES + 1) } }, { timeoutMs: 5000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isStatusError(err, Code.ResourceExhausted), String(err)).to.equal(true);
    });
  });
});
