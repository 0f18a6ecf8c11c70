// The main thread's side of the pinned workers: start them, send each tenant to its workers, replace a stranded or dead one.
import type { AttachMaterial } from "./tenant-group.ts";
import type { IngressTenant } from "./ingress.ts";
import type { IngressListen, TenantSpec } from "../config/types.ts";
import { workerFaults } from "../faults.ts";
import { logger } from "../log.ts";
import { threadGone } from "../netns/threads.ts";
import { runtime } from "../runtime/index.ts";
import { SLOTS_PER_CHUNK, Stat, WORKER_HEADER } from "../engine/stats.ts";
import type { AttachFailure, FromWorker, ToWorker, WorkerOptions } from "./protocol.ts";

export type { AttachFailure };

interface Pending {
  resolve: (failure: AttachFailure | undefined) => void;
}

/** Where the worker's code is: next to this file in development, embedded as a second entrypoint when compiled. */
function workerUrl(): string | URL {
  // Compiled, the bundle's root is src/ (the common folder of the two entrypoints in build.ts).
  return process.env.NSPROXY_COMPILED ? "./worker/worker.ts" : new URL("./worker.ts", import.meta.url);
}

/** A stranded worker is terminated once its exchanges in flight are done, or after this long. */
const STRANDED_LINGER_MS = 5000;

/** Bun's error event carries a code frame; the log wants one line: the error and where it was thrown. */
function errorLine(ev: ErrorEvent): string {
  const lines = (ev.message || "worker error").split("\n");
  const i = lines.findIndex((l) => /^\w*error: /i.test(l));
  if (i < 0) return lines.find((l) => l.trim()) ?? "worker error";
  const at = lines[i + 1]?.trim();
  return `uncaught ${lines[i]}${at?.startsWith("at ") ? ` ${at}` : ""}`;
}

class PinnedWorker {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  /** Resolves when the thread has ended. */
  readonly exited: Promise<void>;
  private tid = 0;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  dead = false;

  constructor(
    readonly index: number,
    options: WorkerOptions,
    private readonly onFatal: (w: PinnedWorker, reason: string, lingering: boolean) => void,
  ) {
    this.worker = runtime.startWorker(workerUrl());
    // The close event comes before the thread has quite ended: wait for it to leave /proc too.
    this.exited = new Promise((resolve) => this.worker.addEventListener("close", () => void threadGone(this.tid).then(() => resolve())));
    this.ready = new Promise((resolve, reject) => {
      this.worker.addEventListener("error", (ev) => {
        const reason = errorLine(ev as ErrorEvent);
        reject(new Error(reason));
        this.die(reason);
      });
      this.worker.addEventListener("close", () => this.die("worker exited"));
      const receive = (msg: FromWorker): void => {
        if (msg.type === "ready") {
          this.tid = msg.tid;
          resolve();
        } else if (msg.type === "fatal") this.die(msg.message, true);
        else if (msg.type === "drained") this.worker.terminate();
        else if (msg.type === "batch") msg.messages.forEach(receive);
        else if (msg.type === "log") logger[msg.level](`worker ${this.index}: ${msg.message}`);
        else this.settle(msg.id, msg.type === "failed" ? { message: msg.message, code: msg.code, listen: msg.listen, ...(msg.holders ? { holders: msg.holders } : {}) } : undefined);
      };
      this.worker.addEventListener("message", (ev: MessageEvent<FromWorker>) => receive(ev.data));
    });
    this.send({ type: "init", options });
  }

  private outbox: ToWorker[] = [];

  /**
   * Messages sent in one turn of the event loop travel as one batch, in order: attaching 1000 tenants
   * at start is 2 messages per worker instead of 2000.
   */
  send(msg: ToWorker): void {
    this.outbox.push(msg);
    if (this.outbox.length === 1) queueMicrotask(() => this.flush());
    // A long batch goes out in slices, so the worker starts listening while the rest is still prepared.
    else if (this.outbox.length >= 128) this.flush();
  }

  private flush(): void {
    const messages = this.outbox;
    this.outbox = [];
    if (this.dead || messages.length === 0) return;
    this.worker.postMessage(messages.length === 1 ? messages[0] : { type: "batch", messages });
  }

  request(make: (id: number) => ToWorker): Promise<AttachFailure | undefined> {
    if (this.dead) return Promise.resolve({ message: "worker is gone", code: "EWORKER" });
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, { resolve });
      this.send(make(id));
    });
  }

  private settle(id: number, failure: AttachFailure | undefined): void {
    const p = this.pending.get(id);
    this.pending.delete(id);
    p?.resolve(failure);
  }

  /**
   * Never use this worker again. A dead one is terminated now; a stranded one (`lingering`) has stopped
   * accepting and dialing, and is terminated when it says its exchanges in flight are done.
   */
  private die(reason: string, lingering = false): void {
    if (this.dead) return;
    this.dead = true;
    if (lingering) {
      const timer = setTimeout(() => this.worker.terminate(), STRANDED_LINGER_MS);
      void this.exited.then(() => clearTimeout(timer));
    } else this.worker.terminate();
    for (const p of this.pending.values()) p.resolve({ message: `worker ${this.index} lost: ${reason}`, code: "EWORKER" });
    this.pending.clear();
    this.onFatal(this, reason, lingering);
  }
}

