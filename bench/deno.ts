// nsproxy on Bun (dist/nsproxy) beside nsproxy on Deno (deno run src/cli.ts) and HAProxy: req/s, CPU per request, RSS per namespace.
// Usage: bun bench/deno.ts [--ns 1,100] [--duration 8] [--rounds 2]   (root; loopback only; writes bench/RESULTS-deno.md)
// The figures are made as bench/run.ts makes its "single" ones: the same upstream, wrk -t1 -c50 --latency from inside
// the first namespace after a 3 s warm-up, the proxies alternating, the median of the rounds; CPU from /proc/PID/stat.
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { median } from "./lib/format.ts";
import { startUpstream } from "./lib/haproxy.ts";
import { check, startHaproxy, waitAttached } from "./lib/proxies.ts";
import { rssKb } from "./lib/proc.ts";
import { addNamespaces, collectLines, ensureTools, NSPROXY, nsproxyRunFlags, PREFIX, raiseNofile, removeStale, ROOT, runBench, spawn, stop, TMP } from "./lib/setup.ts";
import { withCpu, wrk, type WrkResult } from "./lib/wrk.ts";

const { values: args } = parseArgs({
  options: { ns: { type: "string", default: "1,100" }, duration: { type: "string", default: "8" }, rounds: { type: "string", default: "2" } },
});
const counts = [...new Set(args.ns.split(",").map(Number))].sort((a, b) => a - b);
const durationS = Number(args.duration);
const rounds = Number(args.rounds);
const DENO = `${ROOT}/node_modules/@deno/linux-${process.arch}-glibc/deno`;

interface Proxy {
  label: string;
  pid: number;
  port: number;
  rssKb: number;
  anonKb: number;
  stop(): Promise<void>;
}

const RUNTIMES = [
  { label: "nsproxy (Bun, dist/nsproxy)", cmd: [NSPROXY], port: 8080 },
  { label: "nsproxy (Deno, src/cli.ts)", cmd: [DENO, "run", "-A", "--unstable-net", `${ROOT}/src/cli.ts`], port: 8082 },
];

/** Start nsproxy with `cmd` as bench/run.ts does (--discover, 2 workers on 2 cores, no access log); RSS once all answer. */
async function startNsproxy(label: string, cmd: string[], list: string[], glob: string, port: number, upstreamPort: number): Promise<Proxy> {
  const dir = `${TMP}/${port}-${list.length}`;
  const argv = [...cmd, "run", "-l", `127.0.0.1:${port}`, "-u", `http://127.0.0.1:${upstreamPort}`, "--discover", `/run/netns=${glob}`, ...nsproxyRunFlags(dir)];
  const proc = spawn(argv, 30 * 60_000);
  const log: string[] = [];
  void collectLines(proc.stderr, log);
  await waitAttached(log, list.length, 60_000 + list.length * 20, proc).catch((e: Error) => {
    throw new Error(`${label}: ${e.message}`);
  });
  for (const ns of [list[0]!, list.at(-1)!]) check(ns, port);
  await Bun.sleep(500); // as bench/run.ts: let lazily touched pages settle before reading RSS
  return { label, pid: proc.pid, port, rssKb: rssKb(proc.pid), anonKb: rssKb(proc.pid, "RssAnon"), stop: () => stop(proc) };
}

const rows: string[] = [];
const rss = new Map<string, Map<number, number>>();

await runBench(async () => {
  ensureTools();
  removeStale();
  raiseNofile(cpus().length * counts.at(-1)! + 4096);
  const { port: upstreamPort } = await startUpstream();
  for (const n of counts) {
    const list = Array.from({ length: n }, (_, i) => `${PREFIX}d${n}-${i}`);
    addNamespaces(list);
    const proxies: Proxy[] = [];
    for (const r of RUNTIMES) proxies.push(await startNsproxy(r.label, r.cmd, list, `${PREFIX}d${n}-*`, r.port, upstreamPort));
    const hap = await startHaproxy(list, 8081, upstreamPort, 60_000 + n * 20);
    proxies.push({ label: "HAProxy", pid: hap.proc.pid, port: 8081, rssKb: hap.rssKb, anonKb: hap.anonKb, stop: () => stop(hap.proc) });
    const runs = new Map<Proxy, WrkResult[]>(proxies.map((p) => [p, []]));
    for (const p of proxies) await wrk(list[0]!, `http://127.0.0.1:${p.port}/`, { conns: 50, durationS: 3 });
    for (let round = 0; round < rounds; round++) {
      for (const p of proxies) runs.get(p)!.push(await withCpu(p.pid, () => wrk(list[0]!, `http://127.0.0.1:${p.port}/`, { conns: 50, durationS })));
      console.error(`N=${n}: round ${round + 1}/${rounds} done`);
    }
    for (const p of proxies) {
      const rs = runs.get(p)!;
      const byN = rss.get(p.label) ?? new Map<number, number>();
      byN.set(n, p.rssKb);
      rss.set(p.label, byN);
      const smallest = byN.get(counts[0]!)!;
      const perNs = n > counts[0]! ? `${((p.rssKb - smallest) / (n - counts[0]!)).toFixed(1)}` : "—";
      const errors = rs.reduce((a, r) => a + r.errors, 0);
      rows.push(
        `| ${n} | ${p.label} | ${Math.round(median(rs.map((r) => r.rps))).toLocaleString("en-US")} | ${median(rs.map((r) => r.p99Ms)).toFixed(2)} | ${median(rs.map((r) => r.cpuUsPerReq!)).toFixed(1)} | ${(p.rssKb / 1024).toFixed(1)} | ${(p.anonKb / 1024).toFixed(1)} | ${perNs} | ${errors} |`,
      );
      await p.stop();
    }
  }
  const md = [
    "# nsproxy on Bun and on Deno, beside HAProxy",
    "",
    `- ${cpus().length} CPUs; bun ${Bun.version}; ${Bun.spawnSync([DENO, "--version"]).stdout.toString().split("\n")[0]}; date ${new Date().toISOString()}`,
    `- Command: \`bun bench/deno.ts ${process.argv.slice(2).join(" ")}\`; wrk -t1 -c50 -d${durationS}s, ${rounds} round(s), medians`,
    "",
    "| N | proxy | req/s | p99 ms | CPU µs/req | RSS MB | anon MB | RSS per extra ns kB | wrk errors |",
    "|---|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
  ].join("\n");
  writeFileSync(`${import.meta.dir}/RESULTS-deno.md`, md);
  console.log(md);
});
