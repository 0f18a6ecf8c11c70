// The ingress direction in one worker: listeners in the host namespace that route each HTTP request by Host, and
// each TLS connection by its SNI server name (not terminated), to a tenant's own service inside its namespace.
import { ProxyConn } from "../engine/conn.ts";
import { HostClaimError, HostRouter } from "../engine/host-router.ts";
import { latin1, type Stamp } from "../engine/rewrite.ts";
import { SniConn, type SniRoutes } from "../engine/sni-conn.ts";
import { Stat, W_INGRESS_UNROUTED } from "../engine/stats.ts";
import type { ClientSink, Duplex, Env, ListenerHooks, Peer, Route } from "../engine/types.ts";
import { UpstreamPool } from "../engine/upstream-pool.ts";
import type { SharedCounts } from "./shared-counts.ts";
import { type Conn, drainAll, type GroupOwner, reserveConnectionFds } from "./tenant-group.ts";

/** What the main thread tells every worker about one tenant's ingress (see protocol.ts). */
export interface IngressTenant {
  name: string;
  netns: string;
  /** Normalized patterns this tenant owns (claims were checked by the main thread). */
  hosts: string[];
  backend?: { host: string; port: number; text: string };
  tlsBackend?: { host: string; port: number; text: string };
  /** An fd (of this process) open on the tenant's namespace, or -1 while it is gone. */
  nsFd: number;
  /** Why its hosts answer 503 now (namespace gone); absent when it serves. */
  down?: string;
  /** Its counters' slot (the same as its egress counters). */
  slot: number;
  upstreamTimeoutMs: number;
  /** ingress_max_connections: connections routed to this tenant at once, all workers together. */
  maxConnections: number;
}

/**
 * Ingress requests carry no tenant stamp: the tenant's own service is the upstream, and the host-side
 * client is not a tenant. X-Forwarded-For/-Host/-Proto describe that client, as on egress; a client's
 * own copies (and their look-alikes) are removed, as they always are.
 */
const INGRESS_STAMP: Stamp = { bytes: latin1("X-Forwarded-Proto: http\r\n"), protectedNames: new Set(), prefix: "" };

interface Entry {
  name: string;
  slot: number;
  max: number;
  stats: Float64Array;
  http?: Route;
  tls?: Route;
  down?: string;
}

type Refusal = { status: number; reason: string };

/** How a refusal at a tenant's ingress_max_connections ends (the SNI path tells it from "no such tenant" by it). */
const CAP_REACHED = " reached";

/**
 * An entry replaced or dropped: its idle backend connections close, and its routes can dial no more. A
 * request in flight still holds the old route (a stale pooled connection is retried once): after this
 * message the main thread may close the old namespace fd, and the number could come back for another
 * tenant's namespace. A route with nsFd -1 fails its dial with a reason instead.
 */
function retire(e: Entry): void {
  e.http?.pool?.closeAll();
  if (e.http) e.http.upstream.nsFd = -1;
  if (e.tls) e.tls.upstream.nsFd = -1;
}

export class Ingress {
  private readonly router = new HostRouter<Entry>();
  private readonly entries = new Map<string, Entry>();
  readonly conns = new Set<Conn>();
  /** The tenant slot each routed connection is counted against. */
  private readonly held = new Map<Conn, { slot: number }>();
  listeners: { stop(closeActive?: boolean): void }[] = [];
  /** Counters of requests no tenant took (404s): nobody's, so a private array; the worker header counts them. */
  private readonly unrouted: Route;
  readonly httpHooks: ListenerHooks = { accept: (sock, peer) => this.acceptHttp(sock, peer) };
  readonly sniHooks: ListenerHooks = { accept: (sock) => this.acceptSni(sock) };

  constructor(
    private readonly env: Env,
    private readonly counts: SharedCounts,
    private readonly owner: GroupOwner,
    private readonly statsOf: (slot: number) => Float64Array,
  ) {
    this.unrouted = { tenant: "-", stamp: INGRESS_STAMP, upstream: {}, upstreamText: "-", upstreamTimeoutMs: 30_000, stats: new Float64Array(Stat.COUNT), direction: "ingress" };
  }

