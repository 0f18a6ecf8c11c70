// The container tenants: every configured Engine API socket followed, and what its containers' labels resolve to.
import type { Loaded } from "../config/load.ts";
import type { TenantSpec } from "../config/types.ts";
import { isValidTenantName } from "../config/values.ts";
import { logger } from "../log.ts";
import { containerTenant, LabelError } from "./labels.ts";
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
   * `taken(spec)` says why another source's tenant keeps this one out (same name, clashing address or host).
   */
  take(loaded: Loaded, taken: (spec: TenantSpec) => string | undefined): Map<string, TenantSpec> | undefined {
    if (!this.dirty) return undefined;
    this.dirty = false;
    const out = new Map<string, TenantSpec>();
    for (const w of this.watches.values()) {
      for (const c of w.containers.values()) {
        const spec = this.resolve(c, loaded);
        if (!spec) continue;
        const clash = taken(spec) ?? (out.has(spec.name) ? `a container of ${out.get(spec.name)!.netns} is tenant '${spec.name}' already` : undefined);
        if (clash) {
          this.reportOnce(`${c.id}:${clash}`, () => logger.error(`docker: skipping container ${c.name}: ${clash}`));
          continue;
        }
        out.set(spec.name, spec);
      }
    }
    return out;
  }

  private resolve(c: ContainerEntry, loaded: Loaded): TenantSpec | undefined {
    const known = this.resolved.get(c);
    if (known !== undefined) return known ?? undefined;
    let spec: TenantSpec | null = null;
    if (!isValidTenantName(c.name)) {
      this.reportOnce(`${c.id}:${c.name}`, () => logger.warn(`docker: skipping container ${c.name}: its name is not a valid tenant name ([A-Za-z0-9][A-Za-z0-9._-]{0,63})`));
    } else {
      try {
        spec = containerTenant(c.name, c.netns, c.labels, loaded);
      } catch (e) {
        if (!(e instanceof LabelError)) throw e;
        const where = e.label ? `label ${e.label}: ` : "";
        this.reportOnce(`${c.id}:${where}${e.message}`, () => logger.error(`docker: skipping container ${c.name}: ${where}${e.message}`));
      }
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
