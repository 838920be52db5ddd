/** Runtime level switching: SIGUSR1 → trace, SIGUSR2 → the configured level, children included. */
import { EventEmitter } from "node:events";
import { Writable } from "node:stream";
import { expect } from "chai";
import { createLogger, switchLevelOnSignals } from "./index.js";

describe("log level switching", () => {
  it("SIGUSR1 turns trace on for existing children, SIGUSR2 restores the level; the returned function unhooks", () => {
    const lines: { level: number; msg: string }[] = [];
    const dest = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as { level: number; msg: string });
        cb();
      },
    });
    const log = createLogger({ level: "warn", destination: dest });
    const child = log.child({ connId: "c1" });
    const signals = new EventEmitter();
    const off = switchLevelOnSignals(log, signals);
    expect(child.isLevelEnabled("trace")).to.equal(false);
    signals.emit("SIGUSR1");
    expect(child.isLevelEnabled("trace")).to.equal(true);
    signals.emit("SIGUSR2");
    expect(log.level).to.equal("warn");
    expect(child.isLevelEnabled("trace")).to.equal(false);
    off();
    expect(signals.listenerCount("SIGUSR1") + signals.listenerCount("SIGUSR2")).to.equal(0);
    signals.emit("SIGUSR1");
    expect(log.level).to.equal("warn");
  });
});
