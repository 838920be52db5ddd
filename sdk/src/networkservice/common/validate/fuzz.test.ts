/**
 * Property-based: validation of random Connections and NSEs with random sizes and timestamps either passes or
 * fails with `InvalidArgument` (for a well-formed interdomain name `FailedPrecondition`: no proxy registry), never
 * anything else (no exception, no `Internal`), and passes exactly when every field is within the limits.
 */
import { create } from "@bufbuild/protobuf";
import { ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { MAX_LABELS, MAX_NAME_BYTES, MAX_PATH_SEGMENTS, TIMESTAMP_MAX_SECONDS, TIMESTAMP_MIN_SECONDS } from "@nsm-ts/base/limits";
import { Code, StatusError } from "@nsm-ts/base/status";
import { createTestTokenGenerator } from "@nsm-ts/testing/token";
import { expect } from "chai";
import fc from "fast-check";
import { createRegistryServer } from "../../../registry/chains/server.js";
import { createMemoryStore } from "../../../registry/store/index.js";
import { validateRequest } from "./index.js";

const seconds = fc.oneof(
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.bigInt({ min: TIMESTAMP_MIN_SECONDS - 2n, max: TIMESTAMP_MIN_SECONDS + 2n }),
  fc.bigInt({ min: TIMESTAMP_MAX_SECONDS - 2n, max: TIMESTAMP_MAX_SECONDS + 2n }),
  fc.bigInt({ min: 1_700_000_000n, max: 2_000_000_000n }),
);
const nanos = fc.oneof(fc.integer(), fc.integer({ min: -2, max: 1 }), fc.integer({ min: 999_999_998, max: 1_000_000_001 }));
const timestamp = fc.record({ seconds, nanos });
const validTs = (t: { seconds: bigint; nanos: number }) =>
  t.seconds >= TIMESTAMP_MIN_SECONDS && t.seconds <= TIMESTAMP_MAX_SECONDS && t.nanos >= 0 && t.nanos < 1_000_000_000;
/** Strings around a size limit: short, or just under / over it. */
const sized = (max: number) =>
  fc.oneof(
    fc.string({ maxLength: 8 }),
    fc.integer({ min: max - 2, max: max + 2 }).map((n) => "a".repeat(n)),
  );
const labelMap = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));

function outcome(f: () => void): "ok" | "invalid" {
  try {
    f();
    return "ok";
  } catch (err) {
    if (err instanceof StatusError && err.code === Code.InvalidArgument) return "invalid";
    throw err;
  }
}

describe("validate (property-based)", () => {
  it("random connections: ok exactly within the limits, else InvalidArgument, never another error", () => {
    fc.assert(
      fc.property(
        sized(MAX_NAME_BYTES),
        fc.integer({ min: 0, max: MAX_LABELS + 2 }),
        fc.integer({ min: 0, max: MAX_PATH_SEGMENTS + 2 }),
        fc.option(timestamp, { nil: undefined }),
        (id, nLabels, nSegs, expires) => {
          const conn = create(ConnectionSchema, {
            id,
            labels: labelMap(nLabels),
            path: {
              index: 0,
              pathSegments: Array.from({ length: nSegs }, (_, i) => ({ name: `s${i}`, id: `${i}`, ...(expires ? { expires } : {}) })),
            },
          });
          const want =
            id.length <= MAX_NAME_BYTES &&
            nLabels <= MAX_LABELS &&
            nSegs <= MAX_PATH_SEGMENTS &&
            (expires === undefined || nSegs === 0 || validTs(expires));
          expect(outcome(() => validateRequest(create(NetworkServiceRequestSchema, { connection: conn })))).to.equal(
            want ? "ok" : "invalid",
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("random NSE registrations through the registry server: stored or InvalidArgument, never Internal", async () => {
    const clock = new MockClock(Date.parse("2030-01-01T00:00:00Z"));
    const nsStore = createMemoryStore("ns", { clock });
    const nseStore = createMemoryStore("nse", { clock });
    const srv = createRegistryServer({ tokenGenerator: createTestTokenGenerator(), nsStore, nseStore });
    try {
      await fc.assert(
        fc.asyncProperty(
          sized(MAX_NAME_BYTES),
          fc.integer({ min: 0, max: MAX_LABELS + 2 }),
          fc.option(timestamp, { nil: undefined }),
          async (name, n, exp) => {
            const nse = create(NetworkServiceEndpointSchema, {
              name: name || "x",
              url: "tcp://127.0.0.1:1",
              networkServiceNames: ["svc"],
              networkServiceLabels: { svc: { labels: labelMap(n) } },
              ...(exp ? { expirationTime: exp } : {}),
            });
            try {
              await srv.nse.register(CallContext.create({ clock }), nse);
            } catch (err) {
              expect(err, String(err)).to.be.instanceOf(StatusError);
              const code = (err as StatusError).code;
              // A well-formed `name@domain` is another domain's: without a proxy registry that is a refusal of
              // the configuration (FailedPrecondition naming the variable), not of the input.
              if (nse.name.includes("@") && code === Code.FailedPrecondition) {
                expect(String(err)).to.contain("NSM_PROXY_REGISTRY_URL");
                return;
              }
              expect(code, String(err)).to.equal(Code.InvalidArgument);
              return;
            }
            expect(n <= MAX_LABELS && nse.name.length <= MAX_NAME_BYTES && (exp === undefined || validTs(exp))).to.equal(true);
          },
        ),
        // Cases CI's random runs found: "@ " (no DNS name after @) and " @0" (a well-formed foreign name).
        {
          numRuns: 200,
          examples: [
            ["@ ", 0, undefined],
            [" @0", 0, undefined],
          ],
        },
      );
    } finally {
      await nsStore.close();
      await nseStore.close();
    }
  });
});
