// One tenant in one worker: its listeners, its open connections, and the limits checked when a connection is accepted.
import type { ListenAddr, TenantSpec } from "../config/types.ts";
import { ProxyConn } from "../engine/conn.ts";
import { makeStamp, plainResponse } from "../engine/rewrite.ts";
import { Stat, W_FD_REFUSED, W_INGRESS_FD_REFUSED } from "../engine/stats.ts";
import { UpstreamPool } from "../engine/upstream-pool.ts";
import type { ClientSink, Duplex, Env, ListenerHooks, ListenTls, Peer, Route } from "../engine/types.ts";
import { tlsVersionOf } from "../runtime/index.ts";
import { proxyV2Header } from "../engine/proxy-v2.ts";
import { TcpConn } from "../engine/tcp.ts";
import type { Direction, SharedCounts } from "./shared-counts.ts";

/** Upstream addresses by origin (and TLS settings): most tenants share a few upstreams, so they share the objects too. */
const upstreams = new Map<string, Route["upstream"]>();

/** What the main thread read from files for this attach: the listener's pair, an upstream CA. */
export interface AttachMaterial {
  tls?: ListenTls;
  upstreamCa?: string;
}

/** "tcp://host:port", "http://host:port" or "https://host[:port]" → host and port (IPv6 without brackets). */
function hostPort(origin: string): { host: string; port: number; tls: boolean } {
  const m = /^([a-z]+):\/\/(\[[^\]]*\]|[^:/]+)(?::(\d+))?/.exec(origin)!;
  const tls = m[1] === "https";
  return { host: m[2]!.replace(/^\[(.*)\]$/, "$1"), port: Number(m[3]) || (tls ? 443 : 80), tls };
}

/** The engine's view of a tenant spec; `stats`: its counters in this worker; `pool`: its idle upstream connections. */
export function routeOf(spec: TenantSpec, stats: Float64Array, pool?: UpstreamPool, upstreamCa?: string, proto = "http"): Route {
  // Only tenants with listeners get a group; those have an upstream (checked when the config is read).
  const u = spec.upstream!;
  const tcp = spec.mode === "tcp";
  const key = `${u.unix ? `unix:${u.unix}` : u.origin}\0${tcp ? "half" : ""}\0${spec.upstreamInsecure ? "insecure" : ""}\0${upstreamCa ?? ""}`;
  let upstream = upstreams.get(key);
  if (!upstream) {
    if (u.unix) upstream = { unix: u.unix };
    else {
      const { host, port, tls } = hostPort(u.origin);
      upstream = { host, port, tls };
      if (tls && upstreamCa) upstream.ca = upstreamCa;
      if (tls && spec.upstreamInsecure) upstream.insecure = true;
    }
    // TCP mode carries half-closes through: the upstream's FIN must arrive as such.
    if (tcp) upstream.halfOpen = true;
    upstreams.set(key, upstream);
  }
  return {
    tenant: spec.name,
    stamp: makeStamp(spec.tenantHeader, spec.name, spec.headers, u.prefix, proto),
    upstream,
    upstreamText: u.text,
    upstreamTimeoutMs: spec.upstreamTimeoutMs,
    stats,
    pool,
  };
}

const OVER_CAP = plainResponse(503, "nsproxy: too many connections for this tenant");

export interface GroupOwner {
  /** Rate-limited warnings go to the main thread's log. */
  warn(kind: string, message: string): void;
}

/**
 * Every client connection may need an upstream one: two descriptors, taken from the process-wide budget
 * (and its direction's share of it) before the kernel runs out, so accept() never fails with EMFILE (which
 * spins the event loop). False: the connection was closed, counted and (at most every 10 s) logged.
 */
export function reserveConnectionFds(sock: Duplex, counts: SharedCounts, env: Env, owner: GroupOwner, dir: Direction = "egress"): boolean {
  if (counts.reserveFds(2, dir)) return true;
  sock.terminate();
  const w = env.workerStats;
  if (w) w[W_FD_REFUSED] = w[W_FD_REFUSED]! + 1;
  if (w && dir === "ingress") w[W_INGRESS_FD_REFUSED] = w[W_INGRESS_FD_REFUSED]! + 1;
  owner.warn(
    `fds:${dir}`,
    `descriptor limit reached (${counts.fdLimit}): ${dir} holds ${dir === "ingress" ? counts.ingressFds : counts.fdsInUse - counts.ingressFds} of its share ${counts.shareOf(dir)}; refusing new ${dir} connections until some close`,
  );
  return false;
}

/** A client connection as the worker holds it: HTTP (ProxyConn) or TCP mode (TcpConn). */
export interface Conn {
  owner: unknown;
  /** No exchange in progress (waiting for a request or a ClientHello); undefined: never shed (TCP mode). */
  readonly idle?: boolean;
  sweep(now: number): void;
  drain(): void;
  destroy(): void;
}

/**
 * Let every connection of `conns` finish its exchange (drain), and cut what is left after `graceMs`.
 * Resolves when the set is empty or the grace has passed. Connections leave the set as they finish.
 */
