// What `nsproxy top` shows, as pure functions of a StatsView: the sort, the number formats and the table.
import type { StatsView, TenantStats } from "../admin/types.ts";

export const SORT_KEYS = ["requests", "errors", "connections", "bytes", "name"] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export function isSortKey(s: string): s is SortKey {
  return (SORT_KEYS as readonly string[]).includes(s);
}

const byName = (a: TenantStats, b: TenantStats) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Per key: the rate, then the total behind it (busiest first); ties by name. */
const RANKS: Record<Exclude<SortKey, "name">, (t: TenantStats) => number[]> = {
  requests: (t) => [t.requests_per_second, t.requests_total],
  errors: (t) => [t.errors_per_second, t.errors_total],
  connections: (t) => [t.open_connections, t.requests_per_second],
  bytes: (t) => [t.bytes_per_second, t.bytes_in_total + t.bytes_out_total],
};

/** A sorted copy: busiest first by the key, name ascending for "name" and for ties. */
export function sortTenants(tenants: readonly TenantStats[], key: SortKey): TenantStats[] {
  if (key === "name") return [...tenants].sort(byName);
  const rank = RANKS[key];
  return [...tenants].sort((a, b) => {
    const ra = rank(a);
    const rb = rank(b);
    for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return rb[i]! - ra[i]!;
    return byName(a, b);
  });
}

const PREFIXES = ["", "k", "M", "G", "T", "P"];

/**
 * A figure in at most 4-5 characters with an SI prefix: 0, 0.5, 12.3, 999, 1.2k, 12.3k, 123k, 1.2M.
 * One decimal below 100 (dropped when it is .0 under 1000), none from 100 up.
 */
function scaled(x: number): { text: string; prefix: string } {
  if (!Number.isFinite(x) || x <= 0) return { text: "0", prefix: "" };
  let i = 0;
  let v = x;
  for (;;) {
    const text = v < 100 ? (Math.round(v * 10) / 10).toFixed(1) : String(Math.round(v));
    // Rounding can carry into the next prefix: 999.96 is "1.0k", not "1000".
    if (Number(text) >= 1000 && i < PREFIXES.length - 1) {
      v /= 1000;
      i++;
      continue;
    }
    return { text: i === 0 && text.endsWith(".0") ? text.slice(0, -2) : text, prefix: PREFIXES[i]! };
  }
}

/** A count per second, or a count: 0, 0.5, 37, 1.2k, 45.6k, 3.1M. */
export function formatRate(x: number): string {
  const { text, prefix } = scaled(x);
  return `${text}${prefix}`;
}

/** Bytes per second in SI units: 0 B/s, 512 B/s, 3.4 kB/s, 12.3 MB/s, 1.1 GB/s. */
export function formatBytes(x: number): string {
  const { text, prefix } = scaled(x);
  // Whole bytes below 1 kB/s.
  return `${prefix ? text : String(Math.round(Number(text)))} ${prefix}B/s`;
}

/** Local date and time, 2025-06-01 12:34:56. */
export function formatTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export interface TopOptions {
  sort: SortKey;
  /** At most this many tenant lines (--limit). */
  limit?: number;
  /** The terminal's height: the whole view fits in it (a TTY only). */
  rows?: number;
  /** The terminal's width: names are shortened, then lines cut, so that nothing wraps (a TTY only). */
  columns?: number;
}

/** The StatsView as --json prints it: tenants sorted, and cut at --limit. */
export function selectStats(view: StatsView, opts: Pick<TopOptions, "sort" | "limit">): StatsView {
  const sorted = sortTenants(view.tenants, opts.sort);
  return { time: view.time, tenants: opts.limit === undefined ? sorted : sorted.slice(0, opts.limit) };
}

