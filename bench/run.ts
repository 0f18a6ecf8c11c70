// nsproxy against HAProxy doing the same work in N namespaces, access log off and on: startup, RSS, throughput, CPU, live add, figures.
// Usage: bun bench/run.ts [--ns 1,100,1000,10000] [--duration 8] [--rounds 2] [--label TEXT]   (root; loopback only)
import { rmSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { writeFigures } from "./lib/figures.ts";
import { elapsedS, fmt, log, median } from "./lib/format.ts";
import { startUpstream } from "./lib/haproxy.ts";
import { check, liveAdd, logSummary, startHaproxy, startNsproxy, versions, type Running } from "./lib/proxies.ts";
import { sample } from "./lib/probe.ts";
import { groupRssKb, loadavg, machine } from "./lib/proc.ts";
import { markdown, type Row } from "./lib/report.ts";
import { addNamespaces, BUN, collectLines, describe, ensureTools, PREFIX, raiseNofile, removeNamespaces, removeStale, runBench, sh, spawn, stop, TMP } from "./lib/setup.ts";
import { withCpu, wrk, wrkSpread } from "./lib/wrk.ts";

const WARMUP_S = 3;

const { values: args } = parseArgs({
  options: {
    ns: { type: "string", default: "1,100,1000,10000" },
    duration: { type: "string", default: "8" },
    rounds: { type: "string", default: "2" },
    label: { type: "string" },
  },
});
const counts = [...new Set(args.ns.split(",").map(Number))].sort((a, b) => a - b);
const durationS = Number(args.duration);
const rounds = Number(args.rounds);
if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 50_000) || !(durationS >= 1 && durationS <= 60) || !(rounds >= 1 && rounds <= 10)) {
  console.error("usage: bun bench/run.ts [--ns 1,100,1000,10000 (each 1..50000)] [--duration 1..60] [--rounds 1..10] [--label TEXT]");
  process.exit(2);
}

const notes: string[] = [];
const rows: Row[] = [];
const url = (port: number) => `http://127.0.0.1:${port}/`;
/** Probes give up after this; scales with N because attaching does. */
const limitFor = (n: number) => 60_000 + n * 20;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** One proxy of a round: how to start it, which row it fills, whether it also takes the spread load. */
interface Entrant {
  row: Row;
  port: number;
  spread: boolean;
  start(list: string[]): Promise<Running>;
  /** Lines its access log received so far (undefined: the log is off). */
  logLines?: () => Promise<number>;
  running?: Running;
  /** Requests sent to it by wrk (warm-up included), for the access log's count. */
  requests: number;
}

const newRow = (n: number, proxy: string, kind: Row["kind"], log: boolean, pair?: Row["pair"]): Row => ({
  n, proxy, kind, log, pair, singles: [], spreads: [], spreadK: 0, rssKb: NaN, startupMs: NaN, liveAdd: kind === "HAProxy" ? "n/a (needs a reload)" : "—", check: "",
});

function names(n: number): string[] {
  const list = Array.from({ length: n }, (_, i) => `${PREFIX}n${n}-${i}`);
  const { addMs, loMs } = addNamespaces(list);
  notes.push(`N=${n}: ${n} namespaces made in ${Math.round(addMs)} ms (\`ip -batch\`), then \`lo\` up in ${Math.round(loMs)} ms (setns+ioctl in one helper)`);
  return list;
}

