/** Prometheus counters of a DNS server (prom-client), registered in the program's registry when given one. */
import { Counter, type Registry } from "prom-client";

/** Why a packet was dropped without an answer, or answered with an error before any handler ran. */
export type MalformedReason = "undecodable" | "not-a-query" | "question-count" | "oversized";

/** The counters of one DNS server; plain numbers beside the Prometheus series, for tests and logs. */
export interface DnsServerStats {
  /** Queries answered, by response code name. */
  readonly answered: Readonly<Record<string, number>>;
  /** Malformed packets, by reason. */
  readonly malformed: Readonly<Partial<Record<MalformedReason, number>>>;
  /** Queries dropped because too many were in flight. */
  readonly overloaded: number;
}

const RCODE_NAMES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"];

/** Counts a server's traffic. */
export class DnsCounters {
  private readonly answeredN: Record<string, number> = {};
  private readonly malformedN: Partial<Record<MalformedReason, number>> = {};
  private overloadedN = 0;
  private readonly answeredC: Counter<"rcode" | "transport"> | undefined;
  private readonly malformedC: Counter<"reason" | "transport"> | undefined;
  private readonly overloadedC: Counter<"transport"> | undefined;

  /** With `registry`, also registers `nsm_dns_queries_total`, `nsm_dns_malformed_packets_total`, `nsm_dns_dropped_queries_total`. */
  constructor(registry?: Registry) {
    if (!registry) return;
    const existing = <T>(name: string): T | undefined => registry.getSingleMetric(name) as T | undefined;
    // One registry may serve several DNS servers of a program: they share the series.
    this.answeredC =
      existing("nsm_dns_queries_total") ??
      new Counter({
        name: "nsm_dns_queries_total",
        help: "DNS queries answered, by response code",
        labelNames: ["rcode", "transport"],
        registers: [registry],
      });
    this.malformedC =
      existing("nsm_dns_malformed_packets_total") ??
      new Counter({
        name: "nsm_dns_malformed_packets_total",
        help: "DNS packets that were not a well-formed query (dropped, or answered FORMERR), by reason",
        labelNames: ["reason", "transport"],
        registers: [registry],
      });
    this.overloadedC =
      existing("nsm_dns_dropped_queries_total") ??
      new Counter({
        name: "nsm_dns_dropped_queries_total",
        help: "DNS queries dropped because too many were in flight",
        labelNames: ["transport"],
        registers: [registry],
      });
  }

  answered(rcode: number, transport: "udp" | "tcp"): void {
    const name = RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
    this.answeredN[name] = (this.answeredN[name] ?? 0) + 1;
    this.answeredC?.inc({ rcode: name, transport });
  }

  malformed(reason: MalformedReason, transport: "udp" | "tcp"): void {
    this.malformedN[reason] = (this.malformedN[reason] ?? 0) + 1;
    this.malformedC?.inc({ reason, transport });
  }

  overloaded(transport: "udp" | "tcp"): void {
    this.overloadedN++;
    this.overloadedC?.inc({ transport });
  }

  /** A snapshot of the counts. */
  stats(): DnsServerStats {
    return { answered: { ...this.answeredN }, malformed: { ...this.malformedN }, overloaded: this.overloadedN };
  }
}
