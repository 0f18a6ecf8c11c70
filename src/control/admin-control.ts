// What the admin API and SIGHUP may do to the running daemon; refusals are ControlErrors (admin/server.ts maps them to HTTP).
import type { DaemonControl, PutResult, ReloadResult, StatsView, StatusView, TenantView, UpgradeResult } from "../admin/types.ts";
import { Invalid } from "../config/layer.ts";
import { type FlagOverrides, type Loaded, loadLayered, resolveTenant } from "../config/load.ts";
import { checkTenantTable, normalizeTenantTable } from "../config/tenant-table.ts";
import type { TenantSpec } from "../config/types.ts";
import { ConfigError } from "../errors.ts";
import { logger } from "../log.ts";
import { exposition } from "../metrics/exposition.ts";
import { idleTenantStats } from "../metrics/rates.ts";
import { openDescriptors, takeSnapshot } from "../metrics/snapshot.ts";
import { removeTenantFile, writeTenantFile } from "../store/tenants-dir.ts";
import { VERSION } from "../version.ts";
import type { Daemon } from "./daemon.ts";
import { clashOf, fieldOf, type NamespaceOf } from "./desired.ts";
import { namespaceKeys } from "../netns/identity.ts";
import { ControlError } from "./errors.ts";
import { sameSpec, type Tenant } from "./tenant.ts";
import { tenantView } from "./tenant-view.ts";

export interface LoadOptions {
  file?: string;
  flags: FlagOverrides;
}

/** Settings read once at start: a reload warns that they changed and keeps them. */
const START_ONLY = ["workers", "tenantsDir", "adminSocket", "logFormat", "accessLog", "seccomp"] as const;

export class AdminControl implements DaemonControl {
  constructor(
    private readonly daemon: Daemon,
    private readonly loadOptions: LoadOptions,
  ) {}

  private get desired() {
    return this.daemon.desired;
  }

  private get reconciler() {
    return this.daemon.reconciler;
  }

  private get config() {
    return this.desired.config;
  }

  status(): StatusView {
    return {
      version: VERSION,
      pid: process.pid,
      uptime_seconds: Math.round((Date.now() - this.daemon.startedAt) / 1000),
      workers: this.config.workers,
      config: this.config.file ?? null,
      tenants_dir: this.config.tenantsDir,
      admin_socket: this.config.adminSocket,
      generation: this.daemon.handover.generation,
      last_upgrade: this.daemon.handover.takenOverAt === undefined ? null : new Date(this.daemon.handover.takenOverAt).toISOString(),
      tenants: this.reconciler.counts(),
      totals: {
        requests_per_second: Math.round(this.daemon.rates.requestsPerSecond * 10) / 10,
        open_connections: this.daemon.sharedCounts.openTotal(this.daemon.pool.tenantSlots().values()) + this.daemon.sharedCounts.ingressConnections(),
        ingress_connections: this.daemon.sharedCounts.ingressConnections(),
        descriptors_open: openDescriptors(),
        descriptors_limit: this.daemon.sharedCounts.fdLimit,
      },
    };
  }

  /** GET /metrics: the Prometheus exposition of one snapshot. */
  metrics(): string {
    return exposition(takeSnapshot(this.daemon.metricSources()));
  }

  /** GET /v1/stats: every tenant's totals and last-second rates, busiest first is the client's choice. */
  stats(): StatsView {
    const snap = takeSnapshot(this.daemon.metricSources(), false);
    const live = this.reconciler.tenants;
    const tenants = this.daemon.rates.view(snap, (name) => live.get(name)?.state ?? "waiting");
    // Tenants that are waiting or failed have no counters yet (no slot until they attach): listed with zeros.
    const seen = new Set(tenants.map((t) => t.name));
    for (const [name, t] of live) if (!seen.has(name)) tenants.push(idleTenantStats(name, t.state));
    return { time: Date.now(), tenants };
  }