  /** Add or replace a tenant's ingress (a new namespace fd closes the idle backend connections made through the old one). */
  set(t: IngressTenant): void {
    const old = this.entries.get(t.name);
    if (old) retire(old);
    const stats = this.statsOf(t.slot);
    const entry: Entry = { name: t.name, slot: t.slot, max: t.maxConnections, stats, ...(t.down ? { down: t.down } : {}) };
    const at = (b: { text: string }) => `tenant ${t.name} backend ${b.text} (netns ${t.netns})`;
    if (t.nsFd >= 0 && t.backend) {
      entry.http = {
        tenant: t.name,
        stamp: INGRESS_STAMP,
        upstream: { host: t.backend.host, port: t.backend.port, nsFd: t.nsFd },
        upstreamText: at(t.backend),
        upstreamTimeoutMs: t.upstreamTimeoutMs,
        stats,
        pool: new UpstreamPool({ take: () => this.counts.reserveFds(1, "ingress"), give: () => this.counts.releaseFds(1, "ingress") }),
        direction: "ingress",
      };
    }
    if (t.nsFd >= 0 && t.tlsBackend) {
      entry.tls = {
        tenant: t.name,
        stamp: INGRESS_STAMP,
        upstream: { host: t.tlsBackend.host, port: t.tlsBackend.port, nsFd: t.nsFd, halfOpen: true },
        upstreamText: at(t.tlsBackend),
        upstreamTimeoutMs: t.upstreamTimeoutMs,
        stats,
        direction: "ingress",
      };
    }
    try {
      this.router.claim(t.name, t.hosts, entry);
    } catch (err) {
      if (!(err instanceof HostClaimError)) throw err;
      // The main thread allows one owner per host over the whole desired set, so a clash here is a host
      // moving between two tenants in one reload, whose updates arrive one after the other: the newer
      // claim wins, and the other tenant's own update (already on its way) claims what it keeps.
      this.router.release(err.owner);
      this.router.claim(t.name, t.hosts, entry);
    }
    this.entries.set(t.name, entry);
  }

  /** The tenant is gone: its hosts are unknown from now on (404); connections in flight finish. */
  drop(name: string): void {
    const old = this.entries.get(name);
    if (old) retire(old);
    this.entries.delete(name);
    this.router.release(name);
  }

  private unroutedCount(what: string): void {
    const w = this.env.workerStats;
    if (w) w[W_INGRESS_UNROUTED] = w[W_INGRESS_UNROUTED]! + 1;
    this.owner.warn("ingress-unrouted", `ingress: ${what} (more like it are counted in nsproxy_ingress_unrouted_total, logged at most every 10 s)`);
  }

  /** A request's route by its Host: exact name, then the longest wildcard; port and case ignored. */
  readonly routeHttp = (host: string): Route | Refusal => {
    const e = this.entryHttp(host);
    return "status" in e ? e : e.http!;
  };

  private entryHttp(host: string): Entry | Refusal {
    const hit = host ? this.router.route(host) : undefined;
    if (!hit) {
      this.unroutedCount(`no tenant for Host ${JSON.stringify(host)}`);
      return { status: 404, reason: host ? `no tenant serves host ${host}` : "no Host in the request" };
    }
    const e = hit.value;
    if (e.down) return { status: 503, reason: `tenant ${e.name}: ${e.down}` };
    if (!e.http) return { status: 404, reason: `tenant ${e.name} has no ingress_backend for HTTP` };
    return e;
  }

  /** A TLS connection's route by SNI; a string says why it is closed. */
  routeTls(name: string): Route | string {
    const e = this.entryTls(name);
    return typeof e === "string" ? e : e.tls!;
  }

  private entryTls(name: string): Entry | string {
    const hit = this.router.route(name);
    if (!hit) return `no tenant for server name ${JSON.stringify(name)}`;
    const e = hit.value;
    if (e.down) return `tenant ${e.name}: ${e.down}`;
    return e.tls ? e : `tenant ${e.name} has no ingress_tls_backend`;
  }

