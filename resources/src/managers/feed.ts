/**
 * The change feeds of a shared store: other replicas' allocations and releases reach this replica's bitmaps. A
 * feed starts at most once per kind; without one (an exclusive store, a store with no `watchKind`, a watch
 * that failed) replicas learn of each other's addresses by conflicts, which the store's compares decide.
 */
import type { Logger } from "@nsm-ts/base/log";
import type { ResourceKind, ResourceStore } from "../store.js";

/** Started once per kind on shared stores (internal). */
export class ChangeFeeds {
  private readonly feeds = new Map<ResourceKind, Promise<void>>();

  constructor(
    private readonly store: ResourceStore,
    private readonly log: Logger,
  ) {}

  /** Subscribes `onChange` to the store's changes of `kind` (shared stores with a feed only; a failed feed is tried again next time). */
  async follow(kind: ResourceKind, onChange: (id: string, deleted: boolean) => void): Promise<void> {
    const watch = this.store.watchKind;
    if (this.store.exclusive || watch === undefined) return;
    let feed = this.feeds.get(kind);
    if (feed === undefined) {
      feed = watch.call(this.store, kind, onChange).then(
        () => undefined,
        (err: unknown) => {
          this.feeds.delete(kind);
          this.log.warn({ err, kind }, "resources: no change feed; replicas learn of each other's addresses by conflicts");
        },
      );
      this.feeds.set(kind, feed);
    }
    await feed;
  }
}
