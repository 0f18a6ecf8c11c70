// The supervisor: the live set of tenants, brought to a desired set by applying only the difference.
import { statSync } from "node:fs";
import type { DaemonConfig, TenantSpec } from "./config/types.ts";
import { armedFaults } from "./faults.ts";
import { LogLevels } from "consola";
import { logger } from "./log.ts";
import { closeFd, NativeError, netnsIdentity, openNetns } from "./netns/native.ts";
import { strayThreads } from "./netns/threads.ts";
import { type AttachFailure, WorkerPool } from "./worker/pool.ts";
import { SharedCounts, sharedCountsBuffer } from "./worker/shared-counts.ts";
import type { MetricSources } from "./metrics/snapshot.ts";
import { descriptorLimit } from "./netns/limits.ts";
import { expiryWarning, type KeyPair, loadCa, loadKeyPair } from "./tls/material.ts";
import { FileWatch } from "./tls/watch.ts";
import type { AttachMaterial } from "./worker/tenant-group.ts";

export type TenantState = "serving" | "waiting" | "failed";

export interface Tenant {
  spec: TenantSpec;
  state: TenantState;
  error?: string;
  /** dev:ino of the namespace it is attached to, while serving. */
  identity?: string;
  attempts: number;
  retry?: ReturnType<typeof setTimeout>;
  /** Bumped on every change or removal: the outcome of an attach started for an older generation is ignored. */
  generation: number;
  /** The certificate pair it uses (key of Daemon.pairs), while it has https:// listeners. */
  pair?: string;
  /** Ingress: the namespace fd the workers connect through now (kept open while they may use it). */
  ingressFd?: number;
  /** Why its ingress hosts answer 503 now (namespace missing or gone). */
  ingressDown?: string;
  /** Ingress updates of this tenant, one after another: an fd is closed only once every worker has let it go. */
  ingressChain?: Promise<void>;
}

/** A certificate and key file pair in use by tenants: what is served now, and why the files on disk are not (if so). */
export interface PairState {
  cert: string;
  key: string;
  served?: KeyPair;
  error?: string;
  users: Set<string>;
}

/** An attach that cannot start because a file it needs is unusable: the tenant's failure, never another's. */
class MaterialError extends Error {
  readonly code = "ETLS";
}

export interface ApplyResult {
  added: string[];
  removed: string[];
  replaced: string[];
  unchanged: number;
}

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
/** Grace for connections of a tenant whose namespace vanished: the kernel frees the namespace once they close. */
const VANISHED_GRACE_MS = 1000;

/** A namespace that is not there (yet) is "waiting"; anything else that stops an attach is "failed". */
function stateFor(failure: AttachFailure): TenantState {
  return failure.code === "ENOENT" || failure.code === "ENOTNETNS" ? "waiting" : "failed";
}

/** What is served, without where it was declared: two specs equal here need no re-attach. */
export function sameSpec(a: TenantSpec, b: TenantSpec): boolean {
  const { source: _a, ...ra } = a;
  const { source: _b, ...rb } = b;
  return JSON.stringify(ra) === JSON.stringify(rb);
}

/**
 * dev:ino of the namespace now at `path`, as fstat on an opened fd reports it; undefined when the path
 * is gone; null when it cannot be told now (any other error: say nothing rather than detach a tenant).
 */
function identityAt(path: string): string | undefined | null {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "ENOENT" || code === "ENOTDIR" ? undefined : null;
  }
}

export class Daemon {
  readonly tenants = new Map<string, Tenant>();
  readonly pool: WorkerPool;
  readonly startedAt = Date.now();
  private stopped = false;
  /** Attaches in flight: while any is, some worker may be inside a window, so the thread check waits. */
  private inflight = 0;
  private checkPending = false;

  /** RLIMIT_NOFILE in force (Bun raises the soft limit to the hard one at start). */
  readonly fdLimit = descriptorLimit();
  /** Counters every worker shares: descriptors, and open connections per tenant slot. */
  private readonly countsBuffer = sharedCountsBuffer(this.fdLimit);
  readonly sharedCounts = new SharedCounts(this.countsBuffer);

