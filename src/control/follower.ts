// Following the host: a poll once a second, sooner on a file-system event, runs discovery then the namespace check.
import { type FSWatcher, watch } from "node:fs";
import { dirname } from "node:path";
import { logger } from "../log.ts";
import type { DesiredTenants } from "./desired.ts";
import type { Reconciler } from "./reconciler.ts";

/** How often namespaces and discovery directories are looked at when no file-system event says so sooner. */
const POLL_MS = 1000;
/** Grace for the connections of a tenant whose discovered file went away. */
const UNDISCOVERED_GRACE_MS = 1000;
/** The least time between the end of one pass and a pass for a file-system event. */
const EVENT_GAP_MS = 20;
/** A pass for an event waits this many times as long as the last pass took: passes take at most a tenth of the main thread. */
const EVENT_GAP_FACTOR = 9;

export class Follower {
  private watchers: FSWatcher[] = [];
  private timer?: ReturnType<typeof setInterval>;
  private ticking = false;
  private again = false;
  private soonTimer?: ReturnType<typeof setTimeout>;
  private lastEnd = 0;
  private lastPassMs = 0;

  constructor(
    private readonly desired: DesiredTenants,
    private readonly reconciler: Reconciler,
    /** While an upgrade hands over, the tenants directory is the successor's to read: no file is removed. */
    private readonly upgrading: () => boolean = () => false,
  ) {}

  /** Poll, and react sooner to file-system events in the directories that hold namespace files. */
  start(): void {
    this.timer = setInterval(() => void this.tick(), POLL_MS);
    // Deno's watcher thread opens what is created in a watched directory: a FIFO dropped there blocks it for good,
    // and the process then cannot exit. The poll alone follows the host there.
    if ("Deno" in globalThis) return;
    const dirs = new Set<string>(["/run/netns", ...this.desired.config.discover.map((d) => d.dir)]);
    for (const t of this.reconciler.tenants.values()) if (!t.spec.netns.startsWith("/proc/")) dirs.add(dirname(t.spec.netns));
    for (const dir of dirs) {
      try {
        this.watchers.push(watch(dir, () => this.soon()));
      } catch {
        // Missing or not watchable (procfs): the poll covers it.
      }
    }
  }

  /**
   * A pass for a file-system event, soon rather than at once: `ip netns add` run 5,000 times is 10,000 events,
   * and a pass for each (a directory read each) kept the main thread busy for seconds, the admin API waiting
   * behind it (measured: 12.5 s for /v1/status). Events within the gap share one pass.
   */
  private soon(): void {
    if (this.soonTimer) return;
    const gap = Math.max(EVENT_GAP_MS, this.lastPassMs * EVENT_GAP_FACTOR);
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined;
      void this.tick();
    }, Math.max(0, this.lastEnd + gap - performance.now()));
  }

  /** One pass: discovery, then namespace identity. Never two at once; an event during a pass runs one more. */
  async tick(): Promise<void> {
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    const started = performance.now();
    try {
      do {
        this.again = false;
        // Every scan runs every pass: each takes in its own source's changes.
        const discovered = this.desired.scanDiscovery();
        const containers = this.desired.scanContainers();
        const orphans = this.upgrading() ? [] : this.desired.dropOrphans();
        if (discovered || containers || orphans.length) {
          const r = await this.reconciler.apply(this.desired.all(), UNDISCOVERED_GRACE_MS);
          if ((discovered || containers) && (r.added.length || r.removed.length)) logger.info(`discover: +${r.added.length} -${r.removed.length} tenants (${this.reconciler.tenants.size} in all)`);
        }
        await this.reconciler.followNamespaces();
      } while (this.again);
    } catch (err) {
      logger.error(`following namespaces: ${(err as Error).message}`);
    } finally {
      this.ticking = false;
      this.lastEnd = performance.now();
      this.lastPassMs = this.lastEnd - started;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.soonTimer) clearTimeout(this.soonTimer);
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }
}
