/**
 * Test-only helpers of the in-process gRPC acceptance tests (not exported): the two loopback transports,
 * an element that lets a test wait for the next Request or Close passing it, a real clock that counts its
 * pending timers, and a MonitorConnections wrapper that reports new subscriptions.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ConnectionEvent, MonitorScopeSelector } from "@nsm-ts/api/networkservice";
import { type Clock, realClock, sleepOn, type Timer } from "@nsm-ts/base/clock";
import type { CallContext } from "@nsm-ts/base/context";
import type { MonitorConnectionServer, NetworkServiceElement } from "@nsm-ts/sdk/networkservice";

/** A loopback transport: where to listen, and how to clean up after. */
export interface Transport {
  readonly name: string;
  /** A URL to listen on (tcp port 0 picks a free port). */
  listenUrl(): string;
  /** Removes what the transport created (the temp dir of unix sockets). */
  cleanup(): void;
}

/** Loopback TCP with a kernel-chosen port. */
export function tcpTransport(): Transport {
  return { name: "tcp", listenUrl: () => "tcp://127.0.0.1:0", cleanup: () => undefined };
}

/** A unix socket in a fresh temp dir. */
export function unixTransport(): Transport {
  let dir: string | undefined;
  return {
    name: "unix",
    listenUrl() {
      dir ??= mkdtempSync(join(tmpdir(), "nsm-e2e-"));
      return `unix://${join(dir, "nse.sock")}`;
    },
    cleanup() {
      if (dir) rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    },
  };
}

/** Lets a test wait for the next completed Request or Close passing an element (events, not sleeps). */
export class Tracker {
  private waiters: Array<{ op: "request" | "close"; resolve: () => void }> = [];
  readonly element: NetworkServiceElement = {
    name: "tracker",
    request: async (ctx, r, n) => {
      const out = await n.request(ctx, r);
      this.fire("request");
      return out;
    },
    close: async (ctx, c, n) => {
      await n.close(ctx, c);
      this.fire("close");
    },
  };
  /** Resolves after the next Request (or Close) that completes after this call. */
  next(op: "request" | "close"): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ op, resolve }));
  }
  private fire(op: "request" | "close"): void {
    const ready = this.waiters.filter((w) => w.op === op);
    this.waiters = this.waiters.filter((w) => w.op !== op);
    for (const w of ready) w.resolve();
  }
}

/** The real clock, counting timers that have neither fired nor been stopped (tests assert 0 at the end). */
export class CountingClock implements Clock {
  pending = 0;
  now(): number {
    return realClock.now();
  }
  setTimer(ms: number, fn: () => void): Timer {
    this.pending++;
    let live = true;
    const t = realClock.setTimer(ms, () => {
      live = false;
      this.pending--;
      fn();
    });
    return {
      stop: () => {
        if (!live || !t.stop()) return false;
        live = false;
        this.pending--;
        return true;
      },
    };
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }
}

/** Wraps a MonitorConnectionServer so a test can wait for a subscriber's initial state transfer to be sent. */
export class SubscriptionProbe implements MonitorConnectionServer {
  private waiters: Array<() => void> = [];
  constructor(private readonly inner: MonitorConnectionServer) {}
  /** Resolves once the next subscription has had its first event handed to the transport. */
  next(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  monitorConnections(ctx: CallContext, selector: MonitorScopeSelector): AsyncIterable<ConnectionEvent> {
    const inner = this.inner.monitorConnections(ctx, selector);
    const fire = (): void => {
      for (const w of this.waiters.splice(0)) w();
    };
    return {
      async *[Symbol.asyncIterator]() {
        let first = true;
        for await (const ev of inner) {
          yield ev;
          if (first) fire();
          first = false;
        }
      },
    };
  }
}