export function drainAll(conns: Set<Conn>, graceMs: number): Promise<void> {
  for (const c of [...conns]) c.drain();
  if (conns.size === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const started = Date.now();
    const tick = setInterval(() => {
      if (conns.size === 0 || Date.now() - started >= graceMs) {
        clearInterval(tick);
        for (const c of [...conns]) c.destroy();
        resolve();
      }
    }, 50);
  });
}

export class TenantGroup implements ListenerHooks {
  readonly route: Route;
  /** The same tenant for connections that came over TLS (X-Forwarded-Proto: https); undefined without https:// listeners. */
  readonly routeTls: Route | undefined;
  /** Listener hooks for https:// listeners (the runtime tells TLS sockets by their hooks object). */
  readonly tlsHooks: ListenerHooks;
  /** What is kept of the spec (a worker holds thousands of groups: not the whole spec). */
  readonly name: string;
  /** Its listen addresses (the spec's own array): a re-attach knows which addresses its old listeners hold. */
  readonly addresses: readonly ListenAddr[];
  /** dev:ino of the namespace its listeners are in (set by the attach). */
  namespace = "";
  readonly maxConnections: number;
  readonly tcp: boolean;
  readonly proxyProtocol: boolean;
  readonly conns = new Set<Conn>();
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
    material: AttachMaterial = {},
  ) {
    this.tcp = spec.mode === "tcp";
    this.proxyProtocol = spec.proxyProtocol === "v2";
    // An upstream connection that starts with a client's PROXY header may carry only that client: no pool.
    const pool = this.tcp || this.proxyProtocol ? undefined : new UpstreamPool({ take: () => counts.reserveFds(1), give: () => counts.releaseFds(1) });
    this.route = routeOf(spec, stats, pool, material.upstreamCa);
    this.routeTls = spec.listen.some((l) => l.tls) ? routeOf(spec, stats, pool, material.upstreamCa, "https") : undefined;
    this.tlsHooks = { accept: (sock, peer) => this.accept(sock, peer) };
    this.name = spec.name;
    this.addresses = spec.listen;
    this.maxConnections = spec.maxConnections;
  }

  accept(sock: Duplex, peer: Peer): ClientSink | undefined {
    // A connection the kernel queued on a listener just before it closed (Deno can hand it over after
    // stop()) is served like the others and drained: resetting it would fail a request of a client
    // that did nothing wrong. The retire's grace period covers it.
    if (!reserveConnectionFds(sock, this.counts, this.env, this.owner)) return undefined;
    const st = this.route.stats;
    if (!this.counts.enter(this.slot, this.maxConnections)) {
      st[Stat.ConnRefusedCap] = st[Stat.ConnRefusedCap]! + 1;
      this.counts.releaseFds(2);
      sock.write(OVER_CAP);
      sock.end();
      this.owner.warn(`cap:${this.name}`, `tenant ${this.name}: max_connections (${this.maxConnections}) reached; refusing new connections`);
      return undefined;
    }
    let header: (() => Uint8Array) | undefined;
    if (this.proxyProtocol) {
      header = this.proxyHeader(sock, peer);
      if (!header) {
        this.counts.leave(this.slot);
        this.counts.releaseFds(2);
        sock.terminate();
        return undefined;
      }
    }
    st[Stat.ConnAccepted] = st[Stat.ConnAccepted]! + 1;
    const route = peer.tls && this.routeTls ? this.routeTls : this.route;
    let conn: ProxyConn | TcpConn;
    // TLS in TCP mode with a PROXY header: the upstream is dialed after the handshake, when the version is known.
    if (this.tcp) conn = new TcpConn(sock, route, this.env, header, peer.tls && header !== undefined);
    else {
      conn = new ProxyConn(sock, route, peer.remoteAddress, this.env);
      conn.proxyHeader = header;
    }
    conn.owner = this;
    this.conns.add(conn);
    if (this.retired) conn.drain();
    return conn;
  }

  /**
   * The PROXY v2 header of a client connection's upstream connections: the client and the listener as
   * seen inside the tenant's namespace, the tenant's name (NETNS TLV) and, over TLS, the version (SSL
   * TLV; known once the handshake is done, so that header is made when the upstream connection opens).
   * Undefined when the addresses cannot be expressed (none is expected from the kernel): the connection
   * is refused, never sent on with a LOCAL header, which would make the upstream take nsproxy's own
   * address for the client's.
   */
  private proxyHeader(sock: Duplex, peer: Peer): (() => Uint8Array) | undefined {
    const info = { srcAddr: peer.remoteAddress, srcPort: peer.remotePort, dstAddr: peer.localAddress, dstPort: peer.localPort, netns: this.name };
    let plain: Uint8Array;
    try {
      plain = proxyV2Header(info);
    } catch (err) {
      this.owner.warn(`pp:${this.name}`, `tenant ${this.name}: connection refused: no PROXY v2 header for it: ${(err as Error).message}`);
      return undefined;
    }
    if (!peer.tls) return () => plain; // written, never changed: one buffer serves every upstream connection
    return () => proxyV2Header({ ...info, tlsVersion: tlsVersionOf(sock) });
  }

  /** A connection of this group finished. */
  release(conn: Conn): void {
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
    return drainAll(this.conns, graceMs);
  }
}
