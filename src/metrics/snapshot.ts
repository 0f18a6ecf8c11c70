// One reading of every counter: the workers' shared metric buffers summed per tenant, plus the main thread's own figures.
import { readdirSync } from "node:fs";
import { DURATION_BUCKETS, Stat, W_FD_REFUSED, W_HIST, W_HIST_COUNT, W_HIST_SUM, W_INGRESS_FD_REFUSED, W_INGRESS_UNROUTED, W_LOOP_DELAY, W_SHED } from "../engine/stats.ts";

export interface TenantFigures {
  name: string;
  /** Stat.COUNT counters summed over the workers. */
  counters: Float64Array;
  /** Connections open now (all workers): egress, and ingress connections routed to the tenant. */
  open: number;
  ingressOpen: number;
}

export interface Snapshot {
  tenants: TenantFigures[];
  states: { serving: number; waiting: number; failed: number };
  attachFailures: number;
  workerReplacements: number;
  descriptorsOpen: number;
  descriptorsLimit: number;
  refusedAtDescriptorLimit: number;
  /** Ingress connections refused at ingress's share of the descriptor budget (also in refusedAtDescriptorLimit). */
  ingressRefusedAtDescriptorLimit: number;
  ingressOpen: number;
  shares: { egress: number; ingress: number };
  /** Idle connections closed because the descriptor limit was lowered below what was open. */
  shed: number;
  /** Ingress requests and TLS connections no tenant took. */
  ingressUnrouted: number;
  /** Event-loop delay of each worker's last sweep, seconds. */
  loopDelay: number[];
  /** Request-duration histogram over all workers: counts per bucket (non-cumulative; the last is +Inf), sum, count. */
  histogram: { buckets: number[]; sum: number; count: number };
  tenantLimit: number;
}

/** What the snapshot reads from the daemon: kept narrow so tests can give plain values. */
export interface MetricSources {
  /** Each worker's own figures (W_* offsets). */
  workerStats: readonly Float64Array[];
  /** Where a tenant slot's counters are in each worker. */
  slotCounters(slot: number): { view: Float64Array; base: number }[];
  tenantSlots: ReadonlyMap<string, number>;
  openConnections(slot: number): number;
  ingressConnections?(slot: number): number;
  /** Ingress client connections open, routed or not. */
  ingressOpen?: number;
  /** The most connections of each direction may hold (descriptors). */
  shares?: { egress: number; ingress: number };
  states: { serving: number; waiting: number; failed: number };
  attachFailures: number;
  workerReplacements: number;
  descriptorsLimit: number;
  tenantLimit: number;
}

/** Descriptors open in this process, as the kernel lists them. */
export function openDescriptors(): number {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return Number.NaN;
  }
}

/** `descriptors`: also count open descriptors (a readdir of /proc/self/fd: for scrapes, not the rate sampler). */
export function takeSnapshot(src: MetricSources, descriptors = true): Snapshot {
  const views = src.workerStats;
  const tenants: TenantFigures[] = [];
  for (const [name, slot] of src.tenantSlots) {
    const counters = new Float64Array(Stat.COUNT);
    for (const { view, base } of src.slotCounters(slot)) for (let k = 0; k < Stat.COUNT; k++) counters[k] = counters[k]! + view[base + k]!;
    tenants.push({ name, counters, open: src.openConnections(slot), ingressOpen: src.ingressConnections?.(slot) ?? 0 });
  }
  tenants.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const buckets = new Array<number>(DURATION_BUCKETS.length + 1).fill(0);
  let sum = 0;
  let count = 0;
  let refused = 0;
  let unrouted = 0;
  let ingressRefused = 0;
  let shed = 0;
  for (const v of views) {
    ingressRefused += v[W_INGRESS_FD_REFUSED]!;
    shed += v[W_SHED]!;
    unrouted += v[W_INGRESS_UNROUTED]!;
    for (let i = 0; i < buckets.length; i++) buckets[i]! += v[W_HIST + i]!;
    sum += v[W_HIST_SUM]!;
    count += v[W_HIST_COUNT]!;
    refused += v[W_FD_REFUSED]!;
  }
  return {
    tenants,
    states: src.states,
    attachFailures: src.attachFailures,
    workerReplacements: src.workerReplacements,
    descriptorsOpen: descriptors ? openDescriptors() : Number.NaN,
    descriptorsLimit: src.descriptorsLimit,
    refusedAtDescriptorLimit: refused,
    ingressRefusedAtDescriptorLimit: ingressRefused,
    shed,
    ingressOpen: src.ingressOpen ?? 0,
    shares: src.shares ?? { egress: Number.NaN, ingress: Number.NaN },
    ingressUnrouted: unrouted,
    loopDelay: views.map((v) => v[W_LOOP_DELAY]!),
    histogram: { buckets, sum, count },
    tenantLimit: src.tenantLimit,
  };
}

/** All tenants' counters summed: the totals of status --json and of aggregated series. */
export function totals(s: Snapshot): { counters: Float64Array; open: number; ingressOpen: number } {
  const counters = new Float64Array(Stat.COUNT);
  let open = 0;
  let ingressOpen = 0;
  for (const t of s.tenants) {
    for (let k = 0; k < Stat.COUNT; k++) counters[k] = counters[k]! + t.counters[k]!;
    open += t.open;
    ingressOpen += t.ingressOpen;
  }
  return { counters, open, ingressOpen };
}