export class WorkerPool {
  private workers: PinnedWorker[] = [];
  private generation = 0;
  /**
   * Set while this daemon takes over from the previous generation: whether sockets `holders` (inodes) are
   * all that generation's, so an address they hold may be shared. Attaches meanwhile set tcp_migrate_req.
   */
  handover: ((holders: number[]) => boolean) | undefined;
  /** Called after a worker was replaced, with the fresh one: the reconciler attaches its tenants again. */
  onReplaced: (index: number) => void = () => {};
  /** Stranded workers whose thread has not ended yet: one of them is still inside a tenant namespace. */
  private readonly lingering = new Set<PinnedWorker>();
  /** How many stranded workers have not ended yet (while any has, a thread is known to be in a tenant namespace). */
  get stranded(): number {
    return this.lingering.size;
  }

  /** Called when the last lingering worker has ended (the thread check may run again). */
  onLingerEnd: () => void = () => {};
  /** Workers replaced since start (metrics). */
  replacements = 0;

  constructor(
    readonly size: number,
    private readonly options: Omit<WorkerOptions, "stats" | "statsChunks">,
  ) {}

  /**
   * Each worker index keeps its metric buffers for the daemon's life: a replacement worker goes on
   * counting where the one it replaces stopped, so a scrape never sees a counter go back. Tenant
   * counters come in chunks made as tenants arrive: one buffer sized for 65,536 tenants (11.5 MB per
   * worker) made JavaScriptCore collect less often, and a 1 GB upload then peaked 20 MB higher.
   */
  private readonly headers: SharedArrayBuffer[] = [];
  private readonly headerViews: Float64Array[] = [];
  private readonly chunks: SharedArrayBuffer[][] = [];
  private readonly chunkViews: Float64Array[][] = [];

  private headerFor(index: number): SharedArrayBuffer {
    let sab = this.headers[index];
    if (!sab) {
      sab = new SharedArrayBuffer(WORKER_HEADER * 8);
      this.headers[index] = sab;
      this.headerViews[index] = new Float64Array(sab);
      this.chunks[index] = [];
      this.chunkViews[index] = [];
    }
    return sab;
  }

  /** Make sure every worker has the chunk holding `slot` (messages travel in order: before the attach). */
  private ensureChunk(slot: number): void {
    const k = Math.floor(slot / SLOTS_PER_CHUNK);
    this.workers.forEach((w, i) => {
      if (this.chunks[i]![k]) return;
      const sab = new SharedArrayBuffer(SLOTS_PER_CHUNK * Stat.COUNT * 8);
      this.chunks[i]![k] = sab;
      this.chunkViews[i]![k] = new Float64Array(sab);
      w.send({ type: "stats-chunk", chunk: k, sab });
    });
  }

  /** Every worker's own figures (engine/stats.ts W_*). */
  workerStats(): readonly Float64Array[] {
    return this.headerViews;
  }

  /** Where tenant slot `slot` counts in each worker: the chunk and the offset of its first counter. */
  slotCounters(slot: number): { view: Float64Array; base: number }[] {
    const k = Math.floor(slot / SLOTS_PER_CHUNK);
    const base = (slot % SLOTS_PER_CHUNK) * Stat.COUNT;
    const out: { view: Float64Array; base: number }[] = [];
    for (const views of this.chunkViews) {
      const v = views[k];
      if (v) out.push({ view: v, base });
    }
    return out;
  }

  /** Tenant name → its slot in the shared counters and in every worker's metrics. */
  tenantSlots(): ReadonlyMap<string, number> {
    return this.slots;
  }

  async start(): Promise<void> {
    this.workers = Array.from({ length: this.size }, (_, i) => this.spawn(i));
    await Promise.all(this.workers.map((w) => w.ready));
  }

