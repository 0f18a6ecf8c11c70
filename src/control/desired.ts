// Where the wanted tenants come from — config and flags, the tenants directory, discovery — and the rules that keep them apart.
import { Invalid } from "../config/layer.ts";
import { hostsOverlap, sameHost } from "../config/overlap.ts";
import { type Loaded, resolveTenant } from "../config/load.ts";
import type { ListenAddr, TenantSpec } from "../config/types.ts";
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { discover } from "../discover.ts";
import { ContainerTenants } from "../docker/containers.ts";
import { logger } from "../log.ts";
import { namespaceKey, namespaceKeys } from "../netns/identity.ts";
import { readTenantsDir, removeTenantFile } from "../store/tenants-dir.ts";

export interface Skipped {
  file: string;
  error: string;
}

/** Where an invalid value is, as the admin API and the skip messages name it. */
export function fieldOf(e: Invalid): string {
  return Array.isArray(e.at) ? e.at.join(".") : e.at;
}

/** What namespace a tenant's path names now (see netns/identity.ts); unit tests pass a table. */
export type NamespaceOf = (path: string) => string;

/**
 * Two tenants may not listen on overlapping addresses (the same one, or a wildcard covering the other)
 * in one namespace, however each names it (SO_REUSEPORT would split the traffic). The address test
 * comes first: it is cheap, and a namespace is looked at only for a tenant that could clash.
 */
function listenerClash(spec: TenantSpec, others: Iterable<TenantSpec>, namespaceOf: NamespaceOf): string | undefined {
  let mine: string | undefined;
  for (const o of others) {
    if (o.name === spec.name) continue;
    let taken: { l: ListenAddr; m: ListenAddr } | undefined;
    for (const l of spec.listen) {
      const m = o.listen.find((m) => m.port === l.port && hostsOverlap(m.host, l.host));
      if (m) taken = { l, m };
      if (taken) break;
    }
    if (!taken) continue;
    if (o.netns !== spec.netns && namespaceOf(o.netns) !== (mine ??= namespaceOf(spec.netns))) continue;
    const covers = sameHost(taken.m.host, taken.l.host) ? "" : `, which covers ${taken.l.text}`;
    const alias = o.netns === spec.netns ? "" : ` (the namespace ${spec.netns} names too)`;
    return `tenant '${o.name}' already listens on ${taken.m.text} in ${o.netns}${alias}${covers}`;
  }
  return undefined;
}

/** Two tenants may not claim one ingress host: the one declared first keeps it. */
function ingressClash(spec: TenantSpec, others: Iterable<TenantSpec>): string | undefined {
  const mine = spec.ingress?.hosts;
  if (!mine?.length) return undefined;
  for (const o of others) {
    if (o.name === spec.name || !o.ingress) continue;
    const taken = mine.find((h) => o.ingress!.hosts.includes(h));
    if (taken) return `ingress host ${taken} already belongs to tenant '${o.name}'`;
  }
  return undefined;
}

/**
 * What keeps `spec` from joining `others`, if anything: a listen address another tenant holds in its
 * namespace ("listen"), or an ingress host another tenant holds ("ingress_hosts"); both are conflicts
 * with that tenant's state. The tenants directory and the admin API both apply these, in this order.
 */
export function clashOf(spec: TenantSpec, others: TenantSpec[], namespaceOf: NamespaceOf = namespaceKey): { field: "listen" | "ingress_hosts"; message: string } | undefined {
  const listen = listenerClash(spec, others, namespaceOf);
  if (listen) return { field: "listen", message: listen };
  const host = ingressClash(spec, others);
  if (host) return { field: "ingress_hosts", message: host };
  return undefined;
}

/** Read the tenants directory against `loaded`'s defaults; files that are bad or clash are skipped, each with its reason. */
export function readStoredTenants(loaded: Loaded): { stored: Map<string, TenantSpec>; skipped: Skipped[] } {
  const { tenants, skipped } = readTenantsDir(loaded.config.tenantsDir);
  const stored = new Map<string, TenantSpec>();
  const explicit = new Map(loaded.config.tenants.map((t) => [t.name, t]));
  const namespaceOf = namespaceKeys();
  for (const t of tenants) {
    const taken = explicit.get(t.name);
    if (taken) {
      skipped.push({ file: t.file, error: `tenant '${t.name}' is also declared ${taken.source === "flag" ? "by --netns" : "in the config file"}, which wins` });
      continue;
    }
    try {
      const spec = resolveTenant(t.tenant, loaded.defaults, "tenants-dir");
      const clash = clashOf(spec, [...explicit.values(), ...stored.values()], namespaceOf);
      if (clash) skipped.push({ file: t.file, error: clash.message });
      else stored.set(t.name, spec);
    } catch (e) {
      if (!(e instanceof Invalid)) throw e;
      skipped.push({ file: t.file, error: `${fieldOf(e)}: ${e.message}` });
    }
  }
  return { stored, skipped };
}

