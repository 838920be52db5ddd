import { EventEmitter, once } from "node:events";
import { PassThrough } from "node:stream";
import { expect } from "chai";
import { commonVars, defineConfig, type MainIo, type RunContext, runMain, url } from "./index.js";

const schema = defineConfig({
  ...commonVars({ name: "test" }),
  listenOn: { name: "NSM_LISTEN_ON", description: "where to listen", default: "tcp://:5002", parse: url },
});

/** A promise with its resolve, since `run` starts synchronously inside `runMain`. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => {};
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

class FakeIo {
  readonly codes: number[] = [];
  readonly signals = new EventEmitter();
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  private out = "";
  private err = "";

  constructor(
    readonly argv: string[] = [],
    readonly env: Record<string, string> = {},
  ) {
    this.stdout.on("data", (b: Buffer) => (this.out += b.toString()));
    this.stderr.on("data", (b: Buffer) => (this.err += b.toString()));
  }

  get io(): MainIo {
    return {
      argv: this.argv,
      env: this.env,
      exit: ((code: number) => {
        this.codes.push(code);
      }) as (code: number) => never,
      stdout: this.stdout,
      stderr: this.stderr,
      signals: this.signals,
    };
  }

  get stdoutText(): string {
    return this.out;
  }

  get stderrText(): string {
    return this.err;
  }

  logLines(): { level: number; msg: string; name: string }[] {
    return this.out
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as { level: number; msg: string; name: string });
  }
}

describe("tools/config runMain", () => {
  let fake: FakeIo;
  afterEach(() => {
    // runMain must remove its signal handlers whatever the outcome.
    expect(fake.signals.listenerCount("SIGTERM")).to.equal(0);
    expect(fake.signals.listenerCount("SIGINT")).to.equal(0);
  });

  for (const flag of ["--help", "-h"]) {
    it(`${flag} prints the table and exits 0 without running`, async () => {
      fake = new FakeIo([flag], { NSM_LISTEN_ON: "bad" });
      let ran = false;
      await runMain(
        "cmd-test",
        schema,
        async () => {
          ran = true;
        },
        fake.io,
      );
      expect(fake.codes).to.deep.equal([0]);
      expect(ran).to.equal(false);
      for (const name of schema.names()) expect(fake.stdoutText).to.contain(name);
    });
  }

  it("a bad variable prints one line naming it and exits 2", async () => {
    fake = new FakeIo([], { NSM_LISTEN_ON: "x" });
    await runMain("cmd-test", schema, async () => {}, fake.io);
    expect(fake.codes).to.deep.equal([2]);
    expect(fake.stderrText).to.equal('cmd-test: NSM_LISTEN_ON: invalid URL "x": expected tcp://host:port or unix:///path\n');
    expect(fake.stdoutText).to.equal("");
  });

  it("an unexpected argument exits 2 unless arguments are accepted", async () => {
    fake = new FakeIo(["serve"]);
    await runMain("cmd-test", schema, async () => {}, fake.io);
    expect(fake.codes).to.deep.equal([2]);
    expect(fake.stderrText).to.match(/^cmd-test: unexpected argument "serve"/);
    fake = new FakeIo(["list", "-o", "json"]);
    let args: string[] = [];
    await runMain(
      "cmd-test",
      schema,
      async (_cfg, ctx) => {
        args = ctx.argv;
      },
      fake.io,
      { acceptArgs: true },
    );
    expect(fake.codes).to.deep.equal([0]);
    expect(args).to.deep.equal(["list", "-o", "json"]);
  });

  it("passes the parsed config and a logger at NSM_LOG_LEVEL; resolving exits 0", async () => {
    fake = new FakeIo([], { NSM_LOG_LEVEL: "DEBUG", NSM_LISTEN_ON: "unix:///tmp/x.sock" });
    await runMain(
      "cmd-test",
      schema,
      async (cfg, ctx) => {
        ctx.log.debug({ listenOn: cfg.listenOn }, "configured");
        ctx.log.trace("not shown");
      },
      fake.io,
    );
    expect(fake.codes).to.deep.equal([0]);
    const lines = fake.logLines();
    expect(lines).to.have.length(1);
    expect(lines[0]).to.deep.include({ level: 20, msg: "configured", name: "cmd-test", listenOn: "unix:///tmp/x.sock" });
  });

  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    it(`${sig} aborts the signal and a clean return exits 0`, async () => {
      fake = new FakeIo();
      const started = deferred();
      const done = runMain(
        "cmd-test",
        schema,
        async (_cfg, ctx: RunContext) => {
          started.resolve();
          await once(ctx.signal, "abort");
        },
        fake.io,
      );
      await started.promise;
      fake.signals.emit(sig);
      await done;
      expect(fake.codes).to.deep.equal([0]);
      expect(fake.logLines().map((l) => l.msg)).to.deep.equal(["shutting down"]);
    });
  }

  it("rejecting with the abort reason after a signal still exits 0", async () => {
    fake = new FakeIo();
    const started = deferred();
    const done = runMain(
      "cmd-test",
      schema,
      async (_cfg, ctx) => {
        started.resolve();
        await once(ctx.signal, "abort");
        throw ctx.signal.reason;
      },
      fake.io,
    );
    await started.promise;
    fake.signals.emit("SIGTERM");
    await done;
    expect(fake.codes).to.deep.equal([0]);
  });

  it("a second signal exits 1 at once", async () => {
    fake = new FakeIo();
    const started = deferred();
    let finish = (): void => {};
    const done = runMain(
      "cmd-test",
      schema,
      async () => {
        started.resolve();
        await new Promise<void>((resolve) => (finish = resolve));
      },
      fake.io,
    );
    await started.promise;
    fake.signals.emit("SIGTERM");
    expect(fake.codes).to.deep.equal([]);
    fake.signals.emit("SIGINT");
    expect(fake.codes).to.deep.equal([1]);
    finish(); // a real exit would not return; let the fake one finish the run
    await done;
  });

  it("a failing run logs at fatal and exits 1", async () => {
    fake = new FakeIo();
    await runMain(
      "cmd-test",
      schema,
      async () => {
        throw new Error("listen EADDRINUSE");
      },
      fake.io,
    );
    expect(fake.codes).to.deep.equal([1]);
    const [line] = fake.logLines();
    expect(line).to.deep.include({ level: 60, msg: "listen EADDRINUSE" });
  });
});
