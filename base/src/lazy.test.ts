import { fileURLToPath } from "node:url";
import { lazyPackagesLoaded } from "@nsm-ts/testing/program";
import { expect } from "chai";
import { LAZY_PACKAGES } from "./lazy.js";

const baseDir = fileURLToPath(new URL("..", import.meta.url));
const imports = `const m0 = await import("@nsm-ts/base/etcd");
const m1 = await import("@nsm-ts/base/tracing");
const m2 = await import("@nsm-ts/base/connect");`;

describe("lazy loading of heavy dependencies", () => {
  it("importing the etcd, tracing and Connect modules loads none of etcd3, the OpenTelemetry SDK or Connect's adapter", () => {
    expect(lazyPackagesLoaded(baseDir, ["--input-type=module", "-e", imports])).to.deep.equal([]);
  });

  it("each loads when its feature is first used", () => {
    // A client of a loopback port nothing listens on (nothing is dialled before a call), tracing whose OTLP
    // exporter never exports, a Connect handler nothing calls.
    const use = `${imports}
await m0.newEtcdClient({ hosts: ["127.0.0.1:2"] }).close();
await m1.createTracing({ serviceName: "t" }).close();
m2.createConnectHandler([]);`;
    expect(lazyPackagesLoaded(baseDir, ["--input-type=module", "-e", use]).sort()).to.deep.equal([...LAZY_PACKAGES].sort());
  });
});
