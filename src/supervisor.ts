// Where the desired tenants come from — config, flags, tenants directory, discovery — and the admin operations on them.
import { type FSWatcher, watch } from "node:fs";
import { dirname } from "node:path";
import { AdminError, type DaemonControl, type PutResult, type ReloadResult, type StatsView, type StatusView, type TenantView } from "./admin/types.ts";
import { Invalid } from "./config/layer.ts";
import { exposition } from "./metrics/exposition.ts";
import { idleTenantStats, Rates } from "./metrics/rates.ts";
import { openDescriptors, takeSnapshot } from "./metrics/snapshot.ts";
import { canonicalHost } from "./config/listeners.ts";
import { type FlagOverrides, type Loaded, loadLayered, resolveTenant } from "./config/load.ts";
import { checkTenantTable, normalizeTenantTable } from "./config/tenant-table.ts";
import type { TenantSpec } from "./config/types.ts";
import { type Daemon, type PairState, sameSpec, type Tenant } from "./daemon.ts";
import { discover } from "./discover.ts";
import { ConfigError } from "./errors.ts";
import { logger } from "./log.ts";
import { readTenantsDir, removeTenantFile, writeTenantFile } from "./store/tenants-dir.ts";
import { VERSION } from "./version.ts";

/** How often namespaces and discovery directories are looked at when no file-system event says so sooner. */
const POLL_MS = 1000;

export interface LoadOptions {
  file?: string;
  flags: FlagOverrides;
}

function fieldOf(e: Invalid): string {
  return Array.isArray(e.at) ? e.at.join(".") : e.at;
}

/** Two tenants may not listen on one address in one namespace (SO_REUSEPORT would split the traffic). */
function listenerClash(spec: TenantSpec, others: Iterable<TenantSpec>): string | undefined {
  for (const o of others) {
    if (o.name === spec.name || o.netns !== spec.netns) continue;
    const taken = spec.listen.find((l) => o.listen.some((m) => m.port === l.port && canonicalHost(m.host) === canonicalHost(l.host)));
    if (taken) return `tenant '${o.name}' already listens on ${taken.text} in ${spec.netns}`;
  }
  return undefined;
}

/** Two tenants may not claim one ingress host: the one declared first keeps it. */
export function ingressClash(spec: TenantSpec, others: Iterable<TenantSpec>): string | undefined {
  const mine = spec.ingress?.hosts;
  if (!mine?.length) return undefined;
  for (const o of others) {
    if (o.name === spec.name || !o.ingress) continue;
    const taken = mine.find((h) => o.ingress!.hosts.includes(h));
    if (taken) return `ingress host ${taken} already belongs to tenant '${o.name}'`;
  }
  return undefined;
}

/** Read the tenants directory against `loaded`'s defaults; files that are bad or clash are skipped, each with its reason. */
export function readStoredTenants(loaded: Loaded): { stored: Map<string, TenantSpec>; skipped: { file: string; error: string }[] } {
  const { tenants, skipped } = readTenantsDir(loaded.config.tenantsDir);
  const stored = new Map<string, TenantSpec>();
  const explicit = new Map(loaded.config.tenants.map((t) => [t.name, t]));
  for (const t of tenants) {
    const taken = explicit.get(t.name);
    if (taken) {
      skipped.push({ file: t.file, error: `tenant '${t.name}' is also declared ${taken.source === "flag" ? "by --netns" : "in the config file"}, which wins` });
      continue;
    }
    try {
      const spec = resolveTenant(t.tenant, loaded.defaults, "tenants-dir");
      const clash = listenerClash(spec, [...explicit.values(), ...stored.values()]) ?? ingressClash(spec, [...explicit.values(), ...stored.values()]);
      if (clash) skipped.push({ file: t.file, error: clash });
      else stored.set(t.name, spec);
    } catch (e) {
      if (!(e instanceof Invalid)) throw e;
      skipped.push({ file: t.file, error: `${fieldOf(e)}: ${e.message}` });
    }
  }
  return { stored, skipped };
}