  constructor(readonly config: DaemonConfig) {
    this.pool = new WorkerPool(config.workers, {
      accessLog: config.accessLog,
      debug: logger.level >= LogLevels.debug,
      logFormat: config.logFormat,
      replaceGraceMs: config.shutdownGraceMs,
      engine: config.engine,
      counts: this.countsBuffer,
    });
    this.pool.onReplaced = (index) => void this.reattachWorker(index);
    this.pool.onLingerEnd = () => this.checkThreads();
    const armed = armedFaults();
    if (armed.length) logger.warn(`fault injection armed (for tests; the release binary ignores it): ${armed.join(", ")}`);
  }

  start(): Promise<void> {
    return this.pool.start();
  }

  /**
   * Make the live tenants equal to `desired`: attach the new, re-attach the changed (new sockets are
   * bound before the old close, so the same address never stops answering), detach the gone. Tenants
   * whose spec is unchanged are not touched: their listeners and connections stay as they are.
   * Resolves when every attach it started has an outcome.
   */
  async apply(desired: TenantSpec[], removeGraceMs = this.config.shutdownGraceMs): Promise<ApplyResult> {
    const result: ApplyResult = { added: [], removed: [], replaced: [], unchanged: 0 };
    const want = new Map(desired.map((s) => [s.name, s]));
    let addrs = 0;
    for (const s of desired) addrs += s.listen.length;
    this.pool.plan(addrs, this.fdLimit);
    const work: Promise<void>[] = [];
    for (const [name, t] of this.tenants) {
      if (want.has(name)) continue;
      result.removed.push(name);
      work.push(this.remove(t, removeGraceMs));
    }
    for (const spec of desired) {
      const t = this.tenants.get(spec.name);
      if (!t) {
        const fresh: Tenant = { spec, state: "waiting", attempts: 0, generation: 0 };
        this.tenants.set(spec.name, fresh);
        result.added.push(spec.name);
        work.push(this.attach(fresh));
      } else if (t.spec !== spec && !sameSpec(t.spec, spec)) {
        this.bump(t);
        this.releasePair(t);
        // Ingress taken away by the new spec: its hosts go now (a changed one is updated by the attach).
        if (t.spec.ingress && !spec.ingress) void this.ingressRemove(t);
        t.spec = spec;
        t.attempts = 0;
        result.replaced.push(spec.name);
        work.push(this.attach(t));
      } else {
        // The same object is the common case (specs are kept, not rebuilt): no comparison at all, which
        // keeps a live add at 10,000 tenants cheap. An equal spec from elsewhere changes nothing on the wire.
        t.spec = spec;
        result.unchanged++;
      }
    }
    // One line, however many tenants: 10,000 of them must not mean 10,000 lines.
    const insecure = [...result.added, ...result.replaced].filter((n) => want.get(n)!.upstreamInsecure);
    if (insecure.length > 0) {
      const first = want.get(insecure[0]!)!;
      const more = insecure.length > 1 ? ` and ${insecure.length - 1} more tenant(s)` : "";
      logger.warn(`upstream_insecure = true: upstream certificates are not verified for tenant ${first.name} (${first.upstream?.text})${more}`);
    }
    await Promise.all(work);
    this.checkThreads();
    return result;
  }

  /** Cancel what is pending for a tenant: a retry, and the outcome of an attach in flight. */
  private bump(t: Tenant): void {
    t.generation++;
    if (t.retry) clearTimeout(t.retry);
    t.retry = undefined;
  }

  private async remove(t: Tenant, graceMs: number): Promise<void> {
    this.bump(t);
    this.releasePair(t);
    this.tenants.delete(t.spec.name);
    if (t.ingressChain || t.spec.ingress) void this.ingressRemove(t);
    await this.pool.detach(t.spec.name, graceMs);
  }

