// Counters every worker shares (a SharedArrayBuffer): descriptors in use against the limit, and open connections per tenant slot.

const FDS = 0;
const LISTENERS = 1;
const LIMIT = 2;
const FIRST_SLOT = 3;

/** Tenant slots: more tenants than this share the last slots' counts (their caps become approximate). */
export const TENANT_SLOTS = 1 << 16;
/** Descriptors kept free for everything that is not a connection: namespace files, the admin socket, logs, inotify. */
export const FD_RESERVE = 256;

export function sharedCountsBuffer(fdLimit: number): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(4 * (FIRST_SLOT + TENANT_SLOTS));
  new Int32Array(sab)[LIMIT] = Math.min(fdLimit, 0x7fffffff);
  return sab;
}

export class SharedCounts {
  private readonly a: Int32Array;

  constructor(sab: SharedArrayBuffer) {
    this.a = new Int32Array(sab);
  }

  get fdLimit(): number {
    return this.a[LIMIT]!;
  }

  /** Descriptors held by connections and listeners, all workers together. */
  get fdsInUse(): number {
    return Atomics.load(this.a, FDS) + Atomics.load(this.a, LISTENERS);
  }

  /** Take n descriptors from the budget; false (and nothing taken) when that would leave less than the reserve. */
  reserveFds(n: number): boolean {
    const after = Atomics.add(this.a, FDS, n) + n + Atomics.load(this.a, LISTENERS) + FD_RESERVE;
    if (after <= this.a[LIMIT]!) return true;
    Atomics.sub(this.a, FDS, n);
    return false;
  }

  releaseFds(n: number): void {
    Atomics.sub(this.a, FDS, n);
  }

  listeners(delta: number): void {
    Atomics.add(this.a, LISTENERS, delta);
  }

  /** One more connection for the tenant in `slot`, unless that makes more than `max`. */
  enter(slot: number, max: number): boolean {
    const i = FIRST_SLOT + (slot % TENANT_SLOTS);
    if (Atomics.add(this.a, i, 1) < max) return true;
    Atomics.sub(this.a, i, 1);
    return false;
  }

  leave(slot: number): void {
    Atomics.sub(this.a, FIRST_SLOT + (slot % TENANT_SLOTS), 1);
  }

  /** Open connections of these slots together. */
  openTotal(slots: Iterable<number>): number {
    let n = 0;
    for (const s of slots) n += this.open(s);
    return n;
  }

  open(slot: number): number {
    return Atomics.load(this.a, FIRST_SLOT + (slot % TENANT_SLOTS));
  }
}
