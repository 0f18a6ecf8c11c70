// Counters every worker shares (a SharedArrayBuffer): descriptors in use against the limit, each direction's share of
// them, and open connections per tenant slot (egress and ingress apart).

const EGRESS_FDS = 0;
const LISTENERS = 1;
const LIMIT = 2;
const INGRESS_FDS = 3;
/** 1 when the daemon has ingress listeners: only then is the budget split between the directions. */
const SPLIT = 4;
/** Ingress client connections open, routed to a tenant or not yet. */
const INGRESS_CONNS = 5;
const FIRST_SLOT = 8;

/** Tenant slots: more tenants than this share the last slots' counts (their caps become approximate). */
export const TENANT_SLOTS = 1 << 16;
/** Descriptors kept free for everything that is not a connection: namespace files, the admin socket, logs, inotify. */
export const FD_RESERVE = 256;
/**
 * The split of the connection budget when ingress is on: ingress may hold at most half of it and egress at most
 * three quarters, so a flood on either direction leaves the other at least a quarter (egress: half). Without
 * ingress listeners egress may use it all.
 */
export const INGRESS_SHARE = 0.5;
export const EGRESS_SHARE = 0.75;

export type Direction = "egress" | "ingress";

export function sharedCountsBuffer(fdLimit: number): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(4 * (FIRST_SLOT + 2 * TENANT_SLOTS));
  new Int32Array(sab)[LIMIT] = Math.min(fdLimit, 0x7fffffff);
  return sab;
}

export class SharedCounts {
  private readonly a: Int32Array;

  constructor(sab: SharedArrayBuffer) {
    this.a = new Int32Array(sab);
  }

  get fdLimit(): number {
    return Atomics.load(this.a, LIMIT);
  }

  /** The main thread re-reads RLIMIT_NOFILE and states it here: every budget check from now on uses it. */
  setFdLimit(limit: number): void {
    Atomics.store(this.a, LIMIT, Math.min(limit, 0x7fffffff));
  }

  /** Ingress listeners exist: each direction keeps to its share of the budget. */
  splitBudget(on: boolean): void {
    Atomics.store(this.a, SPLIT, on ? 1 : 0);
  }

  /** Descriptors held by connections and listeners, all workers together. */
  get fdsInUse(): number {
    return Atomics.load(this.a, EGRESS_FDS) + Atomics.load(this.a, INGRESS_FDS) + Atomics.load(this.a, LISTENERS);
  }

  /** Descriptors held by ingress connections (clients and their backend connections). */
  get ingressFds(): number {
    return Atomics.load(this.a, INGRESS_FDS);
  }

  /** What connections may hold together: the limit less the listeners and the reserve. */
  get budget(): number {
    return this.fdLimit - Atomics.load(this.a, LISTENERS) - FD_RESERVE;
  }

  /** The most one direction may hold. */
  shareOf(dir: Direction): number {
    if (Atomics.load(this.a, SPLIT) === 0) return this.budget;
    return Math.floor(this.budget * (dir === "ingress" ? INGRESS_SHARE : EGRESS_SHARE));
  }

  /**
   * Take n descriptors from the budget for a connection of `dir`; false (and nothing taken) when that would
   * leave less than the reserve, or take the direction past its share.
   */
  reserveFds(n: number, dir: Direction = "egress"): boolean {
    const i = dir === "ingress" ? INGRESS_FDS : EGRESS_FDS;
    const mine = Atomics.add(this.a, i, n) + n;
    if (mine <= this.shareOf(dir) && this.fdsInUse + FD_RESERVE <= this.fdLimit) return true;
    Atomics.sub(this.a, i, n);
    return false;
  }

  releaseFds(n: number, dir: Direction = "egress"): void {
    Atomics.sub(this.a, dir === "ingress" ? INGRESS_FDS : EGRESS_FDS, n);
  }

  listeners(delta: number): void {
    Atomics.add(this.a, LISTENERS, delta);
  }

  /**
   * Descriptors over a limit lowered below what is open: the workers close idle connections until it is 0 or
   * less, so that accept() stops failing with EMFILE (which spins the event loop) and new connections fit.
   */
  get excess(): number {
    return this.fdsInUse + FD_RESERVE - this.fdLimit;
  }

  /** Ingress client connections open (delta: +1 accepted, -1 closed). */
  ingressConnections(delta = 0): number {
    return delta === 0 ? Atomics.load(this.a, INGRESS_CONNS) : Atomics.add(this.a, INGRESS_CONNS, delta) + delta;
  }

  /** One more connection for the tenant in `slot`, unless that makes more than `max`. */
  enter(slot: number, max: number, dir: Direction = "egress"): boolean {
    const i = this.index(slot, dir);
    if (Atomics.add(this.a, i, 1) < max) return true;
    Atomics.sub(this.a, i, 1);
    return false;
  }

  leave(slot: number, dir: Direction = "egress"): void {
    Atomics.sub(this.a, this.index(slot, dir), 1);
  }

  /** Open connections of these slots together. */
  openTotal(slots: Iterable<number>, dir: Direction = "egress"): number {
    let n = 0;
    for (const s of slots) n += this.open(s, dir);
    return n;
  }

  open(slot: number, dir: Direction = "egress"): number {
    return Atomics.load(this.a, this.index(slot, dir));
  }

  private index(slot: number, dir: Direction): number {
    return FIRST_SLOT + (dir === "ingress" ? TENANT_SLOTS : 0) + (slot % TENANT_SLOTS);
  }
}
