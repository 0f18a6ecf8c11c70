// nsproxy against HAProxy doing the same work in N namespaces: startup, RSS, throughput and latency, live add.
// Usage: bun bench/run.ts [--ns 1,100,1000] [--duration 8] [--rounds 2] [--big]   (root; loopback only)
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { elapsedS, log, median } from "./lib/format.ts";
import { startUpstream } from "./lib/haproxy.ts";
import { check, liveAdd, logSummary, startHaproxy, startNsproxy, versions, type Running } from "./lib/proxies.ts";
import { sample } from "./lib/probe.ts";
import { loadavg, rssKb } from "./lib/proc.ts";
import { markdown, type Row } from "./lib/report.ts";
import { addNamespaces, ensureTools, PREFIX, raiseNofile, removeStale, runBench, stop, TMP } from "./lib/setup.ts";
import { withCpu, wrk, wrkSpread } from "./lib/wrk.ts";

const NSPROXY_PORT = 8080;
const HAPROXY_PORT = 8081;
/** A second nsproxy with its counters off (NSPROXY_METRICS_OFF=1), for the cost of counting, at the smallest N. */
const NSPROXY_OFF_PORT = 8082;
const BIG_N = 10_000;
const WARMUP_S = 3;

const { values: args } = parseArgs({
  options: {
    ns: { type: "string", default: "1,100,1000" },
    duration: { type: "string", default: "8" },
    rounds: { type: "string", default: "2" },
    big: { type: "boolean", default: false },
  },
});
const counts = [...new Set(args.ns.split(",").map(Number))].sort((a, b) => a - b);
const durationS = Number(args.duration);
const rounds = Number(args.rounds);
if (counts.some((n) => !Number.isInteger(n) || n < 1) || !(durationS >= 1 && durationS <= 60) || !(rounds >= 1 && rounds <= 10)) {
  console.error("usage: bun bench/run.ts [--ns 1,100,1000] [--duration 1..60] [--rounds 1..10] [--big]");
  process.exit(2);
}

const notes: string[] = [];
const rows: Row[] = [];
const url = (port: number) => `http://127.0.0.1:${port}/`;
/** Probes give up after this; scales with N because attaching does. */
const limitFor = (n: number) => 60_000 + n * 20;

function names(n: number): string[] {
  const list = Array.from({ length: n }, (_, i) => `${PREFIX}n${n}-${i}`);
  const t = performance.now();
  addNamespaces(list);
  notes.push(`N=${n}: ${n} namespaces made (\`ip -batch\`, then \`lo\` up via setns+ioctl in one helper) in ${Math.round(performance.now() - t)} ms`);
  return list;
}

/** K namespaces spread evenly over the list, first and last included. */
function spreadOver(list: string[], k: number): string[] {
  if (k === 1) return [list[0]!];
  return Array.from({ length: k }, (_, i) => list[Math.round((i * (list.length - 1)) / (k - 1))]!);
}

function row(r: Running, n: number, checks: string[], label: string = r.name): Row {
  for (const note of r.notes) notes.push(`N=${n}: ${note}`);
  return { n, proxy: label, singles: [], spreads: [], spreadK: 0, rssKb: r.rssKb, anonKb: r.anonKb, startupMs: r.startupMs, liveAdd: r.name === "HAProxy" ? "n/a (needs a reload)" : "—", check: checks[0]! };
}

/** Three live adds, one after the other: the first can differ (first admin request of this daemon). */
async function addLive(r: Running, row: Row, name: string): Promise<void> {
  const times: string[] = [];
  for (let i = 1; i <= 3; i++) {
    const live = await liveAdd(r, `${name}-${i}`);
    times.push(live.ms.toFixed(1));
    notes.push(`N=${row.n}: live add ${i} (${name}-${i}): ${live.ms.toFixed(1)} ms, state '${live.state}' in the PUT response, then ${live.check}`);
  }
  row.liveAdd = `${times[0]} (then ${times.slice(1).join(", ")})`;
}

