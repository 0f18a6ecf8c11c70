// Pinned worker: one OS thread for its whole life, holding every tenant's listeners and running the proxy engine on them.
import { hostsOverlap } from "../config/overlap.ts";
import type { ListenAddr, TenantSpec } from "../config/types.ts";
import type { Env, UpstreamEvents } from "../engine/types.ts";
import type { WorkerFaults } from "../faults.ts";
import { closeFd, connectInsideRaw, enterNetnsRaw, errnoName, errorText, failNextEnter, migrateReqOnRaw, netnsIdentity, openNetns, openOwnNetns, socketErrorRaw, STRANDED } from "../netns/native.ts";
import { ownThreadId } from "../netns/threads.ts";
import { type AccessSink, stdoutAccessLog } from "../proxy/access-log.ts";
import { notTls } from "../runtime/handshake-failure.ts";
import { dial, dialFd, listenTcp, runtime } from "../runtime/index.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";
import { SharedCounts } from "./shared-counts.ts";
import { SLOTS_PER_CHUNK, Stat, W_LOOP_DELAY, W_SHED, WORKER_HEADER } from "../engine/stats.ts";
import { TcpConn } from "../engine/tcp.ts";
import { type AttachMaterial, type Conn, TenantGroup } from "./tenant-group.ts";
import { Ingress } from "./ingress.ts";
import { ListenError, listenInside, StrandedError } from "./window.ts";

declare const self: Worker;

// The namespace this thread had when it started is home; opened now, before any setns.
const homeFd = openOwnNetns();
let access: AccessSink | undefined;
let faults: WorkerFaults = {};
let replaceGraceMs = 10_000;
let counts: SharedCounts;
let env: Env;
const tenants = new Map<string, TenantGroup>();
/** The ingress direction (host listeners routing into tenants' namespaces), made at init. */
let ingress: Ingress | undefined;
let stranded = false;
/** Test fault (NSPROXY_FAULT_STRAND_INGRESS): the namespace fd whose next ingress connect cannot return home. */
let strandIngressFd = -1;
/** How long a stranded worker's exchanges in flight may go on before its thread ends. */
const STRANDED_GRACE_MS = 2000;
/** How long a stranded worker may spend turning on tcp_migrate_req before it closes its listeners. */
const STRANDED_ARM_MS = 1000;
/** Each tenant group's namespace path (a stranded worker opens it again; see armMigration). */
const netnsPaths = new WeakMap<TenantGroup, string>();

/** While a batch is handled, answers given at once are collected and sent back as one message. */
let collected: FromWorker[] | undefined;
const post = (msg: FromWorker) => (collected ? collected.push(msg) : self.postMessage(msg));

/** --verbose: rate-limited debug lines are sent to the main thread too. */
let debugOn = false;

/** Warnings a tenant can cause at any rate are logged at most once per 10 s per kind. */
const lastWarned = new Map<string, number>();
const owner = {
  warn(kind: string, message: string) {
    const now = Date.now();
    if (now - (lastWarned.get(kind) ?? 0) < 10_000) return;
    lastWarned.set(kind, now);
    post({ type: "log", level: "warn", message });
  },
  debug(kind: string, message: string) {
    if (!debugOn) return;
    const now = Date.now();
    if (now - (lastWarned.get(kind) ?? 0) < 10_000) return;
    lastWarned.set(kind, now);
    post({ type: "log", level: "debug", message });
  },
};

/**
 * A TCP-mode (or sni:// ingress) connection whose upstream could not be made: its client only sees a
 * close, so the log says why, once per tenant per 10 s (an upstream down for a busy tenant fails every
 * connection; the counter has them all).
 */
function connectFailed(c: TcpConn): void {
  const { tenant, direction } = c.route;
  const rest = `; the client's connection was closed (counted in nsproxy_tenant_upstream_connect_failures_total; logged at most every 10 s per tenant)`;
  if (direction === "ingress") owner.warn(`connect-ingress:${tenant}`, `ingress: ${c.failure}${rest}`);
  else owner.warn(`connect:${tenant}`, `tenant ${tenant}: ${c.failure}${rest}`);
}

