// The container tenants: every configured Engine API socket followed, and what its containers' labels resolve to.
import type { Loaded } from "../config/load.ts";
import type { TenantSpec } from "../config/types.ts";
import { logger } from "../log.ts";
import { containerTenant, LabelError, tenantNameOf } from "./labels.ts";
import { type ContainerEntry, DockerWatch } from "./watch.ts";

/** A watch per socket; an entry seen before keeps its resolved spec (or its refusal) until the defaults change. */
export class ContainerTenants {
  private readonly watches = new Map<string, DockerWatch>();
  private wanted: string[] = [];
  private started = false;
  private dirty = false;
  private resolved = new WeakMap<ContainerEntry, TenantSpec | null>();
  private readonly reported = new Set<string>();

  /** `onChange`: a container came, went or changed (called often; the caller coalesces). */
  constructor(private readonly onChange: () => void) {}

  /** The sockets to follow (at start and on reload); followed from `start()` on. */
  follow(sockets: string[]): void {
    this.wanted = sockets;
    this.resolved = new WeakMap();
    this.dirty = true;
    if (this.started) this.sync();
  }

  start(): void {
    this.started = true;
    this.sync();
  }

  stop(): void {
    this.started = false;
    for (const w of this.watches.values()) w.stop();
    this.watches.clear();
  }

  private sync(): void {
    for (const [socket, w] of this.watches) {
      if (this.wanted.includes(socket)) continue;
      w.stop();
      this.watches.delete(socket);
      this.changed();
    }
    for (const socket of this.wanted) {
      if (this.watches.has(socket)) continue;
      const w = new DockerWatch(socket, () => this.changed());
      this.watches.set(socket, w);
      w.start();
    }
  }

  private changed(): void {
    this.dirty = true;
    this.onChange();
  }

  /**
   * The tenants the containers stand for now, or undefined when nothing changed since the last call.
   * `taken(spec, containers)` says why another source's tenant, or one of `containers` (those accepted before it
   * that share its namespace or one of its ingress hosts), keeps this one out; `namespaceOf` keys a namespace path.
   * Containers are taken oldest first (then by id), so of two that claim one tenant name, address or host, the
   * older keeps it whatever order their events came in.
   */
  take(loaded: Loaded, taken: (spec: TenantSpec, containers: TenantSpec[]) => string | undefined, namespaceOf: (path: string) => string): Map<string, TenantSpec> | undefined {
    if (!this.dirty) return undefined;
    this.dirty = false;
    const out = new Map<string, TenantSpec>();
    const owner = new Map<string, ContainerEntry>();
    const inNamespace = new Map<string, TenantSpec[]>();
    const hostOwner = new Map<string, TenantSpec>();
    const entries = [...this.watches.values()].flatMap((w) => [...w.containers.values()]).sort(olderFirst);
    for (const c of entries) {
      const spec = this.resolve(c, loaded);
      if (!spec) continue;
      const key = namespaceOf(spec.netns);
      const near = new Set([...(inNamespace.get(key) ?? []), ...(spec.ingress?.hosts ?? []).flatMap((h) => hostOwner.get(h) ?? [])]);
      const first = owner.get(spec.name);
      const clash = first ? `container ${first.name}, created before it, is tenant '${spec.name}' already` : taken(spec, [...near]);
      if (clash) {
        this.reportOnce(`${c.id}:${clash}`, () => logger.error(`docker: skipping container ${c.name}: ${clash}`));
        continue;
      }
      out.set(spec.name, spec);
      owner.set(spec.name, c);
      inNamespace.set(key, [...(inNamespace.get(key) ?? []), spec]);
      for (const h of spec.ingress?.hosts ?? []) if (!hostOwner.has(h)) hostOwner.set(h, spec);
    }
    return out;
  }

  private resolve(c: ContainerEntry, loaded: Loaded): TenantSpec | undefined {
    const known = this.resolved.get(c);
    if (known !== undefined) return known ?? undefined;
    let spec: TenantSpec | null = null;
    try {
      spec = containerTenant(tenantNameOf(c.name, c.labels), c.netns, c.labels, loaded);
    } catch (e) {
      if (!(e instanceof LabelError)) throw e;
      const where = e.label ? `label ${e.label}: ` : "";
      this.reportOnce(`${c.id}:${where}${e.message}`, () => logger.error(`docker: skipping container ${c.name}: ${where}${e.message}`));
    }
    this.resolved.set(c, spec);
    return spec ?? undefined;
  }

  private reportOnce(key: string, report: () => void): void {
    if (this.reported.has(key)) return;
    if (this.reported.size > 10_000) this.reported.clear();
    this.reported.add(key);
    report();
  }
}

/** Oldest first, then by id: the order that decides which of two containers keeps what both claim. */
function olderFirst(a: ContainerEntry, b: ContainerEntry): number {
  return a.created - b.created || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
