// The live set of tenants, brought to a desired set by applying only the difference, and kept there as namespaces come and go.
import type { TenantState } from "../admin/types.ts";
import type { IngressListen, TenantSpec } from "../config/types.ts";
import { logger } from "../log.ts";
import { CertificatePairs, type Material, MaterialError } from "../tls/pairs.ts";
import { ListenClaims } from "./claims.ts";
import { IngressChain } from "./ingress-chain.ts";
import { OpenLimit } from "./open-limit.ts";
import type { AttachFailure, Namespaces, Workers } from "./seams.ts";
import { type ApplyResult, sameSpec, type Tenant } from "./tenant.ts";
import { ThreadCheck } from "./thread-check.ts";

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
/** Grace for connections of a tenant whose namespace vanished: the kernel frees the namespace once they close. */
const VANISHED_GRACE_MS = 1000;
/**
 * Attaches hold a namespace descriptor each until the workers answer: at most this many at once, so
 * attaching 10,000 tenants never holds 10,000 namespace files open beside their listeners.
 */
const MAX_OPEN_NAMESPACES = 256;

/** A namespace that is not there (yet) is "waiting"; anything else that stops an attach is "failed". */
function stateFor(failure: AttachFailure): TenantState {
  return failure.code === "ENOENT" || failure.code === "ENOTNETNS" ? "waiting" : "failed";
}

/** An attach that threw: the namespace's or the file's errno-like code, "ERROR" for anything unexpected. */
function failureOf(err: unknown, coded: boolean): AttachFailure {
  const code = (err as { code?: unknown }).code;
  return { message: (err as Error).message, code: coded && typeof code === "string" ? code : "ERROR" };
}

export interface ReconcilerOptions {
  workers: Workers;
  namespaces: Namespaces;
  /** RLIMIT_NOFILE in force: how many listeners may be spread over every worker. */
  fdLimit: number;
  /** Grace for the connections of a removed or changed tenant. */
  shutdownGraceMs: number;
  /** The ingress host listeners every worker binds (a replaced one too). */
  ingressListen: IngressListen[];
}

export class Reconciler {
  readonly tenants = new Map<string, Tenant>();
  readonly pairs: CertificatePairs;
  /** Failed attach attempts since start (metrics). */
  attachFailures = 0;
  private stopped = false;
  private readonly workers: Workers;
  private readonly namespaces: Namespaces;
  private readonly ingress: IngressChain;
  private readonly threads: ThreadCheck;
  private readonly openLimit = new OpenLimit(MAX_OPEN_NAMESPACES);
  private readonly claims = new ListenClaims();

  constructor(private readonly options: ReconcilerOptions) {
    this.workers = options.workers;
    this.namespaces = options.namespaces;
    this.ingress = new IngressChain(this.workers, this.namespaces, (t) => this.tenants.get(t.spec.name) === t);
    this.threads = new ThreadCheck(this.namespaces, this.workers);
    this.pairs = new CertificatePairs((id, users) => this.pairRotated(id, users));
    this.workers.onReplaced = (index) => void this.reattachWorker(index);
    this.workers.onLingerEnd = () => this.checkThreads();
  }

