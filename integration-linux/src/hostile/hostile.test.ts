import { HealthCheckRequestSchema } from "@nsm-ts/api/health";
import { type Connection, MonitorScopeSelectorSchema } from "@nsm-ts/api/networkservice";
import { NetworkServiceEndpointQuerySchema, NetworkServiceQuerySchema } from "@nsm-ts/api/registry";
import { devIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator, formatExpires } from "@nsm-ts/base/token";
import { client, mechanisms, type NsmClient } from "@nsm-ts/sdk/networkservice";
import { expect } from "chai";
import fc from "fast-check";
import { type Program, type ProgramSet, startEndpoint, startNode, startRegistry, useProgramSet } from "../programs/harness.js";
import { bin, devShots, validMessages } from "./dev-shots.fixture.js";
import { bounded, ChurningClient, codeName, grpc, M, type RawCall, rawCall, rssMiB, STREAMS, Tally } from "./hostile.fixture.js";

const S = grpc.status;
/** Calls of the barrage (at least); `NSM_HOSTILE_CALLS` raises it for a longer soak. */
const TARGET_CALLS = Number(process.env.NSM_HOSTILE_CALLS ?? 12_000);
/** The barrage stops starting new calls after this long, whatever the count. */
const BUDGET_MS = 55_000;
const CONCURRENCY = 32;
/** A new channel (a new connection) every this many calls per target. */
const CHURN = 40;
const RSS_LIMIT_MIB = 400;
const SEED = Number(process.env.NSM_HOSTILE_SEED ?? 20240518);

const REGISTRY_METHODS = [M.nsRegister, M.nsFind, M.nsUnregister, M.nseRegister, M.nseFind, M.nseUnregister, M.check, M.watch];
const NS_METHODS = [M.request, M.close, M.monitor, M.check, M.watch];

/** One planned hostile call: its kind (for the tally), where it goes and what it sends. */
interface Shot extends RawCall {
  kind: string;
  target: string;
}

