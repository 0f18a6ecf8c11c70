// The descriptor limit as it is now: re-read twice a second (an operator's prlimit, a limits change) and stated to the workers' budget.
import { logger } from "../log.ts";
import { openDescriptors } from "../metrics/snapshot.ts";
import { descriptorLimitReader } from "../netns/limits.ts";
import type { SharedCounts } from "../worker/shared-counts.ts";

export const WATCH_MS = 500;
/** At most one line per this long: a limit that flaps is told as it stands when the quiet ends. */
const LOG_EVERY_MS = 10_000;

export class FdLimitWatch {
  private timer: ReturnType<typeof setInterval> | undefined;
  /** The limit the last line told (or the one at start). */
  private told: number;
  private toldAt = 0;
  private readonly reader = descriptorLimitReader();

  constructor(
    private readonly counts: SharedCounts,
    private readonly read: () => number | undefined = () => this.reader.read(),
    private readonly log: (line: string) => void = (line) => logger.warn(line),
  ) {
    this.told = counts.fdLimit;
  }

  start(): void {
    this.timer ??= setInterval(() => this.tick(Date.now()), WATCH_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.reader.close();
  }

  /** Read the limit (one small /proc read: cheap), state it to the workers, and say so when it changed. */
  tick(now: number): void {
    const read = this.read();
    if (read === undefined) return;
    const limit = Math.min(read, 0x7fffffff);
    this.counts.setFdLimit(limit);
    if (limit === this.told || now - this.toldAt < LOG_EVERY_MS) return;
    const was = this.told;
    this.told = limit;
    this.toldAt = now;
    const over = this.counts.excess > 0;
    const open = openDescriptors(); // NaN at the limit itself: no descriptor left to list them
    this.log(
      `descriptor limit (RLIMIT_NOFILE) changed from ${was} to ${limit}, ${Number.isFinite(open) ? open : "?"} open: connections may now hold ${Math.max(0, this.counts.budget)}` +
        (over ? "; idle connections over it are closed (ingress first) and new ones refused until the use fits" : ""),
    );
  }
}