export class Supervisor implements DaemonControl {
  private readonly rates = new Rates();
  private sampler: ReturnType<typeof setInterval> | undefined;
  /** Tenants of the tenants directory, resolved against the current defaults. */
  private stored = new Map<string, TenantSpec>();
  private discovered = new Map<string, TenantSpec>();
  private readonly reportedSkips = new Set<string>();
  private watchers: FSWatcher[] = [];
  private timer?: ReturnType<typeof setInterval>;
  private ticking = false;
  private again = false;

  constructor(
    private readonly daemon: Daemon,
    private readonly loadOptions: LoadOptions,
    private loaded: Loaded,
  ) {}

  private get config() {
    return this.loaded.config;
  }

  /** Every tenant that should be live now. Precedence on a name: config and flags, then the tenants directory, then discovery. */
  desired(): TenantSpec[] {
    const out = new Map<string, TenantSpec>(this.config.tenants.map((t) => [t.name, t]));
    for (const [name, t] of this.stored) if (!out.has(name)) out.set(name, t);
    for (const [name, t] of this.discovered) if (!out.has(name)) out.set(name, t);
    return [...out.values()];
  }

  /** Scan the discover directories; true when the set of discovered tenants changed. */
  private scanDiscovery(): boolean {
    if (this.config.discover.length === 0 && this.discovered.size === 0) return false;
    let found: ReturnType<typeof discover>;
    try {
      found = discover(this.config.discover, (path, why) => {
        if (this.reportedSkips.has(path)) return;
        this.reportedSkips.add(path);
        logger.warn(`discover: skipping ${path}: ${why}`);
      });
    } catch (err) {
      // Keep what was found before: a directory we cannot read now is not an empty one.
      const message = (err as Error).message;
      if (!this.reportedSkips.has(message)) {
        this.reportedSkips.add(message);
        logger.warn(`discover: cannot read a discover directory (${message}); keeping the ${this.discovered.size} tenants found before`);
      }
      return false;
    }
    const next = new Map<string, TenantSpec>();
    for (const d of found.values()) {
      // Keep the spec of a file seen before: resolving 10,000 of them on every pass was the cost of a pass.
      const known = this.discovered.get(d.name);
      if (known && known.netns === d.netns) {
        next.set(d.name, known);
        continue;
      }
      try {
        next.set(d.name, resolveTenant({ name: d.name, netns: d.netns, layer: { headers: new Map(), at: {} } }, this.loaded.defaults, "discover"));
      } catch (e) {
        if (!(e instanceof Invalid)) throw e;
        if (!this.reportedSkips.has(d.netns)) {
          this.reportedSkips.add(d.netns);
          logger.error(`discover: cannot serve ${d.netns}: ${e.message}`);
        }
      }
    }
    const changed = next.size !== this.discovered.size || [...next].some(([n, s]) => this.discovered.get(n) !== s);
    this.discovered = next;
    return changed;
  }

  /** First load: the tenants directory and discovery, then attach everything. */
  async start(): Promise<{ skipped: { file: string; error: string }[] }> {
    const { stored, skipped } = readStoredTenants(this.loaded);
    for (const s of skipped) logger.error(`tenants dir: skipping ${s.file}: ${s.error}`);
    this.stored = stored;
    this.scanDiscovery();
    await this.daemon.apply(this.desired());
    return { skipped };
  }

  /** Poll, and react sooner to file-system events in the directories that hold namespace files. */
  follow(): void {
    this.timer = setInterval(() => void this.tick(), POLL_MS);
    // Rates for `status` and `top`: one sample a second (a sum over the tenant slots of every worker).
    const sample = () => this.rates.sample(takeSnapshot(this.daemon.metricSources(), false), Date.now());
    sample();
    this.sampler = setInterval(sample, 1000);
    const dirs = new Set<string>(["/run/netns", ...this.config.discover.map((d) => d.dir)]);
    for (const t of this.daemon.tenants.values()) if (!t.spec.netns.startsWith("/proc/")) dirs.add(dirname(t.spec.netns));
    for (const dir of dirs) {
      try {
        this.watchers.push(watch(dir, () => void this.tick()));
      } catch {
        // Missing or not watchable (procfs): the poll covers it.
      }
    }
  }

