// The bench's pictures: requests/s, CPU per request and RSS against N, nsproxy beside HAProxy, access log off and on.
import { mkdirSync, writeFileSync } from "node:fs";
import { fmt } from "./format.ts";
import { single, type Row } from "./report.ts";
import { lineChart, type Series } from "./svg.ts";

const COLOR = { nsproxy: "#1f77b4", HAProxy: "#d62728" } as const;

/** One line per proxy and access-log setting, over the rows of that pair (the metrics-off row has none). */
function series(rows: Row[], y: (r: Row) => number): Series[] {
  const out: Series[] = [];
  for (const pair of ["log off", "log on"] as const) {
    for (const kind of ["nsproxy", "HAProxy"] as const) {
      const mine = rows.filter((r) => r.kind === kind && r.pair === pair).sort((a, b) => a.n - b.n);
      if (mine.length > 0) out.push({ name: `${kind}, access log ${pair === "log on" ? "on" : "off"}`, color: COLOR[kind], dashed: pair === "log on", points: mine.map((r) => [r.n, y(r)]) });
    }
  }
  return out;
}

/** What a chart cannot show: a proxy that did not start, or that ran differently, at some N (once for log off and on). */
function missing(rows: Row[]): string[] {
  const said = rows.filter((r) => r.pair && (r.failed || r.caveat)).map((r) => `${r.kind} at N=${fmt(r.n)}: ${r.failed ?? r.caveat}`);
  return [...new Set(said)];
}

/** Write requests.svg, cpu.svg and rss.svg into `dir`; returns markdown image links, each `linkPrefix` + file name. */
export function writeFigures(rows: Row[], dir: string, subtitle: string, linkPrefix: string): string[] {
  mkdirSync(dir, { recursive: true });
  const x = "N (namespaces, log scale)";
  const notes = missing(rows);
  const charts = {
    requests: lineChart({ title: "Requests/s, one wrk -c50 from inside a tenant (higher is better)", subtitle, xLabel: x, yLabel: "requests/s", series: series(rows, (r) => single(r, (w) => w.rps)), notes }),
    cpu: lineChart({ title: "Proxy CPU per request, utime+stime (lower is better)", subtitle, xLabel: x, yLabel: "CPU µs per request", series: series(rows, (r) => single(r, (w) => w.cpuUsPerReq)), notes }),
    rss: lineChart({ title: "RSS once every listener answers, before load", subtitle, xLabel: x, yLabel: "RSS MB", series: series(rows, (r) => r.rssKb / 1024), notes }),
  };
  const alt = { requests: "requests/s against N", cpu: "CPU µs per request against N", rss: "RSS against N" };
  return Object.entries(charts).map(([name, svg]) => {
    writeFileSync(`${dir}/${name}.svg`, svg);
    return `![${alt[name as keyof typeof alt]}, nsproxy beside HAProxy, access log off and on](${linkPrefix}${name}.svg)`;
  });
}
