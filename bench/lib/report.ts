// The bench's figures as markdown: machine, command, one table row per (N, proxy), then every run and note.
import { fmt, median } from "./format.ts";
import { machine as describe } from "./proc.ts";
import type { WrkResult } from "./wrk.ts";

export interface Row {
  n: number;
  /** What the table calls it, e.g. "nsproxy (metrics off)". */
  proxy: string;
  kind: "nsproxy" | "HAProxy";
  /** The access log on (nsproxy's default) or off. */
  log: boolean;
  /** Rows of one N with the same pair are compared (nsproxy over HAProxy); a row without one is shown only. */
  pair?: "log off" | "log on";
  /** Why this proxy has no figures at this N (it did not start). */
  failed?: string;
  /** What the figures of this row stand for besides the usual (e.g. a tenant in one worker only). */
  caveat?: string;
  singles: WrkResult[];
  spreads: WrkResult[];
  /** How many wrk processes the spread run used. */
  spreadK: number;
  rssKb: number;
  anonKb?: number;
  rssAfterLoadKb?: number;
  startupMs: number;
  liveAdd: string;
  check: string;
}

export interface Report {
  command: string;
  date: string;
  versions: Record<string, string>;
  opts: { durationS: number; rounds: number; warmupS: number };
  /** Said under the title, e.g. "under shared load". */
  label?: string;
  /** Markdown image links to the figures, shown under the table. */
  figures?: string[];
  rows: Row[];
  notes: string[];
  elapsedS: number;
}

function machine(v: Record<string, string>): string {
  const m = describe();
  return [
    `- Machine: ${m.cpus} CPUs (nproc), ${m.model}, ${m.memGb.toFixed(0)} GB RAM, kernel ${m.kernel}`,
    `- ${v.nsproxy} (dist/nsproxy, bun ${v.bun}); ${v.haproxy}; ${v.wrk}`,
  ].join("\n");
}

/** Per extra namespace: (RSS_N − RSS_base) / (N − base), base the smallest N measured for that proxy, log on or off alike. */
function perExtraNs(rows: Row[], r: Row): number | undefined {
  const base = rows.filter((x) => x.kind === r.kind && x.log === r.log && Number.isFinite(x.rssKb)).sort((a, b) => a.n - b.n)[0];
  if (!base || base.n >= r.n || !Number.isFinite(r.rssKb)) return undefined;
  return (r.rssKb - base.rssKb) / (r.n - base.n);
}

/** The median single-run figure of a row; NaN when it has no runs. */
export const single = (r: Row, f: (w: WrkResult) => number | undefined) => median(r.singles.map((w) => f(w) ?? NaN));

/** The HAProxy row an nsproxy row is compared with: same N, same pair. */
const against = (rows: Row[], r: Row) => (r.kind === "nsproxy" && r.pair ? rows.find((x) => x.n === r.n && x.kind === "HAProxy" && x.pair === r.pair) : undefined);

function table(rows: Row[]): string {
  const head = ["N", "proxy", "access log", "req/s (single)", "× HAProxy", "CPU µs/req", "× HAProxy", "p50 ms", "p99 ms", "spread req/s", "spread p99 ms", "spread CPU µs/req", "RSS MB", "anon MB", "RSS per extra ns kB", "RSS after load MB", "startup ms", "live add ms"];
  const out = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const r of rows) {
    const ha = against(rows, r);
    const ratio = (f: (w: WrkResult) => number | undefined) => (ha && single(ha, f) > 0 ? fmt(single(r, f) / single(ha, f), 2) : "");
    const spread = r.spreads.length ? `${fmt(median(r.spreads.map((s) => s.rps)))} (${r.spreadK}×c8)` : "—";
    out.push(
      `| ${[
        fmt(r.n),
        r.proxy,
        r.log ? "on" : "off",
        fmt(single(r, (w) => w.rps)),
        ratio((w) => w.rps),
        fmt(single(r, (w) => w.cpuUsPerReq), 1),
        ratio((w) => w.cpuUsPerReq),
        fmt(single(r, (w) => w.p50Ms), 2),
        fmt(single(r, (w) => w.p99Ms), 2),
        spread,
        fmt(r.spreads.length ? Math.max(...r.spreads.map((s) => s.p99Ms)) : NaN, 2),
        fmt(median(r.spreads.map((s) => s.cpuUsPerReq ?? NaN)), 1),
        fmt(r.rssKb / 1024, 1),
        fmt(r.anonKb === undefined ? undefined : r.anonKb / 1024, 1),
        fmt(perExtraNs(rows, r), 1),
        fmt(r.rssAfterLoadKb === undefined ? undefined : r.rssAfterLoadKb / 1024, 1),
        fmt(r.startupMs),
        r.liveAdd,
      ].join(" | ")} |`,
    );
  }
  return out.join("\n");
}