  tenants(): TenantView[] {
    return [...this.reconciler.tenants.values()].map((t) => this.view(t)).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  private view(t: Tenant): TenantView {
    return tenantView(t, t.pair === undefined ? undefined : this.reconciler.pairs.pairs.get(t.pair));
  }

  /**
   * What namespace a path names, for the clash check of one request: a serving tenant's path by the
   * identity its attach saw (no syscall: 10,000 stats per add would cost 20-150 ms), any other path by
   * a stat now. A namespace replaced since is caught again when its tenant re-attaches (reconciler claims).
   */
  private namespaceOf(): NamespaceOf {
    const seen = new Map<string, string>();
    for (const t of this.reconciler.tenants.values()) if (t.identity) seen.set(t.spec.netns, t.identity);
    const stat = namespaceKeys();
    return (path) => seen.get(path) ?? stat(path);
  }

  /** While an upgrade is under way, the successor has read the tenants directory: a write now would be lost or doubled. */
  private notUpgrading(): void {
    if (this.daemon.handover.busy) throw new ControlError("unavailable", "upgrade in progress, retry");
  }

  upgrading(): boolean {
    return this.daemon.handover.busy;
  }

  async upgrade(binary?: string): Promise<UpgradeResult> {
    const result = await this.daemon.handover.start(binary);
    // After this answer is on its way: the successor holds the admin socket, this daemon drains.
    setTimeout(() => this.daemon.onHandedOver(result), 0);
    return result;
  }

  async putTenant(name: string, input: unknown): Promise<PutResult> {
    this.notUpgrading();
    const explicit = this.desired.explicit(name);
    if (explicit) {
      const where = explicit.source === "flag" ? "by --netns on the command line" : `in ${this.config.file ?? "the config file"}`;
      throw new ControlError("conflict", `tenant '${name}' is declared ${where}; change it there`);
    }
    let spec: TenantSpec;
    let table: Record<string, unknown>;
    try {
      const ft = checkTenantTable(name, input);
      table = normalizeTenantTable(input as Record<string, unknown>);
      spec = resolveTenant(ft, this.desired.loaded.defaults, "tenants-dir");
    } catch (e) {
      if (e instanceof Invalid) throw new ControlError("invalid", e.message, fieldOf(e));
      throw e;
    }
    // An address or a host another tenant holds is a conflict with that tenant's state (409, naming it).
    const clash = clashOf(spec, this.desired.all(), this.namespaceOf());
    if (clash) throw new ControlError("conflict", clash.message, clash.field);
    const before = this.desired.stored.get(name);
    // A runtime attachment never takes over a tenant the operator added (a pod named after it must not).
    if (before && !before.owner && spec.owner) throw new ControlError("conflict", `tenant '${name}' was added by the operator; ${spec.owner} does not replace it`);
    const { changed } = writeTenantFile(this.config.tenantsDir, name, table);
    this.desired.stored.set(name, spec);
    const r = await this.reconciler.apply(this.desired.all());
    const result = before && !changed && sameSpec(before, spec) && !r.replaced.includes(name) ? "unchanged" : before ? "replaced" : "created";
    logger.info(`tenant ${name}: ${result} (tenants dir)`);
    return { result, tenant: this.view(this.reconciler.tenants.get(name)!) };
  }

  /** `owner`: remove it only if it is still that owner's (a late DEL of an old container must not remove the new one's). */
  async deleteTenant(name: string, owner?: string): Promise<boolean> {
    this.notUpgrading();
    const held = this.desired.stored.get(name);
    if (owner !== undefined && held && held.owner !== owner) {
      throw new ControlError("conflict", `tenant '${name}' belongs to ${held.owner ?? "the operator"}, not ${owner}; left as it is`);
    }
    const explicit = this.desired.explicit(name);
    if (explicit) throw new ControlError("conflict", `tenant '${name}' is declared ${explicit.source === "flag" ? "by --netns" : "in the config file"}; remove it there`);
    const removedFile = removeTenantFile(this.config.tenantsDir, name);
    const wasStored = this.desired.stored.delete(name);
    if (!removedFile && !wasStored) {
      const found = this.desired.discovered.get(name);
      if (found) throw new ControlError("conflict", `tenant '${name}' is discovered from ${found.netns}; it goes when that file does`);
      if (this.desired.containers.has(name)) throw new ControlError("conflict", `tenant '${name}' is a container's (nsproxy.enable label); it goes when the container stops`);
      return false;
    }
    await this.reconciler.apply(this.desired.all());
    logger.info(`tenant ${name}: removed (tenants dir)`);
    return true;
  }

  /** SIGHUP or POST /v1/reload: read everything again, apply only the difference; an invalid config changes nothing. */
  async reload(): Promise<ReloadResult> {
    this.notUpgrading();
    let loaded: Loaded;
    try {
      loaded = loadLayered(this.loadOptions);
    } catch (e) {
      const message = e instanceof ConfigError ? e.message : String(e);
      logger.error(`reload rejected, the running configuration stays: ${message}`);
      throw new ControlError("rejected", `reload rejected, the running configuration stays: ${message}`);
    }
    const keep = this.config;
    for (const key of START_ONLY) {
      if (loaded.config[key] !== keep[key]) logger.warn(`reload: ${key} changed; it takes effect at the next start`);
    }
    // Settings read at start stay as they are; tenants, defaults and discovery follow the new file.
    loaded = {
      ...loaded,
      config: { ...loaded.config, workers: keep.workers, tenantsDir: keep.tenantsDir, adminSocket: keep.adminSocket, logFormat: keep.logFormat, accessLog: keep.accessLog, seccomp: keep.seccomp },
    };
    const skipped = this.desired.load(loaded);
    // Certificates changed on disk since the last look are read now, as a rotation would.
    this.reconciler.pairs.refresh();
    const r = await this.reconciler.apply(this.desired.all());
    logger.info(`reloaded: +${r.added.length} -${r.removed.length} ~${r.replaced.length} tenants, ${r.unchanged} unchanged`);
    return { result: "reloaded", ...r, skipped };
  }
}
