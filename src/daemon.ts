// The supervisor: desired tenants, their state, attach with retry and backoff, and graceful shutdown.
import type { DaemonConfig, TenantSpec } from "./config/types.ts";
import { logger } from "./log.ts";
import { closeFd, NativeError, netnsIdentity, openNetns } from "./netns/native.ts";
import { strayThreads } from "./netns/threads.ts";
import { type AttachFailure, WorkerPool } from "./worker/pool.ts";

export type TenantState = "serving" | "waiting" | "failed";

export interface TenantStatus {
  spec: TenantSpec;
  state: TenantState;
  error?: string;
  /** dev:ino of the namespace it is attached to. */
  identity?: string;
  attempts: number;
  retry?: ReturnType<typeof setTimeout>;
}

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;

/** A namespace that is not there (yet) is "waiting"; anything else that stops an attach is "failed". */
function stateFor(failure: AttachFailure): TenantState {
  return failure.code === "ENOENT" || failure.code === "ENOTNETNS" ? "waiting" : "failed";
}

export class Daemon {
  readonly tenants = new Map<string, TenantStatus>();
  readonly pool: WorkerPool;
  private stopped = false;

  constructor(readonly config: DaemonConfig) {
    this.pool = new WorkerPool(config.workers, {
      accessLog: config.accessLog,
      logFormat: config.logFormat,
      strandTenant: process.env.NSPROXY_FAULT_STRAND_TENANT || undefined,
    });
    this.pool.onReplaced = (index) => void this.reattachWorker(index);
  }

  /** Start the workers and attach every tenant; resolves with the startup summary figures. */
  async start(): Promise<{ attached: number; total: number; ms: number }> {
    const t0 = performance.now();
    await this.pool.start();
    for (const spec of this.config.tenants) this.tenants.set(spec.name, { spec, state: "waiting", attempts: 0 });
    await Promise.all([...this.tenants.values()].map((t) => this.attach(t)));
    this.checkThreads();
    const attached = [...this.tenants.values()].filter((t) => t.state === "serving").length;
    return { attached, total: this.tenants.size, ms: performance.now() - t0 };
  }

  /** Open the namespace (here, on the main thread, before any worker's setns), attach, record the outcome. */
  private async attach(t: TenantStatus, only?: number): Promise<void> {
    t.attempts++;
    let failure: AttachFailure | undefined;
    let fd = -1;
    try {
      fd = openNetns(t.spec.netns);
      const identity = netnsIdentity(fd, t.spec.netns);
      failure = await this.pool.attach(t.spec, fd, only);
      if (!failure) t.identity = identity;
    } catch (err) {
      const e = err as NativeError;
      failure = { message: e.message, code: err instanceof NativeError ? e.code : "ERROR" };
    } finally {
      if (fd >= 0) closeFd(fd);
    }
    if (this.stopped || !this.tenants.has(t.spec.name)) return;
    if (!failure) {
      if (t.state !== "serving" && t.attempts > 1) logger.success(`tenant ${t.spec.name}: serving after ${t.attempts} attempts`);
      t.state = "serving";
      t.error = undefined;
      t.attempts = 0;
      return;
    }
    const previous = t.error;
    t.state = stateFor(failure);
    t.error = failure.message;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(t.attempts - 1, 5));
    // One line per tenant when something goes wrong or changes; repeats of the same failure stay at debug.
    const line = `tenant ${t.spec.name} (netns ${t.spec.netns}): ${failure.message} [${failure.code}]; retrying in ${delay / 1000} s`;
    if (previous === failure.message) logger.debug(line);
    else logger.warn(line);
    t.retry = setTimeout(() => {
      t.retry = undefined;
      void this.attach(t).then(() => this.checkThreads());
    }, delay);
  }

  /** A replaced worker has no listeners: give it those of every serving tenant. */
  private async reattachWorker(index: number): Promise<void> {
    const serving = [...this.tenants.values()].filter((t) => t.state === "serving");
    await Promise.all(serving.map((t) => this.attach(t, index)));
    this.checkThreads();
    logger.info(`worker ${index} replaced; ${serving.length} serving tenant(s) attached to it again`);
  }

  /** The invariant of the window rule, checked cheaply at runtime. A violation is a bug: say so loudly. */
  checkThreads(): void {
    const stray = strayThreads();
    for (const s of stray) logger.error(`thread ${s.tid} is in namespace ${s.netns}, not the process's own: this is a bug in nsproxy`);
  }

  /** Stop accepting everywhere, let in-flight requests finish within the grace period. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.tenants.values()) if (t.retry) clearTimeout(t.retry);
    await this.pool.stop(this.config.shutdownGraceMs);
  }
}