  /**
   * Make the live tenants equal to `desired`: attach the new, re-attach the changed (new sockets are
   * bound before the old close, so the same address never stops answering), detach the gone. Tenants
   * whose spec is unchanged are not touched: their listeners and connections stay as they are.
   * Resolves when every attach it started has an outcome.
   */
  async apply(desired: TenantSpec[], removeGraceMs = this.options.shutdownGraceMs): Promise<ApplyResult> {
    const result: ApplyResult = { added: [], removed: [], replaced: [], unchanged: 0 };
    const want = new Map(desired.map((s) => [s.name, s]));
    let addrs = 0;
    for (const s of desired) addrs += s.listen.length;
    this.workers.plan(addrs, this.options.fdLimit);
    const removals: Promise<void>[] = [];
    for (const [name, t] of this.tenants) {
      if (want.has(name)) continue;
      result.removed.push(name);
      removals.push(this.remove(t, removeGraceMs));
    }
    // Every worker has closed the removed listeners before a newcomer probes its addresses: one taking
    // over a removed tenant's address must not find it still held (workers run in parallel).
    if (removals.length) await Promise.all(removals);
    const work: Promise<void>[] = [];
    for (const spec of desired) {
      const t = this.tenants.get(spec.name);
      if (!t) {
        const fresh: Tenant = { spec, state: "waiting", attempts: 0, generation: 0 };
        this.tenants.set(spec.name, fresh);
        result.added.push(spec.name);
        work.push(this.attach(fresh));
      } else if (t.spec !== spec && !sameSpec(t.spec, spec)) {
        this.bump(t);
        this.pairs.release(t);
        // Ingress taken away by the new spec: its hosts go now (a changed one is updated by the attach).
        if (t.spec.ingress && !spec.ingress) void this.ingress.remove(t);
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
    warnInsecure([...result.added, ...result.replaced].map((n) => want.get(n)!));
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
    this.claims.release(t.spec.name);
    this.pairs.release(t);
    this.tenants.delete(t.spec.name);
    if (t.ingressChain || t.spec.ingress) void this.ingress.remove(t);
    await this.workers.detach(t.spec.name, graceMs);
  }

  /**
   * Open the namespace (here, on the main thread, before any worker's setns), attach, record the
   * outcome. `only`: worker `only` was replaced and this attach is for it alone.
   */
  private async attach(t: Tenant, only?: number): Promise<void> {
    const generation = t.generation;
    t.attempts++;
    this.threads.begin();
    await this.openLimit.take();
    let outcome: { failure?: AttachFailure; identity?: string; fd: number };
    try {
      outcome = await this.listen(t, only);
    } finally {
      this.openLimit.give();
      this.threads.end();
    }
    const { failure, identity } = outcome;
    const current = !this.stopped && t.generation === generation && this.tenants.get(t.spec.name) === t;
    if (t.spec.ingress && only === undefined) {
      // The fd is the ingress chain's now, which closes it once no worker can use it. A stale attach's
      // fd was never given to a worker: a newer attach makes its own update.
      if (outcome.fd >= 0 && current) await this.ingress.update(t, outcome.fd);
      else if (outcome.fd >= 0) this.namespaces.close(outcome.fd);
      else if (current && failure) void this.ingress.update(t, -1, `namespace ${t.spec.netns}: ${failure.message}`);
    }
    if (current) this.record(t, failure, identity);
  }

  /** The workers' part of an attach. `fd`: the namespace kept open for ingress (-1: none; any other is closed here). */
  private async listen(t: Tenant, only?: number): Promise<{ failure?: AttachFailure; identity?: string; fd: number }> {
    const generation = t.generation;
    // Files first: an unusable certificate fails this tenant before its namespace is even opened.
    let material: Material | undefined;
    try {
      material = this.pairs.materialFor(t);
    } catch (err) {
      return { failure: failureOf(err, err instanceof MaterialError), fd: -1 };
    }
    let opened: { fd: number; identity: string };
    try {
      opened = this.namespaces.open(t.spec.netns);
    } catch (err) {
      return { failure: failureOf(err, true), fd: -1 };
    }
    const { fd, identity } = opened;
    const refused = this.claims.claim(t.spec, identity);
    if (refused) {
      this.namespaces.close(fd);
      return { failure: { message: refused, code: "EADDRINUSE" }, fd: -1 };
    }
    let keep = false;
    try {
      const answer = only === undefined ? await this.workers.attach(t.spec, fd, material) : await this.workers.reattach(only, t.spec, fd, material);
      const failure = answer?.holders ? this.takenBy(answer, t.spec.netns, answer.holders) : answer;
      keep = !failure && t.spec.ingress !== undefined && only === undefined && t.generation === generation;
      return { failure, identity, fd: keep ? fd : -1 };
    } catch (err) {
      return { failure: failureOf(err, false), fd: -1 };
    } finally {
      if (!keep) this.namespaces.close(fd);
    }
  }

  /**
   * A tenant's address held by a socket that is not this tenant's (another nsproxy, any process): the
   * failure names the namespace and, when /proc shows it, the process. Never shared: SO_REUSEPORT
   * would have the kernel split the tenant's connections with it.
   */
  private takenBy(failure: AttachFailure, netns: string, holders: number[]): AttachFailure {
    const owner = this.namespaces.socketOwner(holders);
    const who = !owner ? "; its process could not be found" : owner.pid === process.pid ? `: this nsproxy (pid ${owner.pid}) still holds it` : `: pid ${owner.pid} (${owner.comm})`;
    const message = failure.message.replace(" in this namespace,", ` in ${netns},`);
    return { message: `${message}${who}; not shared`, code: failure.code, ...(failure.listen ? { listen: failure.listen } : {}) };
  }

  /** An attach's outcome: serving, or waiting/failed with a retry after a backoff. */
  private record(t: Tenant, failure: AttachFailure | undefined, identity: string | undefined): void {
    if (!failure) {
      if (t.state !== "serving" && t.attempts > 1) logger.success(`tenant ${t.spec.name}: serving after ${t.attempts} attempts`);
      t.state = "serving";
      t.error = undefined;
      t.identity = identity;
      t.attempts = 0;
      return;
    }
    this.attachFailures++;
    this.claims.release(t.spec.name);
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
        const now = this.namespaces.identityAt(t.spec.netns);
        if (now === t.identity || now === null) continue;
        logger.warn(`tenant ${t.spec.name}: namespace ${t.spec.netns} ${now ? "was replaced" : "is gone"}; closing its listeners`);
        this.bump(t);
        this.claims.release(t.spec.name);
        if (t.spec.ingress) void this.ingress.update(t, -1, `namespace ${t.spec.netns} ${now ? "was replaced" : "is gone"}`);
        t.state = "waiting";
        t.error = `namespace ${t.spec.netns} ${now ? "replaced" : "gone"}`;
        t.identity = undefined;
        t.attempts = 0;
        const gen = t.generation;
        work.push(
          this.workers.detach(t.spec.name, VANISHED_GRACE_MS).then(() => {
            if (t.generation === gen && this.tenants.get(t.spec.name) === t) return this.attach(t);
          }),
        );
      } else if (t.state === "waiting" && t.retry && typeof this.namespaces.identityAt(t.spec.netns) === "string") {
        this.bump(t);
        work.push(this.attach(t));
      }
    }
    await Promise.all(work);
    if (work.length) this.checkThreads();
  }