/**
 * Listen for `spec` in its namespace. `exclusive`: no other worker of this daemon listens for it, so
 * each address must be free of every socket but this tenant's own (its old listeners when replaced,
 * and its earlier addresses of this attach, which may overlap: 0.0.0.0 and 127.0.0.1) before binding.
 */
function attach(spec: TenantSpec, nsFd: number, slot: number, material: AttachMaterial = {}, exclusive = false, migrate = false): void {
  // Test fault: the kernel refuses this attach's return home, so the check in listenInside is what runs.
  if (spec.name === faults.strand) failNextEnter(homeFd);
  const group = new TenantGroup(spec, tenantStats(slot), slot, counts, env, owner, material);
  const tls = material.tls;
  /** The listener the last listen call made (a strand throws after making it, before it is pushed). */
  let made: TenantGroup["listeners"][number] | undefined;
  try {
    // Replacing: the old listeners close right after, so the namespace gets tcp_migrate_req (see window.ts).
    const old = tenants.get(spec.name);
    // Its old listeners count as its own only in the same namespace (a tenant moved to another one probes there).
    group.namespace = netnsIdentity(nsFd, spec.netns);
    netnsPaths.set(group, spec.netns);
    const own: ListenAddr[] = old && old.namespace === group.namespace ? [...old.addresses] : [];
    for (const addr of spec.listen) {
      if (addr.tls && !tls) throw new ListenError(addr.text, "ETLS", `listen ${addr.text}: no certificate was given for this https:// listener`);
      const listen = addr.tls ? (host: string, port: number) => (made = listenTcp(host, port, group.tlsHooks, tls)) : (host: string, port: number) => (made = listenTcp(host, port, group));
      const alone = exclusive && !own.some((o) => o.port === addr.port && hostsOverlap(o.host, addr.host));
      group.listeners.push(listenInside(nsFd, homeFd, addr, listen, migrate || old !== undefined, alone));
      own.push(addr);
    }
  } catch (err) {
    if (err instanceof StrandedError) {
      // The listener made just before the failed return home is this group's too: armed, then closed with the rest.
      if (made && !group.listeners.includes(made)) group.listeners.push(made);
      armMigration([group]);
    }
    for (const l of group.listeners) l.stop(true);
    throw err;
  }
  counts.listeners(group.listeners.length);
  // A re-attach binds the new sockets first (SO_REUSEPORT lets both exist), then retires the old ones:
  // they stop accepting at once, and their exchanges in flight may finish within the grace period.
  const old = tenants.get(spec.name);
  tenants.set(spec.name, group);
  if (old) void retire(old, replaceGraceMs);
  if (spec.name === faults.exitAfter) process.exit(70);
  if (spec.name === faults.throwAfter) {
    setTimeout(() => {
      throw new Error(`injected fault after attaching ${spec.name} (NSPROXY_FAULT_WORKER_THROW)`);
    });
  }
}

/**
 * Ingress: connect to host:port inside a tenant's namespace. The C library enters the namespace, makes
 * a non-blocking socket, starts the connect and returns home in one call (no JavaScript runs inside);
 * the runtime adopts the fd. A refused connect is seen when the socket opens (SO_ERROR), so the 502 can
 * name the errno.
 */