  private spawn(index: number): PinnedWorker {
    // Fault injection applies to the first generation only, so the replacement can succeed.
    const faults = this.generation++ < this.size ? workerFaults(index) : undefined;
    const options = faults ? { ...this.options, faults } : this.options;
    const bornAt = Date.now();
    const stats = this.headerFor(index);
    return new PinnedWorker(index, { ...options, stats, statsChunks: [...this.chunks[index]!] }, (w, reason, lingering) => {
      if (lingering) {
        this.lingering.add(w);
        void w.exited.then(() => {
          this.lingering.delete(w);
          if (this.lingering.size === 0) this.onLingerEnd();
        });
      }
      if (this.stopping || this.workers[index] !== w) return;
      // A worker that dies young (it could not even start: out of descriptors, say) is replaced after
      // a growing pause, not in a tight loop.
      const young = Date.now() - bornAt < 1000;
      this.respawnDelay[index] = young ? Math.min(30_000, Math.max(1000, (this.respawnDelay[index] ?? 0) * 2)) : 0;
      const delay = this.respawnDelay[index]!;
      this.replacements++;
      logger.error(`worker ${index} terminated (${reason}); starting a new one${delay ? ` in ${delay / 1000} s` : ""} and attaching its tenants again`);
      setTimeout(() => {
        if (this.stopping || this.workers[index] !== w) return;
        const fresh = this.spawn(index);
        this.workers[index] = fresh;
        fresh.ready.then(
          () => this.onReplaced(index),
          (err) => logger.error(`worker ${index} failed to start: ${err.message}`),
        );
      }, delay);
    });
  }

  private readonly respawnDelay: number[] = [];

  private stopping = false;

  /**
   * Which workers a tenant listens in. Every worker (SO_REUSEPORT spreads its connections over the
   * cores) while all listeners fit in half the descriptor limit; beyond that a new tenant listens in one
   * worker, the one with the fewest tenants, so 10,000 tenants need 10,000 listeners, not 10,000 × W
   * (a listening socket cannot be shared between Bun workers). The other half is for connections.
   */
  private readonly placement = new Map<string, number[]>();
  private readonly load: number[] = [];
  private spreadAll = true;

  /** Decide how the next tenants are placed, knowing how many listen addresses the daemon wants in all. */
  plan(listenAddrs: number, fdLimit: number): void {
    const all = listenAddrs * this.size <= fdLimit / 2;
    if (all !== this.spreadAll && this.size > 1) {
      logger.info(
        all
          ? `${listenAddrs} listen addresses x ${this.size} workers fit the descriptor limit (${fdLimit}): new tenants listen in every worker`
          : `${listenAddrs} listen addresses x ${this.size} workers would take more than half of the descriptor limit (${fdLimit}): each new tenant listens in one worker (the least loaded)`,
      );
    }
    this.spreadAll = all;
  }

  /** How many workers tenant `name` listens in (0 when it is not attached). */
  workersOf(name: string): number {
    return this.placement.get(name)?.length ?? 0;
  }

  /** Whether tenant `name` listens in worker `index` (a replaced worker attaches only its own tenants). */
  placedOn(name: string, index: number): boolean {
    return this.placement.get(name)?.includes(index) ?? false;
  }

  private place(name: string): number[] {
    let targets = this.placement.get(name);
    if (targets) return targets;
    if (this.spreadAll) targets = this.workers.map((_, i) => i);
    else {
      let best = 0;
      for (let i = 1; i < this.size; i++) if ((this.load[i] ?? 0) < (this.load[best] ?? 0)) best = i;
      targets = [best];
    }
    for (const i of targets) this.load[i] = (this.load[i] ?? 0) + 1;
    this.placement.set(name, targets);
    return targets;
  }

  private unplace(name: string): void {
    const targets = this.placement.get(name);
    if (!targets) return;
    for (const i of targets) this.load[i] = (this.load[i] ?? 1) - 1;
    this.placement.delete(name);
  }

  /**
   * One tenant's whole attach step: listen for `spec` inside the namespace open at `nsFd`, in the workers
   * it is placed on (placing it first). All or nothing: if any worker fails, the tenant is detached from
   * the others and the first failure is returned. A spec with no listeners leaves the workers it was in.
   */
  async attach(spec: TenantSpec, nsFd: number, material?: AttachMaterial): Promise<AttachFailure | undefined> {
    if (spec.listen.length === 0) {
      if (this.placement.has(spec.name)) await this.detach(spec.name, this.options.replaceGraceMs);
      return undefined;
    }
    return this.listenIn(this.place(spec.name), spec, nsFd, material);
  }

  /** Worker `index` was replaced: listen for `spec` there again, if it is placed there (else nothing to do). */
  async reattach(index: number, spec: TenantSpec, nsFd: number, material?: AttachMaterial): Promise<AttachFailure | undefined> {
    if (spec.listen.length === 0 || !this.placedOn(spec.name, index)) return undefined;
    // Alone there, its addresses were free for anyone while the worker was gone: probe them again.
    return this.listenIn([index], spec, nsFd, material, this.workersOf(spec.name) === 1);
  }