describe("hostile input: the programs answer every malformed or hostile call and keep serving", function () {
  this.timeout(120_000);
  let set: ProgramSet;
  let nsc: NsmClient | undefined;
  const clients = new Map<string, ChurningClient>();
  afterEach(async () => {
    for (const c of clients.values()) c.close();
    clients.clear();
    await nsc?.dispose().catch(() => undefined);
    nsc = undefined;
  });
  useProgramSet((s) => {
    set = s;
  });

  it("≥ 10,000 hostile calls: every call ends with an expected status, no program exits, the canary never fails, RSS stays bounded", async () => {
    const started = Date.now();
    const { registry, url: registryUrl } = await startRegistry(set);
    const node = await startNode(set, 1, registryUrl);
    const nse = await startEndpoint(set, "nse-1", node.socket, "svc-canary");
    const endpointSocket = set.socket("nse-1.sock");
    const forwarderSocket = set.socket("forwarder-1.sock");
    const programs: Program[] = [registry, node.nsmgr, node.forwarder, nse];

    // The canary: a real client whose connection is re-requested every second during the barrage.
    const tokenGenerator = createTokenGenerator(await devIdentity("nsc-canary"), { maxTokenLifetimeMs: 5_000 });
    nsc = client({ name: "nsc-canary", connectTo: node.socket, tokenGenerator, insecure: true, refresh: false, heal: false });
    const noop = mechanisms.noop.mechanism();
    let conn: Connection = await nsc.request(
      { connection: { networkService: "svc-canary" }, mechanismPreferences: [noop] },
      { timeoutMs: 20_000 },
    );
    expect(conn.networkServiceEndpointName).to.equal("nse-1");
    const canaryConn = conn;

    const rssBefore = programs.map((p) => rssMiB(p.child.pid));
    const valid = validMessages();
    const rand = fc.sample(fc.uint8Array({ maxLength: 600 }), { numRuns: 2_000, seed: SEED });
    let r = SEED >>> 0;
    const next = (n: number): number => {
      r = (Math.imul(r, 1_664_525) + 1_013_904_223) >>> 0;
      return r % n;
    };
    const pick = <T>(xs: readonly T[]): T => xs[next(xs.length)] as T;

    const { oversized, timestamps, spoofed, foreign } = devShots({
      registryUrl,
      nodeSocket: node.socket,
      endpointSocket,
      forwarderSocket,
      canary: canaryConn,
    });
    const past = formatExpires(new Date(Date.now() - 3_600_000));
    const future = formatExpires(new Date(Date.now() + 3_600_000));
    const expiredReal = await createTokenGenerator(await devIdentity("intruder"), { maxTokenLifetimeMs: 1_000 })();
    const tokenMd: Array<Record<string, string>> = [
      { "nsm-client-token": "forged", "nsm-client-token-expires": future },
      { "nsm-client-token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzcGlmZmU6Ly9ldmlsIiwiZXhwIjoxfQ.", "nsm-client-token-expires": past },
      { "nsm-client-token": expiredReal.token, "nsm-client-token-expires": past },
      { "nsm-client-token": "x".repeat(6_000), "nsm-client-token-expires": "not a time" },
      { "nsm-client-token-expires": "9999-99-99T99:99:99Z" },
    ];

    // The plan, generated lazily so the barrage is bounded by count and by time.
    const tally = new Tally();
    const detail = new Tally();
    const deadline = started + BUDGET_MS;
    const regTargets = [registryUrl, node.socket];
    const nsTargets = [node.socket, endpointSocket, forwarderSocket];
    const label = (t: string): string =>
      t === registryUrl
        ? "registry"
        : t === node.socket
          ? "nsmgr"
          : t === endpointSocket
            ? "endpoint"
            : t === forwarderSocket
              ? "forwarder"
              : t;
    function* plan(): Generator<Shot> {
      for (const o of oversized)
        for (let i = 0; i < 3; i++)
          yield { kind: "oversized", ...o, stream: STREAMS.has(o.path), cancelAfterMs: STREAMS.has(o.path) ? 2_000 : undefined };
      for (const o of foreign) for (let i = 0; i < 20; i++) yield { kind: "foreign-close/unregister", ...o, stream: false };
      for (let n = 0; n < TARGET_CALLS && Date.now() < deadline; n++) {
        const k = n % 10;
        if (k <= 2) {
          const target = pick([...regTargets, ...nsTargets]);
          const path = pick(regTargets.includes(target) ? REGISTRY_METHODS : NS_METHODS);
          yield {
            kind: `random-bytes/${label(target)}`,
            target,
            path,
            stream: STREAMS.has(path),
            bytes: pick(rand),
            cancelAfterMs: STREAMS.has(path) ? 50 : undefined,
          };
        } else if (k <= 4) {
          const target = pick([...regTargets, ...nsTargets]);
          const path = pick(regTargets.includes(target) ? REGISTRY_METHODS : NS_METHODS);
          const whole = valid[path] as Uint8Array;
          yield {
            kind: "truncated",
            target,
            path,
            stream: STREAMS.has(path),
            bytes: whole.subarray(0, next(whole.length)),
            cancelAfterMs: STREAMS.has(path) ? 50 : undefined,
          };
        } else if (k === 5) {
          const s = pick([...timestamps, ...spoofed]);
          yield {
            kind:
              s.path === M.close || s.path === M.request
                ? timestamps.includes(s)
                  ? "absurd-timestamps"
                  : "spoofed-path"
                : "absurd-timestamps",
            ...s,
            stream: false,
          };
        } else if (k === 6) {
          const target = pick([...regTargets, ...nsTargets]);
          const path = pick(regTargets.includes(target) ? [M.nsRegister, M.nseRegister, M.nseUnregister, M.nsFind] : [M.request, M.close]);
          yield {
            kind: "forged-tokens",
            target,
            path,
            stream: STREAMS.has(path),
            bytes: valid[path] as Uint8Array,
            metadata: pick(tokenMd),
          };
        } else if (k === 7) {
          const target = pick(regTargets);
          const path = pick([M.nsFind, M.nseFind]);
          const bytes =
            path === M.nsFind
              ? bin(NetworkServiceQuerySchema, { networkService: {}, watch: true })
              : bin(NetworkServiceEndpointQuerySchema, { networkServiceEndpoint: {}, watch: true });
          yield { kind: "find-watch-cancelled", target, path, stream: true, bytes, cancelAfterMs: next(3) * 10 };
        } else if (k === 8) {
          const target = pick(nsTargets);
          yield {
            kind: "monitor-cancelled",
            target,
            path: M.monitor,
            stream: true,
            bytes: bin(MonitorScopeSelectorSchema, {}),
            cancelAfterMs: next(3) * 10,
          };
        } else {
          const target = pick([...regTargets, ...nsTargets]);
          const watch = next(2) === 0;
          const bytes = bin(HealthCheckRequestSchema, { service: pick(["", "x".repeat(5_000), "\u0000\uffff", "grpc.health.v1.Health"]) });
          yield { kind: "health", target, path: watch ? M.watch : M.check, stream: watch, bytes, cancelAfterMs: watch ? 0 : undefined };
        }
      }
    }
    const clientOf = (target: string): ChurningClient => {
      let c = clients.get(target);
      if (!c) {
        c = new ChurningClient(target, CHURN);
        clients.set(target, c);
      }
      return c;
    };

    // The canary loop: re-request every second until the barrage ends.
    const canary = { ok: 0, failed: [] as string[] };
    let barrageDone = false;
    const canaryLoop = (async () => {
      while (!barrageDone) {
        const t0 = Date.now();
        try {
          conn = await (nsc as NsmClient).request({ connection: conn, mechanismPreferences: [noop] }, { timeoutMs: 10_000 });
          canary.ok++;
        } catch (e) {
          canary.failed.push(String(e));
        }
        await new Promise((res) => setTimeout(res, Math.max(0, 1_000 - (Date.now() - t0))));
      }
    })();

    const barrageStart = Date.now();
    await bounded(
      (function* () {
        for (const shot of plan()) {
          yield async () => {
            const code = await clientOf(shot.target).use((c) => rawCall(c, shot));
            tally.add(shot.kind, code);
            detail.add(`${shot.kind} ${shot.path.slice(shot.path.lastIndexOf(".") + 1)}@${label(shot.target)}`, code);
          };
        }
      })(),
      CONCURRENCY,
    );
    const barrageMs = Date.now() - barrageStart;
    barrageDone = true;
    await canaryLoop;
    // One more re-request after the barrage: the canary's connection is still whole.
    conn = await nsc.request({ connection: conn, mechanismPreferences: [noop] }, { timeoutMs: 10_000 });
    expect(conn.id).to.equal(canaryConn.id);
    const rssAfter = programs.map((p) => rssMiB(p.child.pid));

    // Report.
    const total = tally.calls();
    console.log(
      `      hostile: ${total} calls in ${barrageMs} ms (${Math.round((total * 1000) / barrageMs)}/s, ${CONCURRENCY} in flight, new channel every ${CHURN} calls, seed ${SEED})`,
    );
    for (const line of tally.lines()) console.log(`      ${line}`);
    console.log(`      canary: ${canary.ok} re-requests ok, ${canary.failed.length} failed`);
    programs.forEach((p, i) => {
      console.log(`      RSS ${p.name}: ${rssBefore[i]?.toFixed(0)} → ${rssAfter[i]?.toFixed(0)} MiB`);
    });

    // Codes each kind may end with; anything else is printed as a finding. A code in `never` fails the test.
    const decode = [
      S.INVALID_ARGUMENT,
      S.PERMISSION_DENIED,
      S.NOT_FOUND,
      S.CANCELLED,
      S.OK,
      S.UNAUTHENTICATED,
      S.RESOURCE_EXHAUSTED,
      S.FAILED_PRECONDITION,
    ];
    const expected: Record<string, grpc.status[]> = {
      oversized: [S.INVALID_ARGUMENT, S.RESOURCE_EXHAUSTED, S.CANCELLED],
      "foreign-close/unregister": [S.PERMISSION_DENIED, S.INVALID_ARGUMENT, S.NOT_FOUND, S.UNAUTHENTICATED, S.OK],
      "random-bytes/registry": decode,
      "random-bytes/nsmgr": decode,
      "random-bytes/endpoint": decode,
      "random-bytes/forwarder": decode,
      truncated: decode,
      "absurd-timestamps": [S.INVALID_ARGUMENT, S.PERMISSION_DENIED],
      "spoofed-path": [S.INVALID_ARGUMENT, S.PERMISSION_DENIED, S.NOT_FOUND, S.OK],
      "forged-tokens": [S.PERMISSION_DENIED, S.UNAUTHENTICATED, S.INVALID_ARGUMENT, S.NOT_FOUND, S.OK],
      "find-watch-cancelled": [S.CANCELLED, S.OK],
      "monitor-cancelled": [S.CANCELLED, S.OK, S.PERMISSION_DENIED],
      health: [S.OK, S.CANCELLED, S.NOT_FOUND, S.INVALID_ARGUMENT],
    };
    // A server that stops answering (UNAVAILABLE, DEADLINE_EXCEEDED) or throws an unmapped error (UNKNOWN) fails.
    const never = [S.UNAVAILABLE, S.DEADLINE_EXCEEDED, S.UNKNOWN];
    // Findings: per kind and code outside its set, where they came from (method@program).
    const findings = new Map<string, { n: number; at: string[] }>();
    for (const [kindAt, m] of detail.kinds) {
      const kind = kindAt.slice(0, kindAt.indexOf(" "));
      for (const [code, n] of m) {
        if ((expected[kind] ?? []).includes(code)) continue;
        const key = `${kind}: ${codeName(code)}`;
        const f = findings.get(key) ?? { n: 0, at: [] };
        f.n += n;
        f.at.push(kindAt.slice(kind.length + 1));
        findings.set(key, f);
      }
    }
    if (findings.size > 0) console.log("      findings (codes outside the expected set):");
    for (const [key, f] of findings) {
      const more = f.at.length > 3 ? `, … (${f.at.length} method@program pairs)` : "";
      console.log(`        ${key}×${f.n} at ${f.at.slice(0, 3).join(", ")}${more}`);
    }
    // Where the hostile calls that succeeded were accepted (a Close of a connection that is not the caller's, a
    // call with a forged token, a spoofed path).
    for (const [kindAt, m] of detail.kinds) {
      if (/^(foreign|forged|spoofed)/.test(kindAt) && m.get(S.OK)) console.log(`        accepted: ${kindAt} OK×${m.get(S.OK)}`);
    }
    for (const [kind, m] of tally.kinds) {
      for (const code of never) expect(m.get(code) ?? 0, `${kind}: ${codeName(code)}`).to.equal(0);
    }
    expect(total).to.be.at.least(10_000);
    for (const p of programs) expect(p.running, `${p.name} exited:\n${p.output()}`).to.equal(true);
    expect(set.running()).to.equal(programs.length);
    expect(canary.failed, canary.failed.join("\n")).to.deep.equal([]);
    expect(canary.ok).to.be.at.least(Math.floor(barrageMs / 1_000) - 1);
    for (const [i, mib] of rssAfter.entries()) expect(mib, `${programs[i]?.name} RSS`).to.be.below(RSS_LIMIT_MIB);
  });
});