/** The sources of tenants, held resolved against the current defaults. */
export class DesiredTenants {
  /** Tenants of the tenants directory. */
  readonly stored = new Map<string, TenantSpec>();
  discovered = new Map<string, TenantSpec>();
  /** Tenants of labelled containers (Docker Engine API sockets). */
  containers = new Map<string, TenantSpec>();
  /** Called when a container came, went or changed: the caller runs scanContainers (coalescing). */
  onContainersChanged: () => void = () => {};
  readonly containerSources = new ContainerTenants(() => this.onContainersChanged());
  private readonly reportedSkips = new Set<string>();

  constructor(public loaded: Loaded) {}

  get config() {
    return this.loaded.config;
  }

  /** Every tenant that should be live now. Precedence on a name: config and flags, the tenants directory, discovery, containers. */
  all(): TenantSpec[] {
    const out = new Map<string, TenantSpec>(this.config.tenants.map((t) => [t.name, t]));
    for (const [name, t] of this.stored) if (!out.has(name)) out.set(name, t);
    for (const [name, t] of this.discovered) if (!out.has(name)) out.set(name, t);
    for (const [name, t] of this.containers) if (!out.has(name)) out.set(name, t);
    return [...out.values()];
  }

  /** Take in what the container sources saw since the last call; true when the container tenants changed. */
  scanContainers(): boolean {
    const others = [...this.config.tenants, ...this.stored.values(), ...this.discovered.values()];
    const byName = new Map(others.map((t) => [t.name, t]));
    const namespaceOf = namespaceKeys();
    const next = this.containerSources.take(this.loaded, (spec, containers) => {
      const same = byName.get(spec.name);
      if (same) return `tenant '${spec.name}' is ${same.source === "discover" ? `discovered from ${same.netns}` : same.source === "tenants-dir" ? "in the tenants directory" : "declared in the config or by a flag"}, which wins`;
      return (clashOf(spec, others, namespaceOf) ?? clashOf(spec, containers, namespaceOf))?.message;
    }, namespaceOf);
    if (!next) return false;
    const changed = next.size !== this.containers.size || [...next].some(([n, s]) => this.containers.get(n) !== s);
    this.containers = next;
    return changed;
  }

  /** The config (or flag) declaration of `name`, if it has one: such a tenant is changed there only. */
  explicit(name: string): TenantSpec | undefined {
    return this.config.tenants.find((t) => t.name === name);
  }

  /** Read the tenants directory and discover again against `loaded` (at start, on reload). Skipped files are logged and returned. */
  load(loaded: Loaded): Skipped[] {
    const { stored, skipped } = readStoredTenants(loaded);
    for (const s of skipped) logger.error(`tenants dir: skipping ${s.file}: ${s.error}`);
    this.loaded = loaded;
    this.stored.clear();
    for (const [name, spec] of stored) this.stored.set(name, spec);
    this.discovered = new Map(); // the defaults may have changed: resolve every discovered tenant again
    this.scanDiscovery();
    this.containerSources.follow(loaded.config.docker);
    this.scanContainers();
    return skipped;
  }

  /** Scan the discover directories; true when the set of discovered tenants changed. */
  scanDiscovery(): boolean {
    if (this.config.discover.length === 0 && this.discovered.size === 0) return false;
    let found: ReturnType<typeof discover>;
    try {
      found = discover(this.config.discover, (path, why) => this.reportOnce(path, () => logger.warn(`discover: skipping ${path}: ${why}`)));
    } catch (err) {
      // Keep what was found before: a directory we cannot read now is not an empty one.
      const message = (err as Error).message;
      this.reportOnce(message, () => logger.warn(`discover: cannot read a discover directory (${message}); keeping the ${this.discovered.size} tenants found before`));
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
        this.reportOnce(d.netns, () => logger.error(`discover: cannot serve ${d.netns}: ${e.message}`));
      }
    }
    const changed = next.size !== this.discovered.size || [...next].some(([n, s]) => this.discovered.get(n) !== s);
    this.discovered = next;
    return changed;
  }

  /**
   * Owned tenants (owner = "cni:…") whose namespace is gone are removed, file and all: the DEL that should have
   * removed them never came (a node crash, a runtime killed). Returns their names; the caller applies.
   */
  dropOrphans(isGone: (netns: string) => boolean = namespaceGone): string[] {
    const dropped: string[] = [];
    for (const [name, spec] of this.stored) {
      if (!spec.owner || !isGone(spec.netns)) continue;
      removeTenantFile(this.config.tenantsDir, name);
      this.stored.delete(name);
      dropped.push(name);
      logger.info(`tenant ${name}: namespace ${spec.netns} is gone and its owner ${spec.owner} never removed it; removed`);
    }
    return dropped;
  }

  private reportOnce(key: string, report: () => void): void {
    if (this.reportedSkips.has(key)) return;
    this.reportedSkips.add(key);
    report();
  }
}

/**
 * The namespace file is gone for good: the path is missing while the directory that holds it is there (for
 * /proc/PID/ns/net: the process is gone). A directory that is not there at all says nothing (a host directory not
 * mounted into this container), and an empty placeholder file may still be mounted on: neither counts.
 */
export function namespaceGone(path: string): boolean {
  if (existsSync(path)) return false;
  const proc = /^\/proc\/\d+\/ns\/net$/.test(path);
  return existsSync(proc ? "/proc/self" : dirname(path));
}