/** K namespaces spread evenly over the list, first and last included. */
function spreadOver(list: string[], k: number): string[] {
  if (k === 1) return [list[0]!];
  return Array.from({ length: k }, (_, i) => list[Math.round((i * (list.length - 1)) / (k - 1))]!);
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

/** Every process of an entrant that started (HAProxy can be several). */
const pids = (e: Entrant) => e.running!.procs.map((p) => p.pid);

/** Lines in a file (nsproxy's access log: it can be hundreds of MB, so not read into this process). */
const countLines = (path: string) => Number(sh(["wc", "-l", path]).trim().split(" ")[0]);

/** The four proxies of one N (and, at the smallest N, nsproxy with its counters off), in the order they take turns. */
async function entrants(n: number, upstreamPort: number, drain: Drain): Promise<Entrant[]> {
  const before = await drain.lines(); // the drain counts for the whole run
  const glob = `${PREFIX}n${n}-*`;
  // Every tenant with series of its own, at every N: the worst case for a scrape (the default limit aggregates past 1000).
  const series = ["--metrics-tenant-limit", String(n)];
  const accessFile = `${TMP}/access-${n}.log`;
  const list: Entrant[] = [
    { row: newRow(n, "nsproxy", "nsproxy", false, "log off"), port: 8080, spread: true, requests: 0, start: (l) => startNsproxy(l, glob, 8080, upstreamPort, limitFor(n), undefined, { args: series }) },
    { row: newRow(n, "HAProxy", "HAProxy", false, "log off"), port: 8081, spread: true, requests: 0, start: (l) => startHaproxy(l, 8081, upstreamPort, limitFor(n), undefined, nofileLimit) },
    {
      row: newRow(n, "nsproxy", "nsproxy", true, "log on"), port: 8083, spread: false, requests: 0,
      start: (l) => startNsproxy(l, glob, 8083, upstreamPort, limitFor(n), undefined, { tag: "log", args: series, accessLog: accessFile }),
      logLines: async () => countLines(accessFile),
    },
    {
      row: newRow(n, "HAProxy", "HAProxy", true, "log on"), port: 8084, spread: false, requests: 0,
      start: (l) => startHaproxy(l, 8084, upstreamPort, limitFor(n), drain.socket, nofileLimit),
      logLines: async () => (await drain.lines()) - before,
    },
  ];
  if (n === counts[0]) {
    const off = { tag: "metrics-off", args: series, env: { NSPROXY_METRICS_OFF: "1" } };
    list.push({ row: newRow(n, "nsproxy (metrics off)", "nsproxy", false), port: 8082, spread: false, requests: 0, start: (l) => startNsproxy(l, glob, 8082, upstreamPort, limitFor(n), undefined, off) });
  }
  return list;
}

/** Start an entrant, fill its row's start-up figures and check it; a proxy that cannot start (descriptors at 10,000) is noted, not fatal. */
async function start(e: Entrant, list: string[]): Promise<void> {
  const { row } = e;
  try {
    const r = await e.start(list);
    e.running = r;
    Object.assign(row, { rssKb: r.rssKb, anonKb: r.anonKb, startupMs: r.startupMs });
    for (const note of r.notes) notes.push(`N=${row.n}: ${note}${row.log ? " (access log on)" : ""}`);
    const placement = r.log.find((l) => l.includes("listens in one worker") || l.includes("listen in every worker"));
    if (placement && !row.log) notes.push(`N=${row.n}: nsproxy: ${placement.replace(/^.*?info\s+/, "")}`);
    if (placement?.includes("listens in one worker")) row.caveat = `each tenant in 1 of its 2 workers (N × 2 listeners > RLIMIT_NOFILE ${nofileLimit} / 2)`;
    // Past the same limit HAProxy is split (haproxyLayout): each tenant served by one thread in both proxies.
    if (r.layout) {
      row.caveat = `${r.layout} (2 fds/tenant); CPU, RSS of all`;
      if (!row.log) notes.push(`N=${row.n}: HAProxy as ${r.layout}: 2 × N descriptors (a listener and the namespace fd HAProxy keeps open per frontend) do not fit half of RLIMIT_NOFILE ${nofileLimit} in one process, the rule past which nsproxy puts each tenant in one of its workers, so each tenant is served by one thread in both proxies; the loaded tenant's process does the work, the other's idle CPU over the same interval is counted too; RSS: the processes' anonymous memory summed plus their shared file pages once; startup: the slower process`);
    }
  } catch (err) {
    const lines = (err as Error).message.split("\n");
    const alerts = lines.filter((l) => l.includes("[ALERT]"));
    row.failed = err instanceof Error && err.message.includes("Too many open files") ? `did not start: EMFILE (a listener + a namespace fd per frontend; RLIMIT_NOFILE ${nofileLimit})` : "did not start (see notes)";
    row.liveAdd = "did not start (see notes)";
    notes.push(`N=${row.n}: ${row.proxy} (access log ${row.log ? "on" : "off"}) did not start: ${lines[0]} ${alerts.length ? `${alerts.length} alert lines, the first: \`${alerts[0]!.slice(0, 220)}\`` : (lines.slice(1).find((l) => l.trim()) ?? "").slice(0, 220)}`);
    return;
  }
  // A proxy that started but answers wrongly is a failed bench, not a missing point.
  row.check = sample(list).map((ns) => check(ns, e.port))[0]!;
}

async function measure(n: number, upstreamPort: number, drain: Drain): Promise<void> {
  const t0 = performance.now();
  const list = names(n);
  const tMade = performance.now();
  const all = await entrants(n, upstreamPort, drain);
  for (const e of all) {
    log(`N=${n}: starting ${e.row.proxy}, access log ${e.row.log ? "on" : "off"}`);
    await start(e, list);
  }
  rows.push(...all.map((e) => e.row));
  const live = all.filter((e) => e.running);
  const tStarted = performance.now();
  log(`N=${n}: ${live.length}/${all.length} up; load`);
  const spreadNs = spreadOver(list, Math.min(n, 8));
  const count = <R extends { requests: number }>(e: Entrant, r: R): R => ((e.requests += r.requests), r);
  for (const e of live) count(e, await wrk(list[0]!, url(e.port), { conns: 50, durationS: WARMUP_S }));
  for (let round = 0; round < rounds; round++) {
    for (const e of live) e.row.singles.push(count(e, await withCpu(pids(e), () => wrk(list[0]!, url(e.port), { conns: 50, durationS }))));
    for (const e of live.filter((x) => x.spread)) {
      e.row.spreads.push(count(e, await withCpu(pids(e), () => wrkSpread(spreadNs, url(e.port), { conns: 8, durationS }))));
      e.row.spreadK = spreadNs.length;
    }
    log(`N=${n}: round ${round + 1}/${rounds} done`);
  }
  const tLoaded = performance.now();
  await Bun.sleep(300); // nsproxy flushes its log every 50 ms, the drain reports after 100 ms idle
  for (const e of live) {
    e.row.rssAfterLoadKb = groupRssKb(pids(e)).rssKb;
    if (e.logLines) notes.push(`N=${n}: ${e.row.proxy}'s access log: ${fmt(await e.logLines())} lines for ${fmt(e.requests)} requests wrk completed (plus a few from probes, checks and cut-off ones)`);
  }
  metricsOffNote(n);
  const main = live.find((e) => e.row.kind === "nsproxy" && e.row.pair === "log off");
  // A slow scrape or live add under load is a figure to note, not a reason to lose the run's others.
  if (main) {
    await scrapeTime(main.running!).then((s) => notes.push(`N=${n}: ${s}`), (e) => notes.push(`N=${n}: scrape of /metrics failed: ${describe(e)}`));
    await addLive(main.running!, main.row, `${PREFIX}live-n${n}`).catch((e) => notes.push(`N=${n}: live add failed: ${describe(e)}`));
  }
  await Promise.all(live.flatMap((e) => e.running!.procs.map((p) => stop(p, 30_000))));
  for (const e of live) notes.push(`N=${n}: ${logSummary(e.running!.name, e.running!.log)}${e.row.log ? " (access log on)" : ""}`);
  rmSync(`${TMP}/access-${n}.log`, { force: true });
  const removeMs = removeNamespaces([...list, ...[1, 2, 3].map((i) => `${PREFIX}live-n${n}-${i}`)]);
  phases.push(`N=${n}: namespaces made ${seconds(tMade - t0)}, proxies started and checked ${seconds(tStarted - tMade)}, load ${seconds(tLoaded - tStarted)}, stop/scrape/live adds and removal ${seconds(performance.now() - tLoaded)} (\`ip netns del\` ${seconds(removeMs)}); ${seconds(performance.now() - t0)} in all`);
  log(phases.at(-1)!);
}

const phases: string[] = [];
/** The descriptor limit both proxies run under (raised if the kernel lets the bench). */
let nofileLimit = NaN;

function metricsOffNote(n: number): void {
  const on = rows.find((r) => r.n === n && r.proxy === "nsproxy" && !r.log);
  const off = rows.find((r) => r.n === n && r.proxy === "nsproxy (metrics off)");
  if (!on || !off || off.singles.length === 0) return;
  const rOn = median(on.singles.map((w) => w.rps));
  const rOff = median(off.singles.map((w) => w.rps));
  notes.push(
    `N=${n}: metrics on vs off (NSPROXY_METRICS_OFF=1: no counters, no histogram), alternating: ${rOn.toFixed(0)} vs ${rOff.toFixed(0)} req/s (${((rOn / rOff - 1) * 100).toFixed(1)}%), ` +
      `CPU ${median(on.singles.map((w) => w.cpuUsPerReq ?? NaN)).toFixed(1)} vs ${median(off.singles.map((w) => w.cpuUsPerReq ?? NaN)).toFixed(1)} µs/req`,
  );
}

interface Drain {
  socket: string;
  /** Datagrams received so far, once the socket has been idle for 100 ms. */
  lines(): Promise<number>;
}

/**
 * The syslog receiver HAProxy's access log is sent to, for the whole run. It runs in a namespace of its own whose
 * \`net.unix.max_dgram_qlen\` is 512, as systemd sets it on a host (the kernel's 10 would drop lines at the first
 * scheduling delay of the drain); a unix socket bound to a path is reachable from any namespace.
 */
async function startDrain(): Promise<Drain> {
  const socket = `${TMP}/log.sock`;
  const ns = `${PREFIX}syslog`;
  addNamespaces([ns]);
  sh(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.unix.max_dgram_qlen=512"]);
  const proc = spawn(["ip", "netns", "exec", ns, BUN, `${import.meta.dir}/lib/syslog-drain.ts`, socket], 60 * 60_000);
  const out: string[] = [];
  void collectLines(proc.stdout, out);
  for (let i = 0; i < 200 && !out.includes("ready"); i++) await Bun.sleep(25);
  if (!out.includes("ready")) throw new Error(`the syslog drain did not start: ${await new Response(proc.stderr).text()}`);
  return { socket, lines: async () => Number(/^lines (\d+)/.exec(out.findLast((l) => l.startsWith("lines ")) ?? "")?.[1] ?? NaN) };
}

/** GET /metrics over the admin socket five times: the median time and the size of the exposition. */
async function scrapeTime(p: Running): Promise<string> {
  const times: number[] = [];
  let bytes = 0;
  let lines = 0;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const text = await (await fetch("http://nsproxy/metrics", { unix: p.adminSock!, signal: AbortSignal.timeout(30_000) })).text();
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
  // nsproxy holds a listener per tenant per worker, HAProxy a listener and a namespace fd per frontend.
  const nofile = raiseNofile(cpus().length * counts.at(-1)! + 4096);
  if (nofile.note) notes.push(nofile.note);
  nofileLimit = nofile.limit;
  // Other work on this machine skews every figure: say how busy it was.
  notes.push(`load average at the start: ${loadavg()}`);
  const { port: upstreamPort } = await startUpstream();
  const drain = await startDrain();
  log(`upstream on 127.0.0.1:${upstreamPort}; syslog drain on ${drain.socket}; namespaces ${PREFIX}*; temp ${TMP}`);
  // An N that fails ends the run, but what the Ns before it measured is still written.
  let failure: unknown;
  for (const n of counts) {
    try {
      await measure(n, upstreamPort, drain);
    } catch (e) {
      failure = e;
      notes.push(`N=${n}: the bench stopped here: ${describe(e)}`);
      break;
    }
  }
  notes.push(`load average at the end: ${loadavg()}`);
  notes.push(`phases: ${phases.join("; ")}`);
  const date = new Date().toISOString();
  const m = machine();
  const subtitle = `${date.slice(0, 16).replace("T", " ")} UTC, ${m.cpus} CPUs (${m.model})${args.label ? `, ${args.label}` : ""}; bench/RESULTS.md`;
  const figures = writeFigures(rows, `${import.meta.dir}/figures`, subtitle, "figures/");
  const rep = {
    command: `bun bench/run.ts ${process.argv.slice(2).join(" ")}`.trim(),
    date,
    versions: versions(),
    opts: { durationS, rounds, warmupS: WARMUP_S },
    label: args.label,
    figures,
    rows,
    notes,
    elapsedS: elapsedS(),
  };
  const md = markdown(rep);
  writeFileSync(`${import.meta.dir}/RESULTS.md`, md);
  console.log(md);
  if (failure) throw failure;
});
