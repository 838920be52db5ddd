import { create } from "@bufbuild/protobuf";
import { KernelParam, MechanismType, OWN_NETNS_URL } from "@nsm-ts/api/constants";
import { MechanismSchema, type NetworkServiceRequest, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { newErrorElement } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { chain, handler, type NetworkServiceElement } from "../../core/index.js";
import { kernel, newServer, noop, preferKernel, preferNoop } from "./index.js";

function recorder(tag: string, log: string[]): NetworkServiceElement {
  return {
    name: tag,
    request: (ctx, req, next) => {
      log.push(`${tag}:request`);
      return next.request(ctx, req);
    },
    close: (ctx, conn, next) => {
      log.push(`${tag}:close`);
      return next.close(ctx, conn);
    },
  };
}

const outcome = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

describe("mechanisms", () => {
  const req = (): NetworkServiceRequest => create(NetworkServiceRequestSchema, { connection: { id: "c1", networkService: "ns" } });

  it("dispatches a new request to the first supported preference and sets it as the mechanism", async () => {
    const log: string[] = [];
    const h = handler(newServer({ [MechanismType.KERNEL]: recorder("kernel", log), [MechanismType.NOOP]: recorder("noop", log) }));
    const r = req();
    r.mechanismPreferences.push(create(MechanismSchema, { cls: "LOCAL", type: "MEMIF" }));
    preferNoop(r);
    preferKernel(r);
    const conn = await h.request(CallContext.create(), r);
    expect(conn.mechanism?.type).to.equal(MechanismType.NOOP);
    expect(log).to.deep.equal(["noop:request"]);
    await h.close(CallContext.create(), conn);
    expect(log).to.deep.equal(["noop:request", "noop:close"]);
  });

  it("dispatches a refresh by the connection's mechanism type", async () => {
    const log: string[] = [];
    const h = handler(newServer({ [MechanismType.KERNEL]: recorder("kernel", log), [MechanismType.NOOP]: recorder("noop", log) }));
    const r = req();
    (r.connection as NonNullable<typeof r.connection>).mechanism = kernel.mechanism({ ifName: "nsm-1" });
    preferNoop(r);
    await h.request(CallContext.create(), r);
    expect(log).to.deep.equal(["kernel:request"]);
  });

  it("falls back to the next supported preference when one fails", async () => {
    const log: string[] = [];
    const h = handler(
      newServer({ [MechanismType.KERNEL]: chain(recorder("kernel", log), newErrorElement()), [MechanismType.NOOP]: recorder("noop", log) }),
    );
    const conn = await h.request(CallContext.create(), preferNoop(preferKernel(req())));
    expect(conn.mechanism?.type).to.equal(MechanismType.NOOP);
    expect(log).to.deep.equal(["kernel:request", "noop:request"]);
  });

  it("rejects an unknown mechanism type with InvalidArgument naming the type", async () => {
    const h = handler(newServer({ [MechanismType.NOOP]: recorder("noop", []) }));
    const r = req();
    (r.connection as NonNullable<typeof r.connection>).mechanism = create(MechanismSchema, { cls: "LOCAL", type: "SRIOV-X" });
    const err = await outcome(h.request(CallContext.create(), r));
    expect(isStatusError(err, Code.InvalidArgument), String(err)).to.equal(true);
    expect((err as Error).message).to.include(`unsupported mechanism type "SRIOV-X"`);

    const err2 = await outcome(h.request(CallContext.create(), preferKernel(req())));
    expect(isStatusError(err2, Code.InvalidArgument)).to.equal(true);
    expect((err2 as Error).message).to.include("no supported mechanism type in mechanism_preferences (KERNEL); supported: NOOP");
  });

  it("kernel client adds a KERNEL preference in its own netns with a stable generated interface name", async () => {
    const seen: NetworkServiceRequest[] = [];
    const h = handler(
      chain(kernel.newClient(), {
        request: async (ctx, r, next) => {
          seen.push(r);
          return next.request(ctx, r);
        },
        close: (ctx, c, next) => next.close(ctx, c),
      }),
    );
    const ctx = CallContext.create();
    await h.request(ctx, create(NetworkServiceRequestSchema, { connection: { id: "c1", networkService: "secure-intranet-connectivity" } }));
    await h.request(ctx, create(NetworkServiceRequestSchema, { connection: { id: "c1", networkService: "secure-intranet-connectivity" } }));
    const m0 = seen[0]?.mechanismPreferences[0];
    expect(m0?.type).to.equal(MechanismType.KERNEL);
    expect(m0?.parameters[KernelParam.NETNS_URL]).to.equal(OWN_NETNS_URL);
    expect(kernel.interfaceNameOf(m0)).to.match(/^secure-int-[0-9A-Za-z]{4}$/);
    expect(kernel.interfaceNameOf(seen[1]?.mechanismPreferences[0])).to.equal(kernel.interfaceNameOf(m0));

    const fixed = handler(chain(kernel.newClient({ interfaceName: "nsm-interface-long-name" })));
    const rq = req();
    await fixed.request(CallContext.create(), rq);
    expect(kernel.interfaceNameOf(rq.mechanismPreferences[0])).to.equal("nsm-interface-l");
  });

  it("noop client offers NOOP once", async () => {
    const h = handler(chain(noop.newClient(), noop.newClient()));
    const r = req();
    await h.request(CallContext.create(), r);
    expect(r.mechanismPreferences.map((m) => [m.type, m.cls])).to.deep.equal([[MechanismType.NOOP, ""]]);
  });
});