function dialInside(nsFd: number, host: string, port: number, events: UpstreamEvents): void {
  if (nsFd < 0) {
    // A route of a replaced or removed ingress entry (see ingress.ts retire()): its fd may name another namespace now.
    queueMicrotask(() => events.onClose("the tenant's namespace changed while the request was in flight"));
    return;
  }
  if (nsFd === strandIngressFd) {
    strandIngressFd = -1;
    failNextEnter(homeFd);
  }
  const fd = connectInsideRaw(nsFd, homeFd, host, port);
  if (fd === STRANDED) {
    queueMicrotask(() => events.onClose("worker stranded outside its own network namespace"));
    strand(`setns back to own namespace failed after an ingress connect`);
    return;
  }
  if (fd < 0) {
    queueMicrotask(() => events.onClose(`${errorText(-fd).toLowerCase()} (${errnoName(-fd)})`));
    return;
  }
  dialFd(fd, {
    onOpen(sock) {
      const err = socketErrorRaw(fd);
      if (err !== 0) {
        sock.terminate();
        events.onClose(`${errorText(err).toLowerCase()} (${errnoName(err)})`);
        return;
      }
      events.onOpen(sock);
    },
    onData: (d) => events.onData(d),
    onDrain: () => events.onDrain(),
    onEnd: events.onEnd ? () => events.onEnd!() : undefined,
    onClose: (e) => events.onClose(e),
  });
}

/**
 * This thread could not return home: it is in a tenant's namespace for good, and must create nothing
 * more there (a dial would connect from that namespace). It stops accepting, refuses to dial, lets the
 * exchanges in flight finish on the connections they have; the main thread starts another, and ends
 * this one when it says it is drained.
 */
function strand(message: string): void {
  stranded = true;
  const all = [...tenants.values()];
  tenants.clear();
  armMigration(all);
  const done = Promise.all([...all.map((g) => retire(g, STRANDED_GRACE_MS)), ingress?.stop(STRANDED_GRACE_MS)]);
  post({ type: "fatal", message });
  // Ended by the main thread, not by process.exit here: a thread that ends itself first starts one more
  // (JavaScriptCore's "Signal Sender"), which would be born in the tenant's namespace (seen).
  void done.then(() => post({ type: "drained" }));
}

/**
 * A stranded worker's listeners close while the other workers' listeners for the same tenants stay (SO_REUSEPORT
 * siblings). Connections the kernel has queued on a closing listener are reset unless tcp_migrate_req is on in its
 * namespace, and nothing had turned it on there (only a tenant's re-attach does): a client connecting in that
 * instant got ECONNRESET (seen under Deno: 1 or 2 per strand, in about one strand of seven under load). So each
 * tenant's namespace is opened again by its path (skipped if the path names another namespace now) and entered
 * to turn it on; the queued connections then move to a sibling. The thread cannot go home any more, so visiting
 * other namespaces costs it nothing; only syscalls run while it does. Bounded in time: each write costs more the
 * more namespaces the host has (~2.7 ms at 10,000), and the listeners wait for this.
 */
function armMigration(groups: TenantGroup[]): void {
  const until = performance.now() + STRANDED_ARM_MS;
  const armed = new Set<string>();
  const tried = new Set<string>();
  for (const g of groups) {
    const path = netnsPaths.get(g);
    if (!path || tried.has(g.namespace) || performance.now() > until) continue;
    tried.add(g.namespace);
    let fd = -1;
    try {
      fd = openNetns(path);
      if (netnsIdentity(fd, path) === g.namespace && enterNetnsRaw(fd) === 0 && migrateReqOnRaw() === 0) armed.add(g.namespace);
    } catch {
      // gone or unreadable: its queued connections are reset, as they were before
    } finally {
      if (fd >= 0) closeFd(fd);
    }
  }
  const missed = groups.filter((g) => !armed.has(g.namespace)).length;
  if (missed > 0) owner.warn("strand-migrate", `stranded worker: tcp_migrate_req could not be turned on for ${missed} of ${groups.length} tenant(s); connections queued on their listeners here are reset`);
}

/** The engine's clock, refreshed by the sweep: timeouts need no finer grain than the sweep has. */
let coarseNow = performance.now();
const SWEEP_MS = 250;

/** NSPROXY_METRICS_OFF=1 (for the bench's on/off comparison): counters go to a private array nobody reads. */
const metricsOff = process.env.NSPROXY_METRICS_OFF === "1";

