/** heal: the per-connection heal state — what `status()` reads and `onStatus` is told — and the element's surface. */
import type { NetworkServiceClient } from "../../core/types.js";

/** A connection's heal state: CONNECTED (watched, or unwatchable), HEALING, or CLOSED (last report only). */
export interface HealStatus {
  /** The connection id. */
  connId: string;
  state: "CONNECTED" | "HEALING" | "CLOSED";
  /** The heal attempt under way or last made (0 when not healing). */
  attempt: number;
  /** What started the heal (`down`, `lost`, `dead`). */
  trigger?: string;
  /** Whether the attempts ask for another endpoint (reselect) rather than the same one. */
  reselect?: boolean;
  /** When the heal started (ms since the epoch on the chain's clock). */
  sinceMs?: number;
  /** When the next attempt is due, while waiting between attempts (ms since the epoch on the chain's clock). */
  nextAttemptAtMs?: number;
  /** The previous attempt's error message. */
  lastError?: string;
}

/** The heal element plus resource control. */
export interface HealClient extends NetworkServiceClient {
  /** Number of connections being watched or healed (tests check it drops to 0 after Close). */
  readonly watching: number;
  /** Heal state of every connection this element knows (CONNECTED or HEALING), or of one connection. */
  status(): HealStatus[];
  status(connId: string): HealStatus | undefined;
  /** Ends every watch and closes the element's own pool (not a pool passed in). */
  dispose(): void;
}

/** What speaks for a connection's state (a watch): ending it reports the connection CLOSED. */
export interface StatusOwner {
  end(): void;
}

/** Per connection id, the owner that speaks for it and its state; every change goes to `onStatus`. */
export class HealStatuses {
  private readonly byConn = new Map<string, { owner: StatusOwner; status: HealStatus }>();

  constructor(private readonly onStatus: (status: HealStatus) => void) {}

  /** Forgets the connection's owner: the next `report` for it (by a new watch) speaks for it from then on. */
  takeOver(connId: string): void {
    this.byConn.delete(connId);
  }

  /** Records (and reports) the connection's state, unless another owner has taken the connection over. */
  report(owner: StatusOwner, status: HealStatus): void {
    const st = this.byConn.get(status.connId);
    if (st !== undefined && st.owner !== owner) return;
    this.byConn.set(status.connId, { owner, status });
    this.onStatus({ ...status });
  }

  /** `owner` ends: unless a newer owner speaks for the connection now, it is gone and reported CLOSED. */
  release(owner: StatusOwner, connId: string): void {
    const st = this.byConn.get(connId);
    if (st?.owner === owner) {
      this.byConn.delete(connId);
      this.onStatus({ connId, state: "CLOSED", attempt: 0 });
    }
  }

  /** A copy of one connection's state. */
  get(connId: string): HealStatus | undefined {
    const st = this.byConn.get(connId)?.status;
    return st && { ...st };
  }

  /** Copies of every connection's state. */
  list(): HealStatus[] {
    return [...this.byConn.values()].map((s) => ({ ...s.status }));
  }

  /** Every owner (dispose ends them). */
  owners(): StatusOwner[] {
    return [...this.byConn.values()].map((s) => s.owner);
  }
}
