import { expect } from "chai";
import { ConfigError, commonVars, defineConfig, duration, int, list, url, validateCommon } from "./index.js";

const schema = defineConfig({
  listenOn: { name: "NSM_LISTEN_ON", description: "where to listen", default: "tcp://:5002", parse: url },
  services: { name: "NSM_SERVICE_NAMES", description: "services to serve", required: true, parse: list },
  workers: { name: "WORKERS", description: "worker count", parse: int({ min: 1 }) },
  expire: { name: "NSM_EXPIRE_PERIOD", description: "expiry", default: "1m", parse: duration },
});

function catchConfigError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("tools/config defineConfig", () => {
  it("applies defaults through the parser and types required/defaulted entries as present", () => {
    const cfg = schema.parse({ NSM_SERVICE_NAMES: "a,b" });
    // Compile-time: these are not `| undefined`.
    const listenOn: string = cfg.listenOn;
    const services: string[] = cfg.services;
    const expire: number = cfg.expire;
    const workers: number | undefined = cfg.workers;
    expect({ listenOn, services, expire, workers }).to.deep.equal({
      listenOn: "tcp://:5002",
      services: ["a", "b"],
      expire: 60_000,
      workers: undefined,
    });
  });

  it("parses given values and treats empty values as unset", () => {
    const cfg = schema.parse({ NSM_SERVICE_NAMES: "x", NSM_LISTEN_ON: "", WORKERS: "4", NSM_EXPIRE_PERIOD: "30s", OTHER: "y" });
    expect(cfg).to.deep.equal({ listenOn: "tcp://:5002", services: ["x"], workers: 4, expire: 30_000 });
  });

  it("names the variable of a bad value", () => {
    const err = catchConfigError(() => schema.parse({ NSM_SERVICE_NAMES: "x", NSM_LISTEN_ON: "x" }));
    expect(err.variable).to.equal("NSM_LISTEN_ON");
    expect(err.message).to.equal('NSM_LISTEN_ON: invalid URL "x": expected tcp://host:port or unix:///path');
    const err2 = catchConfigError(() => schema.parse({ NSM_SERVICE_NAMES: "x", WORKERS: "0" }));
    expect(err2.message).to.equal("WORKERS: 0 is less than the minimum 1");
  });

  it("reports a missing required variable", () => {
    for (const env of [{}, { NSM_SERVICE_NAMES: "  " }]) {
      const err = catchConfigError(() => schema.parse(env));
      expect(err.variable).to.equal("NSM_SERVICE_NAMES");
      expect(err.message).to.equal("NSM_SERVICE_NAMES: is required: services to serve");
    }
  });

  it("says when a default itself is invalid", () => {
    const broken = defineConfig({ d: { name: "D", description: "d", default: "soon", parse: duration } });
    expect(() => broken.parse({})).to.throw('D: invalid duration "soon": expected e.g. 500ms, 15s, 1m30s, 10m or 1h (the default)');
  });

  it("rejects a table that lists a variable twice", () => {
    expect(() =>
      defineConfig({
        a: { name: "X", description: "", parse: url },
        b: { name: "X", description: "", parse: url },
      }),
    ).to.throw("variable X is listed twice");
  });

  it("help prints every variable with its default and description; names lists them in order", () => {
    const help = schema.help("cmd-test");
    expect(help).to.match(/^Usage: cmd-test \[--help\]/);
    const lines = help.split("\n");
    const row = (name: string): string => lines.find((l) => l.trimStart().startsWith(`${name} `)) ?? "";
    expect(row("NSM_LISTEN_ON")).to.match(/NSM_LISTEN_ON\s+tcp:\/\/:5002\s+where to listen$/);
    expect(row("NSM_SERVICE_NAMES")).to.match(/NSM_SERVICE_NAMES\s+\(required\)\s+services to serve$/);
    expect(row("WORKERS")).to.match(/WORKERS\s+worker count$/);
    expect(row("NSM_EXPIRE_PERIOD")).to.match(/NSM_EXPIRE_PERIOD\s+1m\s+expiry$/);
    expect(schema.names()).to.deep.equal(["NSM_LISTEN_ON", "NSM_SERVICE_NAMES", "WORKERS", "NSM_EXPIRE_PERIOD"]);
  });

  it("common variables: defaults, computed-name label, and certificates all or none", () => {
    const common = defineConfig({ ...commonVars({ name: "nsmgr-host1", nameLabel: "nsmgr-<hostname>" }) }, { validate: validateCommon });
    const cfg = common.parse({});
    // Compile-time: defaulted common entries are present, the optional ones may be undefined.
    const typed: { name: string; telemetry: boolean; maxTokenLifetime: number; tlsCertFile: string | undefined } = cfg;
    expect(typed.name).to.equal("nsmgr-host1");
    expect(cfg).to.deep.include({
      name: "nsmgr-host1",
      logLevel: "info",
      maxTokenLifetime: 600_000,
      telemetry: false,
      openTelemetryEndpoint: "otel-collector.observability.svc.cluster.local:4318",
      tlsCertFile: undefined,
      metricsListenOn: undefined,
    });
    expect(common.help("x")).to.match(/NSM_NAME\s+nsmgr-<hostname>\s/);
    const certs = { NSM_TLS_CERT_FILE: "/c.pem", NSM_TLS_KEY_FILE: "/k.pem", NSM_TLS_CA_FILE: "/ca.pem" };
    expect(common.parse(certs)).to.deep.include({ tlsCertFile: "/c.pem", tlsKeyFile: "/k.pem", tlsCaFile: "/ca.pem" });
    const err = catchConfigError(() => common.parse({ NSM_TLS_CERT_FILE: "/c.pem" }));
    expect(err.variable).to.equal("NSM_TLS_KEY_FILE");
    expect(err.message).to.equal(
      "NSM_TLS_KEY_FILE: NSM_TLS_CERT_FILE, NSM_TLS_KEY_FILE, NSM_TLS_CA_FILE must be set together or not at all; " +
        "NSM_TLS_CERT_FILE set but NSM_TLS_KEY_FILE, NSM_TLS_CA_FILE missing",
    );
    expect(catchConfigError(() => common.parse({ NSM_METRICS_LISTEN_ON: "unix:///m.sock" })).variable).to.equal("NSM_METRICS_LISTEN_ON");
    expect(common.parse({ NSM_METRICS_LISTEN_ON: "tcp://127.0.0.1:9090" }).metricsListenOn).to.equal("tcp://127.0.0.1:9090");
    expect(catchConfigError(() => common.parse({ NSM_LOG_LEVEL: "loud" })).variable).to.equal("NSM_LOG_LEVEL");
    expect(catchConfigError(() => common.parse({ TELEMETRY: "yes" })).variable).to.equal("TELEMETRY");
    expect(catchConfigError(() => common.parse({ NSM_OPEN_TELEMETRY_ENDPOINT: "nope" })).variable).to.equal("NSM_OPEN_TELEMETRY_ENDPOINT");
  });
});