  /**
   * Attaches hold a namespace descriptor each until the workers answer: at most this many at once, so
   * attaching 10,000 tenants never holds 10,000 namespace files open beside their listeners.
   */
  private static readonly MAX_OPEN_NAMESPACES = 256;
  private openNamespaces = 0;
  /** Attaches waiting for a slot, first in first out (a head index: shift() is O(n) with 10,000 waiting). */
  private waitingForSlot: (() => void)[] = [];
  private waitingHead = 0;

  private async takeSlot(): Promise<void> {
    if (this.openNamespaces < Daemon.MAX_OPEN_NAMESPACES) {
      this.openNamespaces++;
      return;
    }
    await new Promise<void>((resolve) => this.waitingForSlot.push(resolve));
  }

  private giveSlot(): void {
    const next = this.waitingForSlot[this.waitingHead];
    if (next) this.waitingHead++;
    if (this.waitingHead === this.waitingForSlot.length) {
      this.waitingForSlot = [];
      this.waitingHead = 0;
    }
    if (next) next();
    else this.openNamespaces--;
  }

  /** Open the namespace (here, on the main thread, before any worker's setns), attach, record the outcome. */
  private async attach(t: Tenant, only?: number): Promise<void> {
    const generation = t.generation;
    t.attempts++;
    let failure: AttachFailure | undefined;
    let identity: string | undefined;
    let fd = -1;
    this.inflight++;
    await this.takeSlot();
    let ingressFd = -1;
    try {
      // Files first: an unusable certificate fails this tenant before its namespace is even opened.
      const material = this.materialFor(t);
      fd = openNetns(t.spec.netns);
      identity = netnsIdentity(fd, t.spec.netns);
      if (t.spec.listen.length > 0) failure = await this.pool.attach(t.spec, fd, only, material);
      else if (only === undefined && this.pool.workersOf(t.spec.name) > 0) await this.pool.detach(t.spec.name, this.config.shutdownGraceMs); // no more egress listeners
      if (!failure && t.spec.ingress && only === undefined && t.generation === generation) {
        // The fd now belongs to the ingress chain, which closes it once no worker can use it.
        ingressFd = fd;
        fd = -1;
      }
    } catch (err) {
      const e = err as NativeError;
      failure = { message: e.message, code: err instanceof NativeError || err instanceof MaterialError ? e.code : "ERROR" };
    } finally {
      if (fd >= 0) closeFd(fd);
      this.giveSlot();
      this.inflight--;
      if (this.inflight === 0 && this.checkPending) this.checkThreads();
    }
    const current = !this.stopped && t.generation === generation && this.tenants.get(t.spec.name) === t;
    if (t.spec.ingress && only === undefined) {
      // A stale attach's fd was never given to a worker: a newer attach makes its own update.
      if (ingressFd >= 0 && current) await this.ingressUpdate(t, ingressFd);
      else if (ingressFd >= 0) closeFd(ingressFd);
      else if (current && failure) void this.ingressUpdate(t, -1, `namespace ${t.spec.netns}: ${failure.message}`);
    }
    if (!current) return;
    if (failure) this.attachFailures++;
    if (!failure) {
      if (t.state !== "serving" && t.attempts > 1) logger.success(`tenant ${t.spec.name}: serving after ${t.attempts} attempts`);
      t.state = "serving";
      t.error = undefined;
      t.identity = identity;
      t.attempts = 0;
      return;
    }
    const previous = t.error;
    t.state = stateFor(failure);
    t.error = `${failure.message} [${failure.code}]`;
    t.identity = undefined;
    // `ip netns add` creates an empty file and mounts the namespace on it a moment later, with no
    // file-system event for the mount: look again soon rather than after the usual backoff.
    const placeholder = failure.code === "ENOTNETNS" && t.attempts <= 3;
    const delay = placeholder ? 100 * t.attempts : Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(t.attempts - 1, 5));
    // One line per tenant when something goes wrong or changes; repeats of the same failure stay at debug.
    const line = `tenant ${t.spec.name} (netns ${t.spec.netns}): ${t.error}; retrying in ${delay / 1000} s`;
    if (previous === t.error) logger.debug(line);
    else logger.warn(line);
    t.retry = setTimeout(() => {
      t.retry = undefined;
      void this.attach(t).then(() => this.checkThreads());
    }, delay);
  }

  /**
   * Follow the namespaces: a serving tenant whose namespace file vanished or now names another
   * namespace is detached (so the kernel can free the old one) and waits; a waiting tenant whose file
   * appeared is attached now rather than at its next backoff. Cheap: one stat per tenant.
   */
  async followNamespaces(): Promise<void> {
    const work: Promise<void>[] = [];
    for (const t of this.tenants.values()) {
      if (t.state === "serving") {
        const now = identityAt(t.spec.netns);
        if (now === t.identity || now === null) continue;
        logger.warn(`tenant ${t.spec.name}: namespace ${t.spec.netns} ${now ? "was replaced" : "is gone"}; closing its listeners`);
        this.bump(t);
        if (t.spec.ingress) void this.ingressUpdate(t, -1, `namespace ${t.spec.netns} ${now ? "was replaced" : "is gone"}`);
        t.state = "waiting";
        t.error = `namespace ${t.spec.netns} ${now ? "replaced" : "gone"}`;
        t.identity = undefined;
        t.attempts = 0;
        const gen = t.generation;
        work.push(
          this.pool.detach(t.spec.name, VANISHED_GRACE_MS).then(() => {
            if (t.generation === gen && this.tenants.get(t.spec.name) === t) return this.attach(t);
          }),
        );
      } else if (t.state === "waiting" && t.retry && typeof identityAt(t.spec.netns) === "string") {
        this.bump(t);
        work.push(this.attach(t));
      }
    }
    await Promise.all(work);
    if (work.length) this.checkThreads();
  }

  // ------------------------------------------------------------ ingress

  /**
   * Point every worker's ingress entry for `t` at namespace fd `fd` (-1 with `down`: its hosts answer
   * 503). Updates of one tenant run in order, and the fd they replace is closed only after every worker
   * acknowledged the new one: a closed fd number could be reused for another tenant's namespace.
   */
  private ingressUpdate(t: Tenant, fd: number, down?: string): Promise<void> {
    const run = async () => {
      const before = t.ingressFd;
      if (this.tenants.get(t.spec.name) !== t) {
        // Removed meanwhile (its drop is queued after this): this fd was never given out.
        if (fd >= 0) closeFd(fd);
        return;
      }
      await this.pool.ingressSet(t.spec, fd, fd >= 0 ? undefined : down);
      t.ingressFd = fd >= 0 ? fd : undefined;
      t.ingressDown = fd >= 0 ? undefined : down;
      if (before !== undefined && before !== fd) closeFd(before);
    };
    return this.ingressQueue(t, run);
  }

  /** Run `step` after every ingress update of `t` queued before it (whether those succeeded or not). */
  private ingressQueue(t: Tenant, step: () => Promise<void>): Promise<void> {
    t.ingressChain = (t.ingressChain ?? Promise.resolve()).then(step, step);
    return t.ingressChain;
  }

  private ingressRemove(t: Tenant): Promise<void> {
    const run = async () => {
      await this.pool.ingressDrop(t.spec.name);
      if (t.ingressFd !== undefined) closeFd(t.ingressFd);
      t.ingressFd = undefined;
      t.ingressDown = undefined;
    };
    return this.ingressQueue(t, run);
  }

  /** The ingress listeners, in every worker (at start) or in a replaced one. */
  async listenIngress(only?: number): Promise<AttachFailure | undefined> {
    return this.pool.ingressListen(this.config.ingressListen, only);
  }

  /** A replaced worker has no listeners: give it those of every serving tenant. */
  private async reattachWorker(index: number): Promise<void> {
    const failed = await this.listenIngress(index);
    if (failed) logger.error(`worker ${index}: ingress listener: ${failed.message}`);
    for (const t of this.tenants.values()) {
      if (!t.spec.ingress) continue;
      const run = () => this.pool.ingressSet(t.spec, t.ingressFd ?? -1, t.ingressDown ?? (t.ingressFd === undefined ? "not attached yet" : undefined), index);
      void this.ingressQueue(t, run);
    }
    const serving = [...this.tenants.values()].filter((t) => t.state === "serving" && this.pool.placedOn(t.spec.name, index));
    await Promise.all(serving.map((t) => this.attach(t, index)));
    this.checkThreads();
    logger.info(`worker ${index} replaced; ${serving.length} serving tenant(s) attached to it again`);
  }

  /**
   * The invariant of the window rule, checked cheaply at runtime. Only when no attach is in flight:
   * during one, a worker is legitimately inside a tenant namespace for a moment (checking then gave
   * false alarms when many retries ran at once). Nor while a stranded worker is ending: its thread is
   * known to be in a tenant namespace until then. A violation is a bug: say so loudly.
   */
  checkThreads(): void {
    if (this.inflight > 0 || this.pool.lingering.size > 0) {
      this.checkPending = true;
      return;
    }
    this.checkPending = false;
    try {
      const first = strayThreads();
      if (first.length === 0) return;
      // An ingress connect enters a tenant's namespace for a few microseconds (in C, see libnetns.c):
      // a thread seen there once may just be doing that. One still there a moment later is stuck.
      setTimeout(() => {
        try {
          const again = new Set(strayThreads().map((s) => `${s.tid} ${s.netns}`));
          for (const s of first) if (again.has(`${s.tid} ${s.netns}`)) logger.error(`thread ${s.tid} is in namespace ${s.netns}, not the process's own: this is a bug in nsproxy`);
        } catch {}
      }, 50);
    } catch (err) {
      // Out of descriptors (EMFILE) is the likely cause; the check is a safety net, not worth dying for.
      logger.warn(`could not check the threads' namespaces: ${(err as Error).message}`);
    }
  }

  // ------------------------------------------------------------ certificates

  /** Certificate pairs in use, by "cert\0key": tenants sharing files share one read and one watch. */
  readonly pairs = new Map<string, PairState>();
  /** Rotation: every file of a pair in use is looked at once a second (see tls/watch.ts for why polling). */
  private readonly files = new FileWatch((changed) => this.filesChanged(changed));

  /** What the worker needs from files for `t`: its pair (read now if never read), an upstream CA. Throws MaterialError. */
  private materialFor(t: Tenant): AttachMaterial | undefined {
    const spec = t.spec;
    if (!spec.tls && !spec.upstreamCa) return undefined;
    const material: AttachMaterial = {};
    if (spec.tls) {
      const p = this.pairOf(t);
      if (!p.served) this.readPair(p);
      if (!p.served) throw new MaterialError(p.error ?? `tls_cert ${p.cert}: not loaded`);
      material.tls = { cert: p.served.cert, key: p.served.key };
    }
    if (spec.upstreamCa) {
      try {
        material.upstreamCa = this.caText(spec.upstreamCa);
      } catch (err) {
        throw new MaterialError((err as Error).message);
      }
    }
    return material;
  }

  /** upstream_ca files by path, read again only when their stat changes: 10,000 tenants often share one CA. */
  private readonly cas = new Map<string, { sig: string; pem: string }>();

  private caText(file: string): string {
    let sig = "";
    try {
      const st = statSync(file);
      sig = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      // loadCa says why, naming the file.
    }
    const known = this.cas.get(file);
    if (sig && known?.sig === sig) return known.pem;
    const pem = loadCa(file);
    if (sig) this.cas.set(file, { sig, pem });
    return pem;
  }

  private pairOf(t: Tenant): PairState {
    const { cert, key } = t.spec.tls!;
    const id = `${cert}\0${key}`;
    if (t.pair !== undefined && t.pair !== id) this.releasePair(t);
    let p = this.pairs.get(id);
    if (!p) {
      p = { cert, key, users: new Set() };
      this.pairs.set(id, p);
      this.files.watch(cert, id);
      this.files.watch(key, id);
      this.files.start();
    }
    p.users.add(t.spec.name);
    t.pair = id;
    return p;
  }

  private releasePair(t: Tenant): void {
    const id = t.pair;
    if (id === undefined) return;
    t.pair = undefined;
    const p = this.pairs.get(id);
    if (!p) return;
    p.users.delete(t.spec.name);
    if (p.users.size > 0) return;
    this.pairs.delete(id);
    this.files.unwatch(p.cert, id);
    this.files.unwatch(p.key, id);
    if (this.pairs.size === 0) this.files.stop();
  }

  /** Read a pair's files; true when what is served changed. A bad read keeps what was served. */
  private readPair(p: PairState): boolean {
    let next: KeyPair;
    try {
      next = loadKeyPair(p.cert, p.key);
    } catch (err) {
      const message = (err as Error).message;
      if (p.error !== message) {
        const users = [...p.users].slice(0, 5).join(", ") + (p.users.size > 5 ? `, … (${p.users.size})` : "");
        const keeps = p.served ? "the certificate served before stays in use" : "no certificate to serve";
        logger.error(`tls: ${message}; ${keeps} for tenant(s) ${users}`);
      }
      p.error = message;
      return false;
    }
    p.error = undefined;
    if (p.served && p.served.cert === next.cert && p.served.key === next.key) return false;
    const warning = expiryWarning(next);
    if (warning) logger.warn(`tls: ${warning}`);
    p.served = next;
    return true;
  }

  /** Files changed on disk: re-read their pairs; tenants whose pair changed get new listeners (old connections finish). */
  private filesChanged(changed: string[]): void {
    const set = new Set(changed);
    for (const [id, p] of this.pairs) {
      if (!set.has(p.cert) && !set.has(p.key)) continue;
      const before = p.served !== undefined;
      if (!this.readPair(p)) continue;
      logger.info(`tls: ${p.cert} ${before ? "changed" : "is usable now"} (expires ${p.served!.notAfter.toISOString()}); re-attaching ${p.users.size} tenant(s)`);
      for (const name of p.users) {
        const t = this.tenants.get(name);
        if (!t || t.pair !== id) continue;
        this.bump(t);
        t.attempts = 0;
        void this.attach(t).then(() => this.checkThreads());
      }
    }
  }

  /** reload: every pair in use is read again now (changes apply as on rotation). */
  refreshCertificates(): void {
    const all: string[] = [];
    for (const p of this.pairs.values()) all.push(p.cert, p.key);
    this.filesChanged(all);
  }

  /** Failed attach attempts since start (metrics). */
  attachFailures = 0;
  /** The start-up attach pass is done and the daemon is not stopping: /readyz answers 200. */
  ready = false;

  /** What the metrics are read from: the workers' buffers, the tenant slots, the shared counts. */
  metricSources(): MetricSources {
    const c = this.counts();
    return {
      workerStats: this.pool.workerStats(),
      slotCounters: (slot) => this.pool.slotCounters(slot),
      tenantSlots: this.pool.tenantSlots(),
      openConnections: (slot) => this.sharedCounts.open(slot),
      states: { serving: c.serving, waiting: c.waiting, failed: c.failed },
      attachFailures: this.attachFailures,
      workerReplacements: this.pool.replacements,
      descriptorsLimit: this.fdLimit,
      tenantLimit: this.config.metrics.tenantLimit,
    };
  }

  counts(): { total: number; serving: number; waiting: number; failed: number } {
    const c = { total: this.tenants.size, serving: 0, waiting: 0, failed: 0 };
    for (const t of this.tenants.values()) c[t.state]++;
    return c;
  }

  /** Stop accepting everywhere, let in-flight requests finish within the grace period. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.ready = false;
    this.files.stop();
    for (const t of this.tenants.values()) if (t.retry) clearTimeout(t.retry);
    await this.pool.stop(this.config.shutdownGraceMs);
  }
}
