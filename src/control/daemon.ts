// The main thread's control plane put together: the workers, the wanted tenants, the reconciler, following, metrics.
import { LogLevels } from "consola";
import type { Loaded } from "../config/load.ts";
import type { DaemonConfig } from "../config/types.ts";
import { armedFaults } from "../faults.ts";
import { logger } from "../log.ts";
import { Rates } from "../metrics/rates.ts";
import { type MetricSources, takeSnapshot } from "../metrics/snapshot.ts";
import { descriptorLimit } from "../netns/limits.ts";
import { WorkerPool } from "../worker/pool.ts";
import { SharedCounts, sharedCountsBuffer } from "../worker/shared-counts.ts";
import { AdminControl, type LoadOptions } from "./admin-control.ts";
import { FdLimitWatch } from "./fd-limit-watch.ts";
import { Handover, type UpgradeResult } from "./handover.ts";
import { DesiredTenants } from "./desired.ts";
import { Follower } from "./follower.ts";
import { kernelNamespaces } from "./namespaces.ts";
import { Reconciler } from "./reconciler.ts";

export class Daemon {
  readonly startedAt = Date.now();
  /** RLIMIT_NOFILE at start (Bun raises the soft limit to the hard one); the shared counts follow it as it changes. */
  readonly fdLimit = descriptorLimit();
  /** Counters every worker shares: descriptors, and open connections per tenant slot. */
  private readonly countsBuffer = sharedCountsBuffer(this.fdLimit);
  readonly sharedCounts = new SharedCounts(this.countsBuffer);
  private readonly fdWatch = new FdLimitWatch(this.sharedCounts);
  readonly pool: WorkerPool;
  readonly desired: DesiredTenants;
  readonly reconciler: Reconciler;
  /** What the admin API (and SIGHUP) may do. */
  readonly admin: AdminControl;
  /** Rates for `status` and `top`: one sample a second (a sum over the tenant slots of every worker). */
  readonly rates = new Rates();
  private readonly follower: Follower;
  private sampler: ReturnType<typeof setInterval> | undefined;
  /** Upgrades: this generation's number, and the one upgrade at a time it may start. */
  readonly handover: Handover;
  /** Called once a successor has taken over (run.ts drains and exits). */
  onHandedOver: (result: UpgradeResult) => void = () => {};
  /** The start-up attach pass is done and the daemon is not stopping: /readyz answers 200. */
  ready = false;

  constructor(
    readonly config: DaemonConfig,
    loadOptions: LoadOptions,
    loaded: Loaded,
  ) {
    this.pool = new WorkerPool(config.workers, {
      accessLog: config.accessLog,
      debug: logger.level >= LogLevels.debug,
      logFormat: config.logFormat,
      replaceGraceMs: config.shutdownGraceMs,
      engine: config.engine,
      counts: this.countsBuffer,
    });
    this.reconciler = new Reconciler({
      workers: this.pool,
      namespaces: kernelNamespaces,
      fdLimit: this.fdLimit,
      shutdownGraceMs: config.shutdownGraceMs,
      ingressListen: config.ingressListen,
    });
    this.desired = new DesiredTenants(loaded);
    this.follower = new Follower(this.desired, this.reconciler, () => this.handover.busy);
    this.desired.onContainersChanged = () => void this.follower.tick();
    // With ingress listeners, each direction keeps to its share of the descriptor budget (see shared-counts.ts).
    this.sharedCounts.splitBudget(config.ingressListen.length > 0);
    this.handover = new Handover(config.adminSocket, config.metrics.listen?.text);
    this.admin = new AdminControl(this, loadOptions);
    const armed = armedFaults();
    if (armed.length) logger.warn(`fault injection armed (for tests; the release binary ignores it): ${armed.join(", ")}`);
  }

  /** Start the workers. */
  start(): Promise<void> {
    return this.pool.start();
  }

  /** First load: the tenants directory and discovery, then attach everything. Returns the tenant files skipped. */
  async attachAll(): Promise<{ skipped: { file: string; error: string }[] }> {
    const skipped = this.desired.load(this.desired.loaded);
    await this.reconciler.apply(this.desired.all());
    return { skipped };
  }

  /** The ingress host listeners in every worker; the first failure, if any. */
  listenIngress() {
    return this.reconciler.listenIngress();
  }

  /** Follow namespaces and discovery, and sample the rates, until stop. */
  follow(): void {
    this.follower.start();
    this.desired.containerSources.start();
    this.fdWatch.start();
    const sample = () => this.rates.sample(takeSnapshot(this.metricSources(), false), Date.now());
    sample();
    this.sampler = setInterval(sample, 1000);
  }

  stopFollowing(): void {
    this.follower.stop();
    this.desired.containerSources.stop();
    this.fdWatch.stop();
    if (this.sampler) clearInterval(this.sampler);
  }

  /** What the metrics are read from: the workers' buffers, the tenant slots, the shared counts. */
  metricSources(): MetricSources {
    const c = this.reconciler.counts();
    return {
      workerStats: this.pool.workerStats(),
      slotCounters: (slot) => this.pool.slotCounters(slot),
      tenantSlots: this.pool.tenantSlots(),
      openConnections: (slot) => this.sharedCounts.open(slot),
      ingressConnections: (slot) => this.sharedCounts.open(slot, "ingress"),
      states: { serving: c.serving, waiting: c.waiting, failed: c.failed },
      attachFailures: this.reconciler.attachFailures,
      workerReplacements: this.pool.replacements,
      descriptorsLimit: this.sharedCounts.fdLimit,
      ingressOpen: this.sharedCounts.ingressConnections(),
      shares: { egress: this.sharedCounts.shareOf("egress"), ingress: this.sharedCounts.shareOf("ingress") },
      tenantLimit: this.config.metrics.tenantLimit,
    };
  }

  /** Stop accepting everywhere, let in-flight requests finish within the grace period. */
  async stop(): Promise<void> {
    this.ready = false;
    this.reconciler.stop();
    await this.pool.stop(this.config.shutdownGraceMs);
  }
}
