/**
 * Chaos: the real programs on one node (cmd-registry, cmd-nsmgr, a NOOP cmd-forwarder, cmd-endpoint) carry
 * `NSM_CHAOS_CONNECTIONS` (default 1,000) live NOOP connections of one SDK client in a child process, with
 * 1-minute tokens so refreshes run throughout. The endpoint, the forwarder, the nsmgr and the registry are
 * SIGKILLed in turn and restarted after `RESTART_DELAY_MS`; after each fault the test polls the client's heal
 * state and the programs' /metrics until every connection is healed again (held by the client, CONNECTED, and
 * counted by the nsmgr, the forwarder and the endpoint). At the end nothing has leaked: every hop holds exactly
 * the live connections, the registry exactly the forwarder and the endpoint, the real clock's pending timers
 * (`nsm_clock_timers_pending`) are back at their pre-fault resting level (what most readings over a settle
 * period agree on), every connection still has the address pair it was opened with, no program exited unasked,
 * the nsmgr's and the forwarder's RSS is at most `RSS_LIMIT` times the pre-fault steady state (each the peak over
 * `RSS_WINDOW_MS` after settled load), and the registry outage healed at most `REGISTRY_HEALS_MAX` connections;
 * after Close of every connection all counts are zero and the timers back at their level before the first
 * connection. Results: docs/reliability.md#chaos.
 */
import { expect } from "chai";
import { freePort, type Program, type ProgramName, type ProgramSet, useProgramSet } from "../programs/harness.js";
import {
  ChaosClient,
  type ChaosStatus,
  cpuSeconds,
  type Gauges,
  gauges,
  metricsUrl,
  type RssWindow,
  restingLevels,
  rssMiB,
  sampleRss,
  until,
} from "./chaos.fixture.js";

/**
 * Live connections held through the faults; `NSM_CHAOS_CONNECTIONS` changes it (e.g. 200 for a quick local run:
 * about 2 min instead of 3–5, docs/reliability.md#chaos).
 */
const N = Number(process.env.NSM_CHAOS_CONNECTIONS ?? 1_000);
/** How long a killed program stays down before it is started again. */
const RESTART_DELAY_MS = 2_500;
/** Requests (and Closes) the client keeps in flight while opening (closing) the connections. */
const CONCURRENCY = 16;
/** A fault must be healed within this long of the kill (start-up under load included). */
const HEAL_TIMEOUT_MS = 90_000 + N * 120;
/**
 * The nsmgr's and the forwarder's RSS after the faults may be at most this multiple of the pre-fault steady state
 * (both the peak over `RSS_WINDOW_MS`, sampled after `BASELINE_SETTLE_MS` and `REFRESH_PERIOD_MS` of settled
 * load): back within 10 %. Since the endpoint hands healing connections their addresses back (before, each
 * endpoint restart added a pair to every connection, and the nsmgr came back to ×1.07–1.10, once ×1.1005) the
 * nsmgr came back to ×1.03–1.096 and the forwarder to ×1.00–1.07 (nine runs); what is left is the restarted
 * programs' somewhat larger committed V8 heap after their burst of heals, with the same live heap. How this was
 * measured: docs/reliability.md#chaos. A leak of per-connection state would grow without bound and is caught by the
 * exact counts as well.
 */
const RSS_LIMIT = 1.1;
/**
 * The longest interval between two refreshes of one connection (1-minute tokens: 12–24 s). RSS is sampled only
 * after at least this much settled load on both sides: right after the 1,000 connections are opened V8 has not yet
 * grown its heap to what the refreshes need (181 MiB then, 213 MiB 50 s later, at the same 1,000 connections), and
 * right after the last fault the restarted programs still hold the garbage of their burst of heals.
 */
const REFRESH_PERIOD_MS = 24_000;
/**
 * Settled load before the pre-fault measurement: the connections open in 8–10 s, and V8 then grows its heap for
 * about a minute (the 181 → 213 MiB above took 50 s); measured after one refresh period the baseline came out
 * 188–197 MiB between runs (nsmgr), the lowest with the highest ratio (×1.096), and 188–193 MiB in the three runs
 * since. After the faults the settle step (heals and timers back) has already let that much time pass, so one
 * refresh period is enough there.
 */