function runs(rows: Row[]): string {
  const one = (w: WrkResult) => `${fmt(w.rps)} req/s p50 ${fmt(w.p50Ms, 2)} p99 ${fmt(w.p99Ms, 2)} CPU ${fmt(w.cpuUsPerReq, 1)} µs/req${w.errors ? ` **${w.errors} errors**` : ""}`;
  return rows
    .filter((r) => r.singles.length + r.spreads.length > 0)
    .map((r) => `- N=${r.n} ${r.proxy}, log ${r.log ? "on" : "off"}: single [${r.singles.map(one).join("; ")}]; spread [${r.spreads.map(one).join("; ")}]; check: ${r.check}`)
    .join("\n");
}

export function markdown(rep: Report): string {
  const { durationS, rounds, warmupS } = rep.opts;
  return `# nsproxy vs HAProxy

${machine(rep.versions)}
- Date: ${rep.date}; took ${fmt(rep.elapsedS)} s${rep.label ? `; **${rep.label}**` : ""}
- Command: \`${rep.command}\`

${table(rep.rows)}
${rep.figures?.length ? `\n${rep.figures.join("\n")}\n` : ""}
How each figure is made (bench/run.ts): one shared upstream, a one-thread HAProxy answering \`ok\\n\` from memory on
the host's 127.0.0.1; both proxies listen on 127.0.0.1 inside each of N throwaway namespaces and run at once
(nsproxy: \`--discover /run/netns=GLOB --metrics-tenant-limit N\`, 2 workers; HAProxy: \`nbthread 2\`, one frontend per
namespace with \`bind … namespace NS\`, set-header of the tenant and X-Forwarded-Proto/Host, client
X-Forwarded-For/Forwarded removed, \`option forwardfor\`, \`http-reuse always\`, \`tune.pool-low/high-fd-ratio 80/90\` so
that its many listeners do not stop it keeping idle upstream connections), all on these same 2 cores with wrk.
**Past the descriptor limit** (N = 10,000 under RLIMIT_NOFILE 20,000): nsproxy listens for each tenant in one of its
workers once N × workers listeners exceed half the limit; HAProxy keeps a listener and an open namespace fd per frontend,
so once 2 × N exceed half the limit it runs as processes of \`nbthread 1\`, each with an equal share of the frontends
in order (each process has its own limit): in both, each tenant is served by one thread (two processes, two threads
in all, at N = 10,000). Its CPU per request is
that of all its processes together (the idle one's over the same interval included), its RSS their anonymous memory
summed plus their shared file pages once (the plain sum is in the notes), its startup the slower process's.
**access log**: each proxy twice, off (nsproxy \`--no-access-log\`, HAProxy no \`log\`) and on. On, nsproxy writes its
default text lines to stdout, which is a file (as under \`StandardOutput=file:\`; batches of up to 64 kB); HAProxy has
\`option httplog\` and \`log SOCKET local0\` as Debian's \`log /dev/log local0\`: one datagram per request to a unix
datagram socket that a bench helper drains (bench/lib/syslog-drain.ts; what syslog costs itself is not charged to HAProxy,
as journald's work is not charged to nsproxy). Both counts of lines are in the notes.
**single**: \`wrk -t1 -c50 -d${durationS}s --latency\` from inside the first namespace, ${rounds} round(s) alternating
the proxies in the table's order (after a ${warmupS} s warm-up of each); the median of the rounds; **× HAProxy**: over the
HAProxy row with the same access log. **spread**: K=min(N,8) wrk processes at once,
in K namespaces spread over the range, \`-c8\` each: requests/s summed, p99 the worst (access log off only). **CPU µs/req**: the proxy's utime+stime (all threads, /proc/PID/stat) over the run divided by its requests. **RSS**: VmRSS (with
children) after every listener answers, before any load; per extra namespace against the smallest N; **anon**: RssAnon,
the same without file-backed pages (most of nsproxy's difference at N=1 is the 110 MB executable's code pages in use).
**startup**: from spawn to the latest first answer among probes (first, middle, last namespace) polling every 1 ms.
**live add**: \`PUT /v1/tenants/NAME\` on the admin socket for a new namespace (outside the discovery glob), until
the response (sent once the listener is bound): the first of three, then the other two; HAProxy would need a reload.
**check** (once per proxy per N, in the first, middle and last namespace): \`curl -sv\` with a forged tenant header
and X-Forwarded-For to the upstream's \`/echo\`, which must answer 200 with exactly one tenant header, the right one.

## Every run

${runs(rep.rows)}

## Notes

${rep.notes.map((n) => `- ${n}`).join("\n")}
`;
}