async function measure(n: number, upstreamPort: number): Promise<void> {
  const list = names(n);
  log(`N=${n}: starting nsproxy`);
  const nsp = await startNsproxy(list, `${PREFIX}n${n}-*`, NSPROXY_PORT, upstreamPort, limitFor(n));
  const a = row(nsp, n, sample(list).map((ns) => check(ns, NSPROXY_PORT)));
  log(`N=${n}: nsproxy up in ${nsp.startupMs} ms; starting HAProxy`);
  const hap = await startHaproxy(list, HAPROXY_PORT, upstreamPort, limitFor(n));
  const b = row(hap, n, sample(list).map((ns) => check(ns, HAPROXY_PORT)));
  rows.push(a, b);
  const pairs: [Running, Row][] = [[nsp, a], [hap, b]];
  let off: Running | undefined;
  if (n === counts[0]) {
    off = await startNsproxy(list, `${PREFIX}n${n}-*`, NSPROXY_OFF_PORT, upstreamPort, limitFor(n), undefined, { tag: "metrics-off", env: { NSPROXY_METRICS_OFF: "1" } });
    const c = row(off, n, [check(list[0]!, NSPROXY_OFF_PORT)], "nsproxy (metrics off)");
    rows.push(c);
    pairs.push([off, c]);
  }
  log(`N=${n}: HAProxy up in ${hap.startupMs} ms; load`);
  const spreadNs = spreadOver(list, Math.min(n, 8));
  for (const [p] of pairs) await wrk(list[0]!, url(p.port), { conns: 50, durationS: WARMUP_S });
  for (let round = 0; round < rounds; round++) {
    for (const [p, r] of pairs) r.singles.push(await withCpu(p.proc.pid, () => wrk(list[0]!, url(p.port), { conns: 50, durationS })));
    for (const [p, r] of pairs) {
      if (p === off) continue; // the metrics-off run is compared on the single-namespace load only
      r.spreads.push(await withCpu(p.proc.pid, () => wrkSpread(spreadNs, url(p.port), { conns: 8, durationS })));
      r.spreadK = spreadNs.length;
    }
    log(`N=${n}: round ${round + 1}/${rounds} done`);
  }
  if (off) {
    const on = rows.find((r) => r.n === n && r.proxy === "nsproxy")!.singles;
    const offRuns = rows.find((r) => r.n === n && r.proxy === "nsproxy (metrics off)")!.singles;
    const rOn = median(on.map((w) => w.rps));
    const rOff = median(offRuns.map((w) => w.rps));
    notes.push(
      `N=${n}: metrics on vs off (NSPROXY_METRICS_OFF=1: no counters, no histogram), alternating: ${rOn.toFixed(0)} vs ${rOff.toFixed(0)} req/s (${((rOn / rOff - 1) * 100).toFixed(1)}%), ` +
        `CPU ${median(on.map((w) => w.cpuUsPerReq ?? NaN)).toFixed(1)} vs ${median(offRuns.map((w) => w.cpuUsPerReq ?? NaN)).toFixed(1)} µs/req`,
    );
  }
  for (const [p, r] of pairs) r.rssAfterLoadKb = rssKb(p.proc.pid);
  notes.push(`N=${n}: ${await scrapeTime(nsp)}`);
  await addLive(nsp, a, `${PREFIX}live-n${n}`);
  await Promise.all([stop(nsp.proc), stop(hap.proc), off ? stop(off.proc) : undefined]);
  for (const p of [nsp, hap]) notes.push(`N=${n}: ${logSummary(p.name, p.log)}`);
}

/**
 * 10,000 namespaces: attach time, RSS, a check and (nsproxy) live adds; no load; one proxy at a time. nsproxy runs
 * with its default workers: when a listener per tenant per worker would not fit the descriptor limit, each tenant
 * listens in one worker (it says so in its log, quoted in the notes).
 */
