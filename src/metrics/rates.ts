// Per-tenant totals and their rates between two samples a second apart: what `nsproxy top` and `status` show.
import { LOCAL_REASONS, Stat } from "../engine/stats.ts";
import { type Snapshot, totals } from "./snapshot.ts";

interface Totals {
  requests: number;
  errors: number;
  bytes: number;
}

/** Requests answered (by the upstream or by nsproxy), errors (upstream 5xx and every answer nsproxy wrote itself), bytes both ways. */
export function tenantTotals(c: Float64Array): Totals & { bytesIn: number; bytesOut: number } {
  let local = 0;
  for (let i = 0; i < LOCAL_REASONS.length; i++) local += c[Stat.Local + i]!;
  let upstream = 0;
  for (let k = Stat.Resp1xx; k <= Stat.Resp5xx; k++) upstream += c[k]!;
  const bytesIn = c[Stat.BytesIn]!;
  const bytesOut = c[Stat.BytesOut]!;
  return { requests: upstream + local, errors: c[Stat.Resp5xx]! + local, bytes: bytesIn + bytesOut, bytesIn, bytesOut };
}

/** One tenant's totals and last-second rates (GET /v1/stats); `State` is the caller's label for the tenant's state. */
export interface TenantStats<State extends string = string> {
  name: string;
  state: State;
  requests_total: number;
  errors_total: number;
  bytes_in_total: number;
  bytes_out_total: number;
  /** Client connections open now: egress, and ingress connections routed to the tenant (ingress_connections of them). */
  open_connections: number;
  ingress_connections?: number;
  /** Over the main thread's last one-second sample (0 until two samples exist). */
  requests_per_second: number;
  errors_per_second: number;
  bytes_per_second: number;
}

export class Rates {
  private previous = new Map<string, Totals>();
  private previousAll: Totals | undefined;
  private previousTime = 0;
  private rates = new Map<string, Totals>();
  private allRate: Totals = { requests: 0, errors: 0, bytes: 0 };

  /** Take a sample (about once a second). */
  sample(s: Snapshot, now: number): void {
    const dt = (now - this.previousTime) / 1000;
    const next = new Map<string, Totals>();
    const rates = new Map<string, Totals>();
    for (const t of s.tenants) {
      const cur = tenantTotals(t.counters);
      next.set(t.name, cur);
      const prev = this.previous.get(t.name);
      if (prev && dt > 0) rates.set(t.name, perSecond(cur, prev, dt));
    }
    const all = tenantTotals(totals(s).counters);
    if (this.previousAll && dt > 0) this.allRate = perSecond(all, this.previousAll, dt);
    this.previous = next;
    this.previousAll = all;
    this.previousTime = now;
    this.rates = rates;
  }

  /** Requests/s over the last sample, all tenants. */
  get requestsPerSecond(): number {
    return this.allRate.requests;
  }

  view<State extends string>(s: Snapshot, state: (name: string) => State): TenantStats<State>[] {
    return s.tenants.map((t) => {
      const tot = tenantTotals(t.counters);
      const r = this.rates.get(t.name) ?? { requests: 0, errors: 0, bytes: 0 };
      return {
        name: t.name,
        state: state(t.name),
        requests_total: tot.requests,
        errors_total: tot.errors,
        bytes_in_total: tot.bytesIn,
        bytes_out_total: tot.bytesOut,
        open_connections: t.open + t.ingressOpen,
        ingress_connections: t.ingressOpen,
        requests_per_second: round(r.requests),
        errors_per_second: round(r.errors),
        bytes_per_second: round(r.bytes),
      };
    });
  }
}

/** A tenant with no counters yet (waiting or failed: it gets a slot when it first attaches). */
export function idleTenantStats<State extends string>(name: string, state: State): TenantStats<State> {
  return {
    name,
    state,
    requests_total: 0,
    errors_total: 0,
    bytes_in_total: 0,
    bytes_out_total: 0,
    open_connections: 0,
    ingress_connections: 0,
    requests_per_second: 0,
    errors_per_second: 0,
    bytes_per_second: 0,
  };
}

function perSecond(cur: Totals, prev: Totals, dt: number): Totals {
  // A counter never goes back; if one did (a slot given to a new tenant), count from zero.
  const d = (a: number, b: number) => Math.max(0, a - b) / dt;
  return { requests: d(cur.requests, prev.requests), errors: d(cur.errors, prev.errors), bytes: d(cur.bytes, prev.bytes) };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
