// The bench's figures as markdown: machine, command, one table row per (N, proxy), then every run and note.
import { fmt, median } from "./format.ts";
import { machine as describe } from "./proc.ts";
import type { WrkResult } from "./wrk.ts";

export interface Row {
  n: number;
  /** "nsproxy" or "HAProxy"; anything else (e.g. "nsproxy, 1 worker") is shown but not used for ratios. */
  proxy: string;
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

/** Per extra namespace: (RSS_N − RSS_base) / (N − base), base the smallest N measured for that proxy (any flags). */
function perExtraNs(rows: Row[], r: Row): number | undefined {
  const kind = (x: Row) => x.proxy.split(" ")[0];
  const base = rows.filter((x) => kind(x) === kind(r) && Number.isFinite(x.rssKb)).sort((a, b) => a.n - b.n)[0];
  if (!base || base.n >= r.n || !Number.isFinite(r.rssKb)) return undefined;
  return (r.rssKb - base.rssKb) / (r.n - base.n);
}

function table(rows: Row[]): string {
  const head = ["N", "proxy", "req/s (single)", "nsproxy/HAProxy", "p50 ms", "p99 ms", "CPU µs/req", "spread req/s", "spread p99 ms", "spread CPU µs/req", "RSS MB", "anon MB", "RSS per extra ns kB", "RSS after load MB", "startup ms", "live add ms"];
  const out = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const r of rows) {
    const rps = median(r.singles.map((s) => s.rps));
    const ha = rows.find((x) => x.n === r.n && x.proxy === "HAProxy");
    const haRps = ha ? median(ha.singles.map((s) => s.rps)) : NaN;
    const ratio = r.proxy === "nsproxy" && haRps > 0 ? fmt(rps / haRps, 2) : "";
    const spread = r.spreads.length ? `${fmt(median(r.spreads.map((s) => s.rps)))} (${r.spreadK}×c8)` : "—";
    out.push(
      `| ${[
        fmt(r.n),
        r.proxy,
        fmt(rps),
        ratio,
        fmt(median(r.singles.map((s) => s.p50Ms)), 2),
        fmt(median(r.singles.map((s) => s.p99Ms)), 2),
        fmt(median(r.singles.map((s) => s.cpuUsPerReq ?? NaN)), 1),
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
    .map((r) => `- N=${r.n} ${r.proxy}: single [${r.singles.map(one).join("; ")}]; spread [${r.spreads.map(one).join("; ")}]; check: ${r.check}`)
    .join("\n");
}

export function markdown(rep: Report): string {
  const { durationS, rounds, warmupS } = rep.opts;
  return `# nsproxy vs HAProxy

${machine(rep.versions)}
- Date: ${rep.date}; took ${fmt(rep.elapsedS)} s
- Command: \`${rep.command}\`

${table(rep.rows)}

How each figure is made (bench/run.ts): one shared upstream, a one-thread HAProxy answering \`ok\\n\` from memory on
the host's 127.0.0.1; both proxies listen on 127.0.0.1 inside each of N throwaway namespaces and run at once
(nsproxy: \`--discover /run/netns=GLOB --no-access-log\`, 2 workers; HAProxy: \`nbthread 2\`, one frontend per
namespace with \`bind … namespace NS\`, set-header of the tenant and X-Forwarded-Proto/Host, client
X-Forwarded-For/Forwarded removed, \`option forwardfor\`, \`http-reuse always\`), all on these same 2 cores with wrk.
**single**: \`wrk -t1 -c50 -d${durationS}s --latency\` from inside the first namespace, ${rounds} round(s) alternating
nsproxy, HAProxy (after a ${warmupS} s warm-up of each); the median of the rounds. **spread**: K=min(N,8) wrk processes at once,
in K namespaces spread over the range, \`-c8\` each: requests/s summed, p99 the worst. **CPU µs/req**: the proxy's utime+stime (all threads, /proc/PID/stat) over the run divided by its requests. **RSS**: VmRSS (with
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