/** Tenant counters, chunk by chunk as the main thread sends them (slot k*SLOTS_PER_CHUNK.. in chunk k). */
const statsChunks: SharedArrayBuffer[] = [];

/** A tenant slot's counters in this worker's metrics. */
function tenantStats(slot: number): Float64Array {
  const chunk = statsChunks[Math.floor(slot / SLOTS_PER_CHUNK)];
  if (metricsOff || !chunk) return new Float64Array(Stat.COUNT);
  return new Float64Array(chunk, (slot % SLOTS_PER_CHUNK) * Stat.COUNT * 8, Stat.COUNT);
}

/** Every open connection is checked against its timers a few times a second. */
function sweep(): void {
  const last = coarseNow;
  const now = (coarseNow = performance.now());
  // How late this tick ran: the event loop's delay, as the main thread reports it per worker.
  if (env.workerStats) env.workerStats[W_LOOP_DELAY] = Math.max(0, now - last - SWEEP_MS) / 1000;
  for (const g of tenants.values()) {
    for (const c of g.conns) c.sweep(now);
    g.route.pool?.sweep(now);
  }
  for (const g of retiring) for (const c of g.conns) c.sweep(now);
  ingress?.sweep(now);
  if (counts.excess > 0) shed();
}

/**
 * The descriptor limit was lowered below what is open (an operator's prlimit): accept() fails with EMFILE
 * and Bun's listener retries at once, a busy loop. Idle connections (no exchange in progress) close, ingress
 * first, until the use fits the budget with an eighth of it free, so that other clients can connect again;
 * exchanges in flight finish. Connections close synchronously, so every worker sees the shared count fall
 * as it goes and none closes more than needed.
 */
function shed(): void {
  const headroom = Math.floor(Math.max(0, counts.budget) / 8);
  let n = 0;
  const sets = [ingress?.conns ?? new Set<Conn>(), ...[...tenants.values()].map((g) => g.conns)];
  for (const set of sets) {
    for (const c of set) {
      if (counts.excess <= -headroom) break;
      if (!c.idle) continue;
      c.destroy();
      n++;
    }
  }
  const w = env.workerStats;
  // Counted, not logged: the main thread's one line about the new limit says it.
  if (w) w[W_SHED] = w[W_SHED]! + n;
}
const retiring = new Set<TenantGroup>();

function retire(group: TenantGroup, graceMs: number): Promise<void> {
  retiring.add(group);
  return group.retire(graceMs).finally(() => retiring.delete(group));
}

async function handle(msg: ToWorker): Promise<void> {
  if (stranded) return;
  switch (msg.type) {
    case "batch":
      return handleBatch(msg.messages);
    case "init":
      return init(msg.options);
    case "ingress-listen":
      return ingressListen(msg);
    case "ingress-set":
      if (msg.tenant.name === faults.strandIngress) strandIngressFd = msg.tenant.nsFd;
      ingress!.set(msg.tenant);
      post({ type: "done", id: msg.id });
      return;
    case "ingress-drop":
      ingress!.drop(msg.name);
      post({ type: "done", id: msg.id });
      return;
    case "stats-chunk":
      statsChunks[msg.chunk] = msg.sab;
      return;
    case "attach":
      return attachMsg(msg);
    case "detach": {
      const group = tenants.get(msg.name);
      tenants.delete(msg.name);
      post({ type: "done", id: msg.id });
      if (group) await retire(group, msg.graceMs);
      return;
    }
    case "stop": {
      const all = [...tenants.values()];
      tenants.clear();
      await Promise.all([...all.map((g) => retire(g, msg.graceMs)), ingress?.stop(msg.graceMs)]);
      access?.flush();
      post({ type: "done", id: msg.id });
      return;
    }
  }
}

/**
 * Each message runs to its first await in order, as separate messages would; what they answer
 * synchronously goes back in one message (a stop's answer, after its grace, goes on its own).
 */
