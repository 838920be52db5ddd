/**
 * Tracing across the mesh: a remote Request through the in-process sandbox (2 nodes), every part with its
 * own tracer (service.name = part name) exporting to one in-memory exporter, makes ONE trace whose spans
 * nest hop by hop: nsc → nsmgr-1 → forwarder-1 → nsmgr-0 → forwarder-0 → nse-1.
 */

import { create } from "@bufbuild/protobuf";
import { NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { createSandbox, type Sandbox } from "@nsm-ts/testing/sandbox";
import { SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { expect } from "chai";
import { createClient, createServer, dial, healthService } from "../grpc/index.js";
import { createTracing, otlpTracesUrl, type Tracing } from "./index.js";

const REQUEST = "/networkservice.NetworkService/Request";
const serviceOf = (s: ReadableSpan): string => String(s.resource.attributes["service.name"]);

describe("tracing", function () {
  this.timeout(20_000);
  let sb: Sandbox | undefined;
  let exporter = new InMemorySpanExporter();
  const tracings = new Map<string, Tracing>();
  const tracingOf = (part: string): Tracing => {
    let t = tracings.get(part);
    if (!t) {
      t = createTracing({ serviceName: part, exporter });
      tracings.set(part, t);
    }
    return t;
  };

  afterEach(async () => {
    await sb?.close();
    sb = undefined;
    await Promise.all([...tracings.values()].map((t) => t.close()));
    tracings.clear();
    exporter = new InMemorySpanExporter(); // closing a provider stops its exporter
  });

  it("one trace spans every hop of a remote request, with a span per chain element", async () => {
    sb = await createSandbox({
      nodes: 2,
      interceptors: (part) => ({ server: [tracingOf(part).serverInterceptor], client: [tracingOf(part).clientInterceptor] }),
    });
    await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"] });
    exporter.reset(); // registrations made their own traces
    const nsc = sb.addClient(1, { name: "nsc", heal: false });
    const conn = await nsc.request(create(NetworkServiceRequestSchema, { connection: { networkService: "ns-1" } }));
    expect(conn.path?.pathSegments.map((s) => s.name)).to.deep.equal(["nsc", "nsmgr-1", "forwarder-1", "nsmgr-0", "forwarder-0", "nse-1"]);

    const spans = exporter.getFinishedSpans();
    const root = spans.find((s) => serviceOf(s) === "nsc" && s.kind === SpanKind.CLIENT && s.name === REQUEST);
    expect(root, "the client's Request span").to.not.equal(undefined);
    const traceId = root?.spanContext().traceId;
    const inTrace = spans.filter((s) => s.spanContext().traceId === traceId);
    if (process.env.DEBUG_SPANS)
      for (const s of spans)
        console.error(
          serviceOf(s),
          s.kind,
          s.name,
          s.spanContext().traceId.slice(0, 6),
          s.spanContext().spanId.slice(0, 6),
          s.parentSpanContext?.spanId.slice(0, 6),
        );
    const servers = inTrace.filter((s) => s.kind === SpanKind.SERVER && s.name === REQUEST).map(serviceOf);
    expect(servers.sort()).to.deep.equal(["forwarder-0", "forwarder-1", "nse-1", "nsmgr-0", "nsmgr-1"]);

    // Walk from the endpoint's server span up to the root: the RPC spans on the way are the hops in order.
    const byId = new Map(inTrace.map((s) => [s.spanContext().spanId, s]));
    const nse = inTrace.find((s) => serviceOf(s) === "nse-1" && s.kind === SpanKind.SERVER && s.name === REQUEST);
    const hops: string[] = [];
    for (let s = nse; s; s = byId.get(s.parentSpanContext?.spanId ?? "")) {
      if (s.kind !== SpanKind.INTERNAL) hops.unshift(`${serviceOf(s)}:${s.kind === SpanKind.SERVER ? "server" : "client"}`);
      if (!s.parentSpanContext) expect(s).to.equal(root);
    }
    expect(hops).to.deep.equal([
      "nsc:client",
      "nsmgr-1:server",
      "nsmgr-1:client",
      "forwarder-1:server",
      "forwarder-1:client",
      "nsmgr-0:server",
      "nsmgr-0:client",
      "forwarder-0:server",
      "forwarder-0:client",
      "nse-1:server",
    ]);
    // Chain elements have their own spans inside each hop (e.g. the nsmgr's discover and connect).
    const nsmgrElements = inTrace.filter((s) => serviceOf(s) === "nsmgr-1" && s.kind === SpanKind.INTERNAL).map((s) => s.name);
    expect(nsmgrElements).to.include("connect.Request");
    expect(nsmgrElements.length).to.be.greaterThan(5);
    // The nsmgr's registry look-up during discover belongs to the same trace.
    expect(inTrace.some((s) => serviceOf(s) === "registry" && s.kind === SpanKind.SERVER)).to.equal(true);
    await nsc.close(conn);
    await nsc.dispose();
  });

  it("a client with a tracer roots the trace in its own Request span, with a span per client chain element", async () => {
    sb = await createSandbox({
      nodes: 1,
      interceptors: (part) => ({ server: [tracingOf(part).serverInterceptor], client: [tracingOf(part).clientInterceptor] }),
    });
    await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"] });
    exporter.reset();
    const nsc = sb.addClient(0, { name: "nsc", heal: false, tracer: tracingOf("nsc").tracer });
    const conn = await nsc.request(create(NetworkServiceRequestSchema, { connection: { networkService: "ns-1" } }));
    const spans = exporter.getFinishedSpans();
    const root = spans.find((s) => serviceOf(s) === "nsc" && s.name === "nsc.Request");
    expect(root, "the client's root span").to.not.equal(undefined);
    expect(root?.parentSpanContext, "it is the root").to.equal(undefined);
    const inTrace = spans.filter((s) => s.spanContext().traceId === root?.spanContext().traceId);
    const clientElements = inTrace.filter((s) => serviceOf(s) === "nsc" && s.kind === SpanKind.INTERNAL).map((s) => s.name);
    expect(clientElements).to.include.members([
      "nsc.Request",
      "retry.Request",
      "updatepath-client.Request",
      "begin-client.Request",
      "connect.Request",
    ]);
    // The RPC to the nsmgr is a child of the connect element's span, and the hops follow in the same trace.
    const connectSpan = inTrace.find((s) => serviceOf(s) === "nsc" && s.name === "connect.Request");
    const rpc = inTrace.find((s) => serviceOf(s) === "nsc" && s.kind === SpanKind.CLIENT && s.name === REQUEST);
    expect(rpc?.parentSpanContext?.spanId).to.equal(connectSpan?.spanContext().spanId);
    const servers = inTrace.filter((s) => s.kind === SpanKind.SERVER && s.name === REQUEST).map(serviceOf);
    expect(servers.sort()).to.deep.equal(["forwarder-0", "nse-1", "nsmgr-0"]);

    exporter.reset();
    await nsc.close(conn);
    expect(exporter.getFinishedSpans().some((s) => serviceOf(s) === "nsc" && s.name === "nsc.Close" && !s.parentSpanContext)).to.equal(
      true,
    );
    await nsc.dispose();
  });

  it("a failed call's spans carry the error status on both sides", async () => {
    const t = tracingOf("p");
    const server = createServer({ interceptors: [t.serverInterceptor] });
    const url = await server.listen("tcp://127.0.0.1:0");
    const ch = dial(url, { interceptors: [t.clientInterceptor] });
    try {
      const health = createClient(healthService, ch);
      await health.check({ service: "no-such-service" }).then(
        () => expect.fail("expected NotFound"),
        () => undefined,
      );
      const spans = exporter.getFinishedSpans();
      expect(spans.map((s) => s.kind).sort()).to.deep.equal([SpanKind.SERVER, SpanKind.CLIENT].sort());
      for (const s of spans) expect(s.attributes["rpc.grpc.status_code"]).to.equal(5);
      const [a, b] = spans;
      expect(a?.spanContext().traceId).to.equal(b?.spanContext().traceId);
    } finally {
      ch.close();
      await server.close({ graceMs: 0 });
    }
  });

  it("maps NSM_OPEN_TELEMETRY_ENDPOINT host:port to the OTLP/HTTP traces URL", () => {
    expect(otlpTracesUrl("otel-collector:4318")).to.equal("http://otel-collector:4318/v1/traces");
    expect(otlpTracesUrl("https://c.example/v1/traces")).to.equal("https://c.example/v1/traces");
  });
});