/** The header line: time, tenants by state, and the sum of every tenant's rates and connections. */
export function headerLine(view: StatsView, sort: SortKey): string {
  let req = 0;
  let err = 0;
  let conns = 0;
  let bytes = 0;
  const states = { serving: 0, waiting: 0, failed: 0 };
  for (const t of view.tenants) {
    req += t.requests_per_second;
    err += t.errors_per_second;
    conns += t.open_connections;
    bytes += t.bytes_per_second;
    states[t.state] = (states[t.state] ?? 0) + 1;
  }
  const n = view.tenants.length;
  const byState = Object.entries(states)
    .filter(([, k]) => k > 0)
    .map(([s, k]) => `${k} ${s}`)
    .join(", ");
  const tenants = `${n} tenant${n === 1 ? "" : "s"}${byState ? ` (${byState})` : ""}`;
  return `${formatTime(view.time)}  ${tenants}  ${formatRate(req)} req/s  ${formatRate(err)} err/s  ${formatRate(conns)} conns  ${formatBytes(bytes)}  sort: ${sort}`;
}

const COLUMNS = ["TENANT", "REQ/S", "ERR/S", "CONNS", "BYTES/S", "STATE"] as const;
/** The widest each figure gets ("123.4k" cannot happen: 123k; "12.3 MB/s"), so columns do not jump between refreshes. */
const MIN_WIDTHS = [0, 5, 5, 5, 9, 0];
/** The name column never shrinks below this when the terminal is narrow. */
const MIN_NAME = 8;

/**
 * The whole view, one string per line, no trailing newline and no terminal codes: the header, the column titles,
 * one line per tenant (sorted), and "… N more" when --limit or the terminal's height leaves some out.
 */
export function renderTop(view: StatsView, opts: TopOptions): string[] {
  const sorted = sortTenants(view.tenants, opts.sort);
  const lines = [headerLine(view, opts.sort)];
  if (sorted.length === 0) return [...lines, "no tenants"].slice(0, opts.rows).map((l) => cut(l, opts.columns));

  // Room for tenant lines: the height less the header and the titles; one more line goes to "… N more" when needed.
  let shown = Math.min(sorted.length, opts.limit ?? Infinity);
  if (opts.rows !== undefined) {
    const room = Math.max(1, opts.rows - 2);
    if (shown > room || (shown < sorted.length && shown === room)) shown = Math.max(0, room - 1);
  }
  const rows = sorted
    .slice(0, shown)
    .map((t) => [t.name, formatRate(t.requests_per_second), formatRate(t.errors_per_second), formatRate(t.open_connections), formatBytes(t.bytes_per_second), t.state]);
  const table = [[...COLUMNS] as string[], ...rows];
  // Steady between refreshes: the name column fits every tenant's name (shown or not), the figures their widest form.
  const widths = COLUMNS.map((_, i) => Math.max(MIN_WIDTHS[i]!, ...table.map((r) => r[i]!.length)));
  widths[0] = Math.max(widths[0]!, ...sorted.map((t) => t.name.length));
  if (opts.columns !== undefined) {
    // Shorten names before cutting lines, so the figures stay on screen.
    const rest = widths.slice(1).reduce((a, w) => a + w + 2, 0);
    widths[0] = Math.max(Math.min(MIN_NAME, widths[0]!), Math.min(widths[0]!, opts.columns - rest));
  }
  for (const r of table) {
    const cells = r.map((c, i) => {
      if (i === 0) return shorten(c, widths[0]!).padEnd(widths[0]!);
      if (i === r.length - 1) return c;
      return c.padStart(widths[i]!);
    });
    lines.push(cells.join("  ").trimEnd());
  }
  const left = sorted.length - shown;
  if (left > 0) lines.push(`… ${left} more`);
  return lines.slice(0, opts.rows).map((l) => cut(l, opts.columns));
}

function shorten(s: string, width: number): string {
  return s.length <= width ? s : `${s.slice(0, Math.max(0, width - 1))}…`;
}

function cut(line: string, columns: number | undefined): string {
  return columns === undefined || line.length <= columns ? line : line.slice(0, Math.max(0, columns)).trimEnd();
}