  /**
   * Listen in workers `indexes`: the first one alone, with `exclusive` (every address must be free of
   * sockets that are not this tenant's, see window.ts), then the others beside it. One round trip more
   * per attach, so that no worker ever mistakes another worker's listener for a stranger's.
   */
  private async listenIn(indexes: number[], spec: TenantSpec, nsFd: number, material?: AttachMaterial, exclusive = true): Promise<AttachFailure | undefined> {
    const slot = this.slotOf(spec.name);
    this.ensureChunk(slot);
    const migrate = this.handover !== undefined;
    const send = (i: number, alone: boolean) =>
      this.workers[i]!.request((id) => ({ type: "attach", id, spec, nsFd, slot, exclusive: alone, ...(migrate ? { migrate } : {}), ...(material ? { material } : {}) }));
    const [first, ...rest] = indexes;
    let failure = exclusive ? await send(first!, true) : undefined;
    // Held only by the previous generation during an upgrade: the one deliberate sharing (it closes soon).
    if (failure?.code === "EADDRINUSE" && failure.holders?.length && this.handover?.(failure.holders)) {
      exclusive = false;
      failure = undefined;
    }
    if (!failure) {
      const results = await Promise.all((exclusive ? rest : indexes).map((i) => send(i, false)));
      failure = results.find((r) => r !== undefined);
    }
    if (failure) await this.detach(spec.name, 0);
    return failure;
  }

  /** Ingress: every worker listens on these host addresses (SO_REUSEPORT spreads the connections). First failure, if any. */
  async ingressListen(listen: IngressListen[], only?: number): Promise<AttachFailure | undefined> {
    if (listen.length === 0) return undefined;
    const targets = only === undefined ? this.workers : [this.workers[only]!];
    const results = await Promise.all(targets.map((w) => w.request((id) => ({ type: "ingress-listen", id, listen }))));
    return results.find((r) => r !== undefined);
  }

  /** Ingress: tell every worker (or worker `only`) a tenant's hosts and backends, `nsFd` its namespace (-1: down). */
  async ingressSet(spec: TenantSpec, nsFd: number, down?: string, only?: number): Promise<void> {
    const ingress = spec.ingress;
    if (!ingress) return;
    const slot = this.slotOf(spec.name);
    this.ensureChunk(slot);
    const tenant: IngressTenant = {
      name: spec.name,
      netns: spec.netns,
      hosts: ingress.hosts,
      ...(ingress.backend ? { backend: ingress.backend } : {}),
      ...(ingress.tlsBackend ? { tlsBackend: ingress.tlsBackend } : {}),
      nsFd,
      ...(down ? { down } : {}),
      slot,
      upstreamTimeoutMs: spec.upstreamTimeoutMs,
      maxConnections: spec.ingressMaxConnections,
    };
    const targets = only === undefined ? this.workers : [this.workers[only]!];
    await Promise.all(targets.map((w) => w.request((id) => ({ type: "ingress-set", id, tenant }))));
  }

  /** Ingress: the tenant is gone from every worker (after this resolves its namespace fd may be closed). */
  async ingressDrop(name: string): Promise<void> {
    await Promise.all(this.workers.map((w) => w.request((id) => ({ type: "ingress-drop", id, name }))));
    // An ingress-only tenant has no listeners to detach: its slot goes now.
    if (!this.placement.has(name)) this.freeSlot(name, 0);
  }

  async detach(name: string, graceMs: number): Promise<void> {
    this.unplace(name);
    await Promise.all(this.workers.map((w) => w.request((id) => ({ type: "detach", id, name, graceMs }))));
    this.freeSlot(name, graceMs);
  }

  private freeSlot(name: string, graceMs: number): void {
    // The slot's count drops to zero as the old connections close; only then may another tenant take it.
    const slot = this.slots.get(name);
    if (slot !== undefined) {
      this.slots.delete(name);
      setTimeout(() => this.freeSlots.push(slot), graceMs + 1000).unref?.();
    }
  }

  /** Each tenant's connection count lives in one slot of the shared counters, the same in every worker. */
  private readonly slots = new Map<string, number>();
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;

  private slotOf(name: string): number {
    let slot = this.slots.get(name);
    if (slot === undefined) {
      const reused = this.freeSlots.shift();
      slot = reused ?? this.nextSlot++;
      // A slot freed by another tenant: its counters start again from zero for this one. (It is
      // freed only after that tenant's connections are gone, so no worker still writes there.)
      if (reused !== undefined) for (const { view, base } of this.slotCounters(reused)) view.fill(0, base, base + Stat.COUNT);
      this.slots.set(name, slot);
    }
    return slot;
  }

  /** Stop every listener; resolves when in-flight requests finished or the grace period ended. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers.map((w) => w.request((id) => ({ type: "stop", id, graceMs }))));
    for (const w of [...this.workers, ...this.lingering]) w.worker.terminate();
  }
}
