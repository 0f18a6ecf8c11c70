// One tenant in one worker: its listeners, its open connections, and the limits checked when a connection is accepted.
import type { TenantSpec } from "../config/types.ts";
import { ProxyConn } from "../engine/conn.ts";
import { makeStamp, plainResponse } from "../engine/rewrite.ts";
import { Stat, W_FD_REFUSED } from "../engine/stats.ts";
import { UpstreamPool } from "../engine/upstream-pool.ts";
import type { Duplex, Env, Route } from "../engine/types.ts";
import type { ClientSink, ListenerHooks } from "../runtime/bun-net.ts";
import type { SharedCounts } from "./shared-counts.ts";

/** Upstream addresses by origin: most tenants share a few upstreams, so they share the objects too. */
const upstreams = new Map<string, Route["upstream"]>();

/** The engine's view of a tenant spec; `stats`: its counters in this worker; `pool`: its idle upstream connections. */
export function routeOf(spec: TenantSpec, stats: Float64Array, pool?: UpstreamPool): Route {
  const u = spec.upstream;
  const key = u.unix ? `unix:${u.unix}` : u.origin;
  let upstream = upstreams.get(key);
  if (!upstream) {
    if (u.unix) upstream = { unix: u.unix };
    else {
      const url = new URL(u.origin);
      const tls = url.protocol === "https:";
      upstream = { host: url.hostname.replace(/^\[(.*)\]$/, "$1"), port: Number(url.port) || (tls ? 443 : 80), tls };
    }
    upstreams.set(key, upstream);
  }
  return {
    tenant: spec.name,
    stamp: makeStamp(spec.tenantHeader, spec.name, spec.headers, u.prefix),
    upstream,
    upstreamText: u.text,
    upstreamTimeoutMs: spec.upstreamTimeoutMs,
    stats,
    pool,
  };
}

const OVER_CAP = plainResponse(503, "nsproxy: too many connections for this tenant");

export interface GroupOwner {
  /** Rate-limited warnings go to the supervisor's log. */
  warn(kind: string, message: string): void;
}

export class TenantGroup implements ListenerHooks {
  readonly route: Route;
  /** What is kept of the spec (a worker holds thousands of groups: not the whole spec). */
  readonly name: string;
  readonly maxConnections: number;
  readonly conns = new Set<ProxyConn>();
  /** Listener handles (the runtime's), closed on retire. */
  listeners: { stop(closeActive?: boolean): void }[] = [];
  private retired = false;

  constructor(
    spec: TenantSpec,
    stats: Float64Array,
    readonly slot: number,
    private readonly counts: SharedCounts,
    private readonly env: Env,
    private readonly owner: GroupOwner,
  ) {
    this.route = routeOf(spec, stats, new UpstreamPool({ take: () => counts.reserveFds(1), give: () => counts.releaseFds(1) }));
    this.name = spec.name;
    this.maxConnections = spec.maxConnections;
  }

  accept(sock: Duplex, remoteAddress: string): ClientSink | undefined {
    if (this.retired) {
      sock.terminate();
      return undefined;
    }
    // Every client connection may need an upstream one: two descriptors, taken from the process-wide
    // budget before the kernel runs out, so accept() never fails with EMFILE (which spins the event loop).
    if (!this.counts.reserveFds(2)) {
      sock.terminate();
      const w = this.env.workerStats;
      if (w) w[W_FD_REFUSED] = w[W_FD_REFUSED]! + 1;
      this.owner.warn("fds", `descriptor limit reached (${this.counts.fdLimit}): refusing new connections until some close`);
      return undefined;
    }
    const st = this.route.stats;
    if (!this.counts.enter(this.slot, this.maxConnections)) {
      st[Stat.ConnRefusedCap] = st[Stat.ConnRefusedCap]! + 1;
      this.counts.releaseFds(2);
      sock.write(OVER_CAP);
      sock.end();
      this.owner.warn(`cap:${this.name}`, `tenant ${this.name}: max_connections (${this.maxConnections}) reached; refusing new connections`);
      return undefined;
    }
    st[Stat.ConnAccepted] = st[Stat.ConnAccepted]! + 1;
    const conn = new ProxyConn(sock, this.route, remoteAddress, this.env);
    conn.owner = this;
    this.conns.add(conn);
    return conn;
  }

  /** A connection of this group finished. */
  release(conn: ProxyConn): void {
    if (!this.conns.delete(conn)) return;
    this.counts.leave(this.slot);
    this.counts.releaseFds(2);
  }

  /** Stop accepting now; let connections finish their exchange, and cut what is left after `graceMs`. */
  retire(graceMs: number): Promise<void> {
    this.retired = true;
    this.route.pool?.closeAll();
    for (const l of this.listeners) l.stop(false);
    this.counts.listeners(-this.listeners.length);
    this.listeners = [];
    for (const c of [...this.conns]) c.drain();
    if (this.conns.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const started = Date.now();
      const tick = setInterval(() => {
        if (this.conns.size === 0 || Date.now() - started >= graceMs) {
          clearInterval(tick);
          for (const c of [...this.conns]) c.destroy();
          resolve();
        }
      }, 50);
    });
  }
}