  /** One pass: discovery, then namespace identity. Never two at once; an event during a pass runs one more. */
  async tick(): Promise<void> {
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    try {
      do {
        this.again = false;
        if (this.scanDiscovery()) {
          const r = await this.daemon.apply(this.desired(), 1000);
          if (r.added.length || r.removed.length) logger.info(`discover: +${r.added.length} -${r.removed.length} tenants (${this.daemon.tenants.size} in all)`);
        }
        await this.daemon.followNamespaces();
      } while (this.again);
    } catch (err) {
      logger.error(`following namespaces: ${(err as Error).message}`);
    } finally {
      this.ticking = false;
    }
  }

  stopFollowing(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.sampler) clearInterval(this.sampler);
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }

  // ---- DaemonControl: what the admin interface and SIGHUP call ----

  status(): StatusView {
    return {
      version: VERSION,
      pid: process.pid,
      uptime_seconds: Math.round((Date.now() - this.daemon.startedAt) / 1000),
      workers: this.config.workers,
      config: this.config.file ?? null,
      tenants_dir: this.config.tenantsDir,
      admin_socket: this.config.adminSocket,
      tenants: this.daemon.counts(),
      totals: {
        requests_per_second: Math.round(this.rates.requestsPerSecond * 10) / 10,
        open_connections: this.daemon.sharedCounts.openTotal(this.daemon.pool.tenantSlots().values()),
        descriptors_open: openDescriptors(),
        descriptors_limit: this.daemon.fdLimit,
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
    const tenants = this.rates.view(snap, (name) => this.daemon.tenants.get(name)?.state ?? "waiting");
    // Tenants that are waiting or failed have no counters yet (no slot until they attach): listed with zeros.
    const seen = new Set(tenants.map((t) => t.name));
    for (const [name, t] of this.daemon.tenants) if (!seen.has(name)) tenants.push(idleTenantStats(name, t.state));
    return { time: Date.now(), tenants };
  }

  tenants(): TenantView[] {
    return [...this.daemon.tenants.values()].map((t) => this.view(t)).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  private view(t: Tenant): TenantView {
    return view(t, t.pair === undefined ? undefined : this.daemon.pairs.get(t.pair));
  }

  async putTenant(name: string, input: unknown): Promise<PutResult> {
    const explicit = this.config.tenants.find((t) => t.name === name);
    if (explicit) {
      const where = explicit.source === "flag" ? "by --netns on the command line" : `in ${this.config.file ?? "the config file"}`;
      throw new AdminError(409, `tenant '${name}' is declared ${where}; change it there`);
    }
    let spec: TenantSpec;
    let table: Record<string, unknown>;
    try {
      const ft = checkTenantTable(name, input);
      table = normalizeTenantTable(input as Record<string, unknown>);
      spec = resolveTenant(ft, this.loaded.defaults, "tenants-dir");
    } catch (e) {
      if (e instanceof Invalid) throw new AdminError(400, e.message, fieldOf(e));
      throw e;
    }
    const clash = listenerClash(spec, this.desired());
    if (clash) throw new AdminError(400, clash, "listen");
    // A host another tenant holds: a conflict with that tenant's state, not a malformed request.
    const taken = ingressClash(spec, this.desired());
    if (taken) throw new AdminError(409, taken, "ingress_hosts");
    const before = this.stored.get(name);
    const { changed } = writeTenantFile(this.config.tenantsDir, name, table);
    this.stored.set(name, spec);
    const r = await this.daemon.apply(this.desired());
    const result = before && !changed && sameSpec(before, spec) && !r.replaced.includes(name) ? "unchanged" : before ? "replaced" : "created";
    logger.info(`tenant ${name}: ${result} (tenants dir)`);
    return { result, tenant: this.view(this.daemon.tenants.get(name)!) };
  }

  async deleteTenant(name: string): Promise<boolean> {
    const explicit = this.config.tenants.find((t) => t.name === name);
    if (explicit) throw new AdminError(409, `tenant '${name}' is declared ${explicit.source === "flag" ? "by --netns" : "in the config file"}; remove it there`);
    const removedFile = removeTenantFile(this.config.tenantsDir, name);
    const wasStored = this.stored.delete(name);
    if (!removedFile && !wasStored) {
      if (this.discovered.has(name)) throw new AdminError(409, `tenant '${name}' is discovered from ${this.discovered.get(name)!.netns}; it goes when that file does`);
      return false;
    }
    await this.daemon.apply(this.desired());
    logger.info(`tenant ${name}: removed (tenants dir)`);
    return true;
  }

  /** SIGHUP or POST /v1/reload: read everything again, apply only the difference; an invalid config changes nothing. */
  async reload(): Promise<ReloadResult> {
    let loaded: Loaded;
    try {
      loaded = loadLayered(this.loadOptions);
    } catch (e) {
      const message = e instanceof ConfigError ? e.message : String(e);
      logger.error(`reload rejected, the running configuration stays: ${message}`);
      throw new AdminError(400, `reload rejected, the running configuration stays: ${message}`);
    }
    for (const key of ["workers", "tenantsDir", "adminSocket", "logFormat", "accessLog"] as const) {
      if (loaded.config[key] !== this.config[key]) logger.warn(`reload: ${key} changed; it takes effect at the next start`);
    }
    // Settings read at start stay as they are; tenants, defaults and discovery follow the new file.
    const keep = this.config;
    loaded = {
      ...loaded,
      config: { ...loaded.config, workers: keep.workers, tenantsDir: keep.tenantsDir, adminSocket: keep.adminSocket, logFormat: keep.logFormat, accessLog: keep.accessLog },
    };
    const { stored, skipped } = readStoredTenants(loaded);
    for (const s of skipped) logger.error(`tenants dir: skipping ${s.file}: ${s.error}`);
    this.loaded = loaded;
    this.stored = stored;
    this.discovered = new Map(); // the defaults may have changed: resolve every discovered tenant again
    this.scanDiscovery();
    // Certificates changed on disk since the last look are read now, as a rotation would.
    this.daemon.refreshCertificates();
    const r = await this.daemon.apply(this.desired());
    logger.info(`reloaded: +${r.added.length} -${r.removed.length} ~${r.replaced.length} tenants, ${r.unchanged} unchanged`);
    return { result: "reloaded", ...r, skipped };
  }
}

function view(t: Tenant, pair: PairState | undefined): TenantView {
  const s = t.spec;
  const v: TenantView = {
    name: s.name,
    netns: s.netns,
    listen: s.listen.map((l) => l.text),
    upstream: s.upstream?.text ?? "",
    state: t.state,
    ...(t.state !== "serving" && t.error ? { error: t.error } : {}),
    source: s.source ?? "config",
    headers: s.headers,
    tenant_header: s.tenantHeader,
    upstream_timeout_ms: s.upstreamTimeoutMs,
    max_connections: s.maxConnections,
    mode: s.mode ?? "http",
  };
  if (s.proxyProtocol) v.upstream_proxy_protocol = s.proxyProtocol;
  if (s.ingress) {
    v.ingress = {
      hosts: s.ingress.hosts,
      ...(s.ingress.backend ? { backend: s.ingress.backend.text } : {}),
      ...(s.ingress.tlsBackend ? { tls_backend: s.ingress.tlsBackend.text } : {}),
      ...(t.ingressDown ? { down: t.ingressDown } : {}),
    };
  }
  if (s.tls) {
    const served = pair?.served;
    v.tls = {
      cert: s.tls.cert,
      key: s.tls.key,
      ...(served ? { not_after: served.notAfter.toISOString(), days_left: Math.floor((served.notAfter.getTime() - Date.now()) / 86_400_000) } : {}),
      ...(pair?.error ? { error: pair.error } : {}),
    };
  }
  return v;
}