async function measureBig(upstreamPort: number, fdLimit: number): Promise<void> {
  const list = names(BIG_N);
  const glob = `${PREFIX}n${BIG_N}-*`;
  log(`N=${BIG_N}: starting nsproxy (RLIMIT_NOFILE ${fdLimit}, ${cpus().length} workers)`);
  // Every tenant with series of its own: the worst case for a scrape (the default limit would aggregate them).
  const nsp = await startNsproxy(list, glob, NSPROXY_PORT, upstreamPort, limitFor(BIG_N), undefined, { args: ["--metrics-tenant-limit", String(BIG_N)] });
  const a = row(nsp, BIG_N, sample(list).map((ns) => check(ns, NSPROXY_PORT)));
  const placement = nsp.log.find((l) => l.includes("listens in one worker") || l.includes("listen in every worker"));
  if (placement) notes.push(`N=${BIG_N}: nsproxy: ${placement.replace(/^.*?info\s+/, "")}`);
  rows.push(a);
  notes.push(`N=${BIG_N}: ${await scrapeTime(nsp)}`);
  await addLive(nsp, a, `${PREFIX}live-n${BIG_N}`);
  await stop(nsp.proc, 30_000);
  notes.push(`N=${BIG_N}: ${logSummary("nsproxy", nsp.log)}`);
  log(`N=${BIG_N}: nsproxy up in ${nsp.startupMs} ms; starting HAProxy`);
  try {
    const hap = await startHaproxy(list, HAPROXY_PORT, upstreamPort, limitFor(BIG_N));
    rows.push(row(hap, BIG_N, sample(list).map((ns) => check(ns, HAPROXY_PORT))));
    await stop(hap.proc, 30_000);
    notes.push(`N=${BIG_N}: ${logSummary("HAProxy", hap.log)}`);
  } catch (e) {
    const lines = (e as Error).message.split("\n");
    const alerts = lines.filter((l) => l.includes("[ALERT]"));
    notes.push(`N=${BIG_N}: HAProxy did not cope: ${lines[0]} ${alerts.length} alert lines, the first: \`${(alerts[0] ?? lines[1] ?? "").slice(0, 220)}\``);
    rows.push({ n: BIG_N, proxy: "HAProxy", singles: [], spreads: [], spreadK: 0, rssKb: NaN, startupMs: NaN, liveAdd: "did not start (see notes)", check: "" });
  }
}

/** GET /metrics over the admin socket five times: the median time and the size of the exposition. */
async function scrapeTime(p: Running): Promise<string> {
  const times: number[] = [];
  let bytes = 0;
  let lines = 0;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const text = await (await fetch("http://nsproxy/metrics", { unix: p.adminSock!, signal: AbortSignal.timeout(10_000) })).text();
    times.push(performance.now() - t);
    bytes = text.length;
    lines = text.split("\n").length;
  }
  times.sort((x, y) => x - y);
  return `scrape of /metrics over the admin socket: median ${times[2]!.toFixed(1)} ms (max ${times[4]!.toFixed(1)}), ${(bytes / 1024).toFixed(0)} kB, ${lines} lines`;
}

await runBench(async () => {
  ensureTools();
  const stale = removeStale();
  if (stale > 0) log(`removed ${stale} namespaces left by an earlier bench that was killed`);
  const maxN = args.big ? BIG_N : counts.at(-1)!;
  // nsproxy holds a listener per tenant per worker, HAProxy a listener and a namespace fd per frontend.
  const nofile = raiseNofile(cpus().length * maxN + 4096);
  if (nofile.note) notes.push(nofile.note);
  // Other work on this machine skews every figure: say how busy it was.
  notes.push(`load average at the start: ${loadavg()}`);
  const { port: upstreamPort } = await startUpstream();
  log(`upstream on 127.0.0.1:${upstreamPort}; namespaces ${PREFIX}*; temp ${TMP}`);
  for (const n of counts) await measure(n, upstreamPort);
  if (args.big) await measureBig(upstreamPort, nofile.limit);
  notes.push(`load average at the end: ${loadavg()}`);
  const rep = {
    command: `bun bench/run.ts ${process.argv.slice(2).join(" ")}`.trim(),
    date: new Date().toISOString(),
    versions: versions(),
    opts: { durationS, rounds, warmupS: WARMUP_S },
    rows,
    notes,
    elapsedS: elapsedS(),
  };
  const md = markdown(rep);
  writeFileSync(`${import.meta.dir}/RESULTS.md`, md);
  console.log(md);
});