const BASELINE_SETTLE_MS = 60_000;
/**
 * RSS is compared by its peak over this window (sampled every second): several refresh periods, so that V8's
 * garbage-collection sawtooth and the heap's growth to what the refreshes need are both inside it. Single readings
 * at a constant 1,000 connections spread ±15 %, and the peaks of successive 30 s windows ±5 % (nsmgr 183, 186, 184,
 * 193 MiB in a row before the faults; 196, 196, 196, 205, 201, 192, 193 after them).
 */
const RSS_WINDOW_MS = 90_000;
/**
 * The nsmgr and the forwarder run with their V8 old space capped at this many MiB. Without a cap V8 collects
 * lazily, so "heap used" after a burst of 1,000 heals is mostly garbage (67 → 187 MiB seen on an idle machine) and
 * RSS says little; under the cap the garbage is collected, and per-connection state that leaked would exhaust it
 * and crash the program (which fails the test). The steady state with 1,000 connections uses about 70 MiB.
 */
const HEAP_CAP_MIB = 192;
/**
 * Client heals the registry fault may start at most. The registry is not on the data path: refreshes keep their
 * forwarder and endpoint while it cannot answer (807 of 1,000 connections healed before they did; 0 of 300 since),
 * and each fault starts once the previous one's heals have settled.
 */
const REGISTRY_HEALS_MAX = Math.ceil(N / 50);
const CAPPED = { NODE_OPTIONS: `--max-old-space-size=${HEAP_CAP_MIB}` };
const SERVICE = "svc-chaos";
const METRICS = { NSM_METRICS_LISTEN_ON: "tcp://127.0.0.1:0" };

type Role = "registry" | "nsmgr" | "forwarder" | "endpoint";
const HOPS = ["nsmgr", "forwarder", "endpoint"] as const;

/** One fault's outcome, printed and summarised in docs/reliability.md. */
interface FaultResult {
  killed: Role;
  /** From the kill to the restarted program's ready line (the outage plus its start-up). */
  restartedMs: number;
  /** From the kill to every connection healed. */
  healedMs: number;
  healsStarted: number;
  maxAttempt: number;
}

/** A program the test can kill and start again with the same environment (and so the same sockets and ports). */
class Managed {
  program!: Program;
  metrics!: string;
  /** Times this program exited without the test killing it. */
  crashes = 0;

  constructor(
    private readonly set: ProgramSet,
    readonly role: Role,
    private readonly bin: ProgramName,
    private readonly vars: Record<string, string>,
    private readonly readyMsg: string,
  ) {}

  /** Starts the program; resolves once it is ready (a start under load may take its time: 60 s). */
  async start(): Promise<void> {
    const p = this.set.spawn(this.bin, { ...this.vars, ...METRICS }, this.role);
    await p.waitFor(this.readyMsg, () => true, 60_000);
    this.program = p;
    this.metrics = await metricsUrl(p);
    void p.exited.then(({ signal }) => {
      if (signal !== "SIGKILL" && p === this.program) this.crashes++;
    });
  }

  async kill(): Promise<void> {
    await this.program.stop("SIGKILL");
  }

  gauges(): Promise<Gauges> {
    return gauges(this.metrics);
  }

  rss(): number {
    return rssMiB(this.program.child.pid);
  }
}