  /**
   * The connection is counted against the tenant it is routed to (ingress_max_connections), from its first
   * request or its ClientHello until it closes; a keep-alive connection that asks for another tenant moves
   * to that tenant's count. A refusal names the cap; the connection keeps its old count until it closes.
   */
  private admit(conn: Conn, e: Entry): string | undefined {
    const held = this.held.get(conn);
    if (held?.slot === e.slot) return undefined;
    if (!this.counts.enter(e.slot, e.max, "ingress")) {
      e.stats[Stat.IngressRefusedCap] = e.stats[Stat.IngressRefusedCap]! + 1;
      const why = `tenant ${e.name}: ingress_max_connections (${e.max})${CAP_REACHED}`;
      this.owner.warn(`icap:${e.name}`, `${why}; refusing new ingress connections for it`);
      return why;
    }
    if (held) this.counts.leave(held.slot, "ingress");
    this.held.set(conn, { slot: e.slot });
    return undefined;
  }

  private routeFor(conn: Conn, host: string): Route | Refusal {
    const e = this.entryHttp(host);
    if ("status" in e) return e;
    const refused = this.admit(conn, e);
    return refused ? { status: 503, reason: refused } : e.http!;
  }

  private routeTlsFor(conn: Conn, name: string): Route | string {
    const e = this.entryTls(name);
    if (typeof e === "string") return e;
    return this.admit(conn, e) ?? e.tls!;
  }

  /** Descriptors for the client and its backend connection come from the process budget, as on egress. */
  private reserve(sock: Duplex): boolean {
    if (!reserveConnectionFds(sock, this.counts, this.env, this.owner, "ingress")) return false;
    this.counts.ingressConnections(1);
    return true;
  }

  private acceptHttp(sock: Duplex, peer: Peer): ClientSink | undefined {
    if (!this.reserve(sock)) return undefined;
    const conn = new ProxyConn(sock, this.unrouted, peer.remoteAddress, this.env);
    conn.router = (host) => this.routeFor(conn, host);
    conn.owner = this;
    this.conns.add(conn);
    return conn;
  }

  private acceptSni(sock: Duplex): ClientSink | undefined {
    if (!this.reserve(sock)) return undefined;
    // A connection refused at its tenant's cap was routed: it is counted there, not as unrouted.
    let capped = false;
    const routes: SniRoutes = {
      routeTls: (name) => {
        const r = this.routeTlsFor(conn, name);
        capped = typeof r === "string" && this.held.get(conn) === undefined && r.endsWith(CAP_REACHED);
        return r;
      },
      refusedTls: (why) => (capped ? undefined : this.refusedTls(why)),
      release: (c) => this.release(c),
    };
    const conn = new SniConn(sock, routes, this.env);
    conn.owner = this;
    this.conns.add(conn);
    return conn;
  }

  /** A connection finished (called once per connection, through env.closed or SniConn). */
  release(conn: Conn): void {
    if (!this.conns.delete(conn)) return;
    this.counts.releaseFds(2, "ingress");
    this.counts.ingressConnections(-1);
    const held = this.held.get(conn);
    if (held) {
      this.held.delete(conn);
      this.counts.leave(held.slot, "ingress");
    }
  }

  sweep(now: number): void {
    for (const c of this.conns) c.sweep(now);
    for (const e of this.entries.values()) e.http?.pool?.sweep(now);
  }

  /** Stop listening; let exchanges finish for `graceMs`, then cut what is left. */
  stop(graceMs: number): Promise<void> {
    for (const l of this.listeners) l.stop(false);
    this.listeners = [];
    for (const e of this.entries.values()) e.http?.pool?.closeAll();
    return drainAll(this.conns, graceMs);
  }

  /** For SniConn: a refused TLS connection is counted and logged (rate-limited). */
  refusedTls(why: string): void {
    this.unroutedCount(`TLS connection closed: ${why}`);
  }
}