function handleBatch(messages: ToWorker[]): void {
  const answers: FromWorker[] = [];
  collected = answers;
  try {
    for (const m of messages) void handle(m);
  } finally {
    collected = undefined;
  }
  if (answers.length) self.postMessage(answers.length === 1 ? answers[0] : { type: "batch", messages: answers });
}

type InitOptions = Extract<ToWorker, { type: "init" }>["options"];

function init(o: InitOptions): void {
  access = o.accessLog ? stdoutAccessLog(o.logFormat) : undefined;
  debugOn = o.debug === true;
  faults = o.faults ?? {};
  replaceGraceMs = o.replaceGraceMs;
  counts = new SharedCounts(o.counts);
  o.statsChunks.forEach((sab, k) => (statsChunks[k] = sab));
  env = {
    limits: { ...o.engine, tunnelTimeoutMs: 3_600_000 },
    // A stranded worker's dial would leave from a tenant's namespace: it fails instead (a 502).
    dial: (to, events) => {
      if (stranded) queueMicrotask(() => events.onClose("worker stranded outside its own network namespace"));
      else if (to.nsFd !== undefined) dialInside(to.nsFd, to.host!, to.port!, events);
      else dial(to, events);
    },
    access,
    now: () => coarseNow,
    // Debug only, and at most one line per tenant per 10 s for each of two kinds (not TLS at all; failed in
    // TLS): a tenant's clients can fail millions of handshakes, and a client refusing the certificate must
    // not hide the plain-HTTP client that came next.
    tlsFailed: (tenant, client, why) =>
      owner.debug(`tls:${tenant}:${notTls(why) ? "plain" : "tls"}`, `tenant ${tenant}: TLS handshake failed${client ? ` (client ${client})` : ""}${why ? `: ${why}` : ""}; counted in nsproxy_tenant_tls_handshake_failures_total`),
    closed: (c) => {
      if (c instanceof TcpConn && c.failure !== undefined) connectFailed(c);
      ((c as Conn).owner as { release(c: Conn): void }).release(c as Conn);
    },
    workerStats: metricsOff ? undefined : new Float64Array(o.stats, 0, WORKER_HEADER),
    writeCopies: runtime.writeCopies,
  };
  coarseNow = performance.now();
  ingress = new Ingress(env, counts, owner, tenantStats);
  setInterval(sweep, SWEEP_MS);
}

/** The host's ingress listeners, bound in this thread's own (the host's) namespace: no window needed. */
function ingressListen(msg: Extract<ToWorker, { type: "ingress-listen" }>): void {
  let at = "";
  try {
    for (const l of msg.listen) {
      at = l.text;
      ingress!.listeners.push(listenTcp(l.host, l.port, l.kind === "sni" ? ingress!.sniHooks : ingress!.httpHooks));
    }
    post({ type: "done", id: msg.id });
  } catch (err) {
    const e = err as Error & { code?: string };
    post({ type: "failed", id: msg.id, message: `${at}: ${e.code ? `${e.code}: ` : ""}${e.message}`, code: e.code ?? "ELISTEN" });
  }
}

function attachMsg(msg: Extract<ToWorker, { type: "attach" }>): void {
  try {
    attach(msg.spec, msg.nsFd, msg.slot, msg.material, msg.exclusive, msg.migrate);
    post({ type: "done", id: msg.id });
  } catch (err) {
    if (err instanceof StrandedError) return strand(err.message);
    const e = err as Error & { code?: string };
    const listenErr = err instanceof ListenError ? err : undefined;
    post({ type: "failed", id: msg.id, message: e.message, code: e.code ?? "ERROR", listen: listenErr?.listen, ...(listenErr?.holders ? { holders: listenErr.holders } : {}) });
  }
}

self.onmessage = (ev: MessageEvent<ToWorker>) => void handle(ev.data);
post({ type: "ready", tid: ownThreadId() });