describe("chaos: the programs keep many live connections through SIGKILL of each program in turn", function () {
  // Opening and closing 1,000 connections, four faults with their heals, settling: 5.3 min on 2 cores shared
  // with other work (about 260 CPU-seconds in all, so no less than 2.2 min on 2 idle cores).
  // Plus the two RSS measurements (a settle and a window each).
  this.timeout(420_000 + N * 600 + BASELINE_SETTLE_MS + REFRESH_PERIOD_MS + 2 * RSS_WINDOW_MS);
  let set: ProgramSet;
  let nsc: ChaosClient | undefined;
  afterEach(async () => {
    await nsc?.stop();
    nsc = undefined;
  });
  useProgramSet((s) => {
    set = s;
  });

  it(`${N} connections heal after SIGKILL of the endpoint, the forwarder, the nsmgr and the registry; nothing leaks`, async () => {
    const registryUrl = `tcp://127.0.0.1:${await freePort()}`;
    const nsmgrSocket = set.socket("nsm.sock");
    const programs: Record<Role, Managed> = {
      registry: new Managed(set, "registry", "cmd-registry", { NSM_NAME: "registry", NSM_LISTEN_ON: registryUrl }, "cmd-registry serving"),
      nsmgr: new Managed(
        set,
        "nsmgr",
        "cmd-nsmgr",
        {
          NSM_NAME: "nsmgr-1",
          NODE_NAME: "node-1",
          NSM_LISTEN_ON: `${nsmgrSocket},tcp://127.0.0.1:${await freePort()}`,
          NSM_REGISTRY_URL: registryUrl,
          ...CAPPED,
        },
        "cmd-nsmgr serving",
      ),
      forwarder: new Managed(
        set,
        "forwarder",
        "cmd-forwarder",
        {
          NSM_NAME: "forwarder-1",
          NSM_CONNECT_TO: nsmgrSocket,
          NSM_LISTEN_ON: set.socket("forwarder.sock"),
          NSM_FORWARDER_MECHANISM: "NOOP",
          ...CAPPED,
        },
        "cmd-forwarder serving",
      ),
      endpoint: new Managed(
        set,
        "endpoint",
        "cmd-endpoint",
        {
          NSM_NAME: "nse-1",
          NSM_CONNECT_TO: nsmgrSocket,
          NSM_LISTEN_ON: set.socket("nse.sock"),
          NSM_SERVICE_NAMES: SERVICE,
          // Room for every connection's /31 pair.
          NSM_CIDR_PREFIX: "169.254.0.0/16",
        },
        "cmd-endpoint serving",
      ),
    };
    for (const role of ["registry", "nsmgr", "forwarder", "endpoint"] as const) await programs[role].start();
    const all = Object.values(programs);
    const hopGauges = async (): Promise<Record<(typeof HOPS)[number], Gauges>> => {
      const [nsmgr, forwarder, endpoint] = await Promise.all(HOPS.map((h) => programs[h].gauges()));
      return { nsmgr: nsmgr as Gauges, forwarder: forwarder as Gauges, endpoint: endpoint as Gauges };
    };
    const describeState = async (): Promise<string> => {
      const st = await nsc?.status();
      const g = await hopGauges().catch((e: unknown) => String(e));
      const reg = await programs.registry.gauges().catch((e: unknown) => String(e));
      return JSON.stringify({ client: st, hops: g, registry: reg });
    };
    // Before any connection: the timers each program runs for itself (registrations, watches).
    await until(
      "the forwarder and the endpoint are registered",
      async () => ((await programs.registry.gauges()).nses === 2 ? true : undefined),
      { timeoutMs: 60_000 },
    );
    const idleTimers = await restingLevels(
      async () => Object.fromEntries(await Promise.all(all.map(async (m) => [m.role, (await m.gauges()).timers]))) as Record<Role, number>,
      5,
      1_000,
    );

    nsc = await ChaosClient.start(nsmgrSocket);
    const client = nsc;
    const opened = await client.send({ op: "open", n: N, service: SERVICE, concurrency: CONCURRENCY });
    expect(opened.failed, `Requests failed: ${opened.firstError}`).to.equal(0);
    expect(opened.ok).to.equal(N);

    /** Every connection held by the client, CONNECTED, and counted at every hop: the healed state. */
    const allHealed = async (): Promise<ChaosStatus | undefined> => {
      const st = await client.status();
      if (st.total !== N || st.connected !== N) return undefined;
      const g = await hopGauges().catch(() => undefined);
      if (!g || HOPS.some((h) => g[h].connections !== N)) return undefined;
      const reg = await programs.registry.gauges().catch(() => undefined);
      return reg?.nses === 2 ? st : undefined;
    };
    await until("every connection is established at every hop", allHealed, { timeoutMs: 60_000, describe: describeState });
    const openedRss = { nsmgr: programs.nsmgr.rss(), forwarder: programs.forwarder.rss() };
    const hopTimers = async (): Promise<Record<(typeof HOPS)[number], number>> => {
      const g = await hopGauges();
      return { nsmgr: g.nsmgr.timers, forwarder: g.forwarder.timers, endpoint: g.endpoint.timers };
    };
    /**
     * Each hop's resting number of pending timers, read every 2 s through `settleMs` of settled load, then the peak
     * and mean RSS of the nsmgr and the forwarder over a window.
     */
    const footprint = async (
      settleMs: number,
    ): Promise<{ timers: Record<(typeof HOPS)[number], number>; rss: Record<"nsmgr" | "forwarder", RssWindow> }> => {
      // A deliberate wait (load for V8 to settle to, not a state to wait for), spent reading the timers.
      const timers = await restingLevels(hopTimers, Math.max(1, Math.floor(settleMs / 2_000)), 2_000);
      const rss = (await sampleRss(
        { nsmgr: programs.nsmgr.program.child.pid, forwarder: programs.forwarder.program.child.pid },
        RSS_WINDOW_MS,
      )) as Record<"nsmgr" | "forwarder", RssWindow>;
      return { timers, rss };
    };
    const showRss = (f: Record<"nsmgr" | "forwarder", RssWindow>, g: Record<(typeof HOPS)[number], Gauges>): string =>
      (["nsmgr", "forwarder"] as const)
        .map(
          (h) =>
            `${h} peak ${f[h].peak.toFixed(0)} mean ${f[h].mean.toFixed(0)} MiB (V8 heap used ${g[h].heapMiB.toFixed(0)} of ${g[h].heapTotalMiB.toFixed(0)} MiB)`,
        )
        .join(", ");
    const steady = { ...(await footprint(BASELINE_SETTLE_MS)), hops: await hopGauges() };
    console.log(
      `      ${N} connections opened in ${opened.ms} ms; RSS at once nsmgr ${openedRss.nsmgr.toFixed(0)}, forwarder ${openedRss.forwarder.toFixed(0)} MiB; steady state ${showRss(steady.rss, steady.hops)}`,
    );

    const cpu = (): string =>
      [
        ...all.map((m) => `${m.role} ${cpuSeconds(m.program.child.pid).toFixed(1)}`),
        `client ${cpuSeconds(client.child.pid).toFixed(1)}`,
      ].join(", ");
    console.log(`      CPU s after opening: ${cpu()}`);
    const results: FaultResult[] = [];
    for (const role of ["endpoint", "forwarder", "nsmgr", "registry"] as const) {
      // The previous fault's stragglers (connections that heal a second time, seconds after every one was healed)
      // must not count against this fault: start once no heal has started for two polls in a row.
      let heals = -1;
      const before = await until(
        "the previous fault's heals have settled",
        async () => {
          const st = await allHealed();
          const settled = st !== undefined && st.healsStarted === heals;
          heals = st?.healsStarted ?? -1;
          return settled ? st : undefined;
        },
        { timeoutMs: HEAL_TIMEOUT_MS, everyMs: 3_000, describe: describeState },
      );
      const logFrom = Object.fromEntries(HOPS.map((h) => [h, programs[h].program.records.length])) as Record<(typeof HOPS)[number], number>;
      const killedAt = Date.now();
      await programs[role].kill();
      // A deliberate outage, not a wait for state: the program stays down this long.
      await new Promise((r) => setTimeout(r, RESTART_DELAY_MS));
      await programs[role].start();
      const restartedMs = Date.now() - killedAt;
      const healed = await until(`every connection healed after SIGKILL of the ${role}`, allHealed, {
        timeoutMs: HEAL_TIMEOUT_MS,
        describe: describeState,
      });
      if (role === "registry") {
        // What the hops said during the outage (info and above, by message): why anything healed.
        for (const h of HOPS) {
          const said = new Map<string, number>();
          for (const r of programs[h].program.records.slice(logFrom[h])) {
            if (r.level < 30) continue;
            const err = (r.err as { message?: string } | undefined)?.message ?? "";
            const key = `${r.msg}${err ? `: ${err.slice(0, 120)}` : ""}`;
            said.set(key, (said.get(key) ?? 0) + 1);
          }
          for (const [k, n] of [...said].sort((a, b) => b[1] - a[1]).slice(0, 8)) console.log(`        ${h} ×${n}: ${k}`);
        }
        // Nothing on the data path used the registry; a new connection needs it again.
        const probe = await client.send({ op: "probe", service: SERVICE });
        expect(probe.ok).to.equal(1);
      }
      results.push({
        killed: role,
        restartedMs,
        healedMs: Date.now() - killedAt,
        healsStarted: healed.healsStarted - before.healsStarted,
        maxAttempt: healed.maxAttempt,
      });
      const r = results.at(-1) as FaultResult;
      console.log(
        `      SIGKILL ${role}: ${N}/${N} healed ${r.healedMs} ms after the kill, restarted at ${r.restartedMs} ms (${r.healsStarted} client heals, max attempt ${r.maxAttempt}, ${healed.addressesChanged} with other addresses than at open)`,
      );
    }
    const outage = results.find((r) => r.killed === "registry");
    expect(outage?.healsStarted, "client heals during the registry outage (needless: no hop died)").to.be.at.most(REGISTRY_HEALS_MAX);

    // Settle: the restarted programs' first refreshes and watch replacements are done once the timers stop moving
    // and every connection is still (or again: a registry outage closes some late, see the docs) healed.
    const timersNow = async (): Promise<number[]> => {
      const t = await hopTimers();
      return HOPS.map((h) => t[h]);
    };
    let last = await timersNow();
    await until(
      "every connection is healed and the hops' pending timers are back at the steady state",
      async () => {
        const now = await timersNow();
        const stable = now.every((t, i) => t === last[i]);
        last = now;
        if (!stable || HOPS.some((h, i) => (now[i] as number) > steady.timers[h])) return undefined;
        return (await allHealed()) !== undefined ? now : undefined;
      },
      {
        timeoutMs: 90_000,
        everyMs: 1_000,
        describe: async () =>
          `timers ${JSON.stringify(last)} vs ${JSON.stringify(HOPS.map((h) => steady.timers[h]))}; ${await describeState()}`,
      },
    );
    console.log(`      CPU s after the faults (restarted programs count from their restart): ${cpu()}`);
    console.log(`      endpoint refreshes (incl. heal re-requests) since its restart: ${(await programs.endpoint.gauges()).refreshes}`);
    const settledRss = { nsmgr: programs.nsmgr.rss(), forwarder: programs.forwarder.rss() };
    const after = { ...(await footprint(REFRESH_PERIOD_MS)), hops: await hopGauges() };
    console.log(
      `      after the faults: RSS at once nsmgr ${settledRss.nsmgr.toFixed(0)}, forwarder ${settledRss.forwarder.toFixed(0)} MiB; steady state ${showRss(after.rss, after.hops)}; timers ${JSON.stringify(
        HOPS.map((h) => `${h} ${steady.timers[h]}→${after.timers[h]}`),
      )}`,
    );
    for (const h of HOPS) {
      expect(after.hops[h].connections, `${h} connections`).to.equal(N);
      // At most: a discovery cache may hold one entry fewer after the faults (the nsmgr rested at 1,001 in one run,
      // 1,002 in another), and a lost expiry timer shows as a connection that outlives its token, not here.
      expect(after.timers[h], `${h} pending timers at rest`).to.be.at.most(steady.timers[h]);
    }
    expect((await programs.registry.gauges()).nses, "registered endpoints (forwarder, nse)").to.equal(2);
    // The restarted endpoint handed every healing connection its addresses back (and no second pair).
    expect((await client.status()).addressesChanged, "connections whose addresses changed or multiplied").to.equal(0);
    for (const h of ["nsmgr", "forwarder"] as const) {
      const ratio = after.rss[h].peak / steady.rss[h].peak;
      expect(ratio, `${h} peak RSS ${steady.rss[h].peak.toFixed(0)} → ${after.rss[h].peak.toFixed(0)} MiB`).to.be.at.most(RSS_LIMIT);
    }
    expect(
      all.map((m) => [m.role, m.crashes, m.program.running]),
      "no program exited unasked",
    ).to.deep.equal(all.map((m) => [m.role, 0, true]));
    expect(results.map((r) => r.killed)).to.deep.equal(["endpoint", "forwarder", "nsmgr", "registry"]);

    const closed = await client.send({ op: "closeAll", concurrency: CONCURRENCY });
    expect(closed.failed, `Closes failed: ${closed.firstError}`).to.equal(0);
    expect((await client.status()).total).to.equal(0);
    const drained = await until(
      "every hop holds no connection and its timers are back at the idle level",
      async () => {
        const g = await hopGauges();
        return HOPS.every((h) => g[h].connections === 0 && g[h].timers <= idleTimers[h]) ? g : undefined;
      },
      // The hops keep an unused channel and a next hop's monitor stream 30 s after their last connection (each
      // with a timer), so the idle level comes back that long after the last Close, not at once.
      { timeoutMs: 120_000, describe: describeState },
    );
    console.log(
      `      after Close of all: heap used nsmgr ${drained.nsmgr.heapMiB.toFixed(0)} MiB, forwarder ${drained.forwarder.heapMiB.toFixed(0)} MiB; RSS nsmgr ${programs.nsmgr.rss().toFixed(0)} MiB, forwarder ${programs.forwarder.rss().toFixed(0)} MiB`,
    );
    console.log(
      `      closed ${N} in ${closed.ms} ms; timers idle ${JSON.stringify(HOPS.map((h) => `${h} ${idleTimers[h]}→${drained[h].timers}`))}`,
    );
  });
});