  /** A replaced worker has no listeners: give it the ingress entries and the listeners of its serving tenants. */
  private async reattachWorker(index: number): Promise<void> {
    const failed = await this.listenIngress(index);
    if (failed) logger.error(`worker ${index}: ingress listener: ${failed.message}`);
    for (const t of this.tenants.values()) if (t.spec.ingress) void this.ingress.resend(t, index);
    const serving = [...this.tenants.values()].filter((t) => t.state === "serving" && this.workers.placedOn(t.spec.name, index));
    await Promise.all(serving.map((t) => this.attach(t, index)));
    this.checkThreads();
    logger.info(`worker ${index} replaced; ${serving.length} serving tenant(s) attached to it again`);
  }

  /** The ingress host listeners, in every worker (at start) or in a replaced one. First failure, if any. */
  listenIngress(only?: number): Promise<AttachFailure | undefined> {
    return this.workers.ingressListen(this.options.ingressListen, only);
  }

  /** A certificate pair serves new files: its users get new listeners (old connections finish on the old pair). */
  private pairRotated(id: string, users: ReadonlySet<string>): void {
    for (const name of users) {
      const t = this.tenants.get(name);
      if (!t || t.pair !== id) continue;
      this.bump(t);
      t.attempts = 0;
      void this.attach(t).then(() => this.checkThreads());
    }
  }

  /** The thread invariant, checked when no attach is in flight (see thread-check.ts). */
  checkThreads(): void {
    this.threads.check();
  }

  counts(): { total: number; serving: number; waiting: number; failed: number } {
    const c = { total: this.tenants.size, serving: 0, waiting: 0, failed: 0 };
    for (const t of this.tenants.values()) c[t.state]++;
    return c;
  }

  /** No more attaches or retries: what is in flight finds the reconciler stopped and records nothing. */
  stop(): void {
    this.stopped = true;
    this.pairs.stop();
    for (const t of this.tenants.values()) if (t.retry) clearTimeout(t.retry);
  }
}

/** One line, however many tenants: 10,000 of them must not mean 10,000 lines. */
function warnInsecure(specs: TenantSpec[]): void {
  const insecure = specs.filter((s) => s.upstreamInsecure);
  if (insecure.length === 0) return;
  const first = insecure[0]!;
  const more = insecure.length > 1 ? ` and ${insecure.length - 1} more tenant(s)` : "";
  logger.warn(`upstream_insecure = true: upstream certificates are not verified for tenant ${first.name} (${first.upstream?.text})${more}`);
}
