// The daemon's RSS over a 1 GB upload and download, as test/stream.test.ts measures it (a fresh daemon, warmed up), configurations alternated round by round.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { startUpstream } from "../test/helpers/upstream.ts";

const MB = 1024 * 1024;
const SIZE = Number(process.env.MB ?? 1024) * MB;
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const DIRS = (process.env.DIRS ?? "up,down").split(",");
/** JSON list of environments, one daemon configuration each (NSPROXY_* knobs under test). */
const CONFIGS: Record<string, string>[] = JSON.parse(process.env.CONFIGS ?? "[{}]");

function rss(pid: number): number {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(s.match(/^VmRSS:\s+(\d+) kB/m)?.[1] ?? Number.NaN) * 1024;
}

/** utime+stime of the process in seconds. */
function cpu(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function nsExec(ns: string, argv: string[], timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn(["ip", "netns", "exec", ns, ...argv], { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

const NS = `nspt-srss-${process.pid}`;
const upstream = startUpstream();
spawnSync("ip", ["netns", "add", NS]);
spawnSync("ip", ["-n", NS, "link", "set", "lo", "up"]);
const dir = mkdtempSync("/tmp/srss-");
const CLI = process.env.DENO ? [process.env.DENO, "run", "-A", "--unstable-net", `${import.meta.dir}/../src/cli.ts`] : [process.execPath, `${import.meta.dir}/../src/cli.ts`];
const URL = "http://127.0.0.1:8090";
const cmd: Record<string, string> = {
  up: `head -c ${SIZE} /dev/zero | curl -sS -o /dev/null -T - -X POST -H 'Expect:' ${URL}/upload`,
  down: `curl -sS ${URL}/bytes?n=${SIZE} -o /dev/null`,
  /** Nothing for as long as an upload takes: how much the RSS moves by itself after the warm-up. */
  idle: "sleep 1.5",
  /** Small keep-alive requests (wrk, 5 s): does collecting per MiB read cost CPU per request? */
  small: `wrk -c50 -t2 -d5s ${URL}/small`,
};
const sums: Record<string, { peak: number[]; cpu: number[]; secs: number[] }> = {};

async function round(c: number, r: number): Promise<void> {
  const env = CONFIGS[c]!;
  const args = ["run", "-l", "127.0.0.1:8090", "-u", `http://127.0.0.1:${upstream.port}`, "-n", NS, "-w", "2", "--no-access-log"];
  // ROOT in a configuration: run that checkout's source (the tree before a change, for A/B).
  const cli = env.ROOT ? [CLI[0]!, ...CLI.slice(1, -1), `${env.ROOT}/src/cli.ts`] : CLI;
  const proc = Bun.spawn([...cli, ...args, "--admin-socket", `${dir}/admin.sock`, "--tenants-dir", `${dir}/tenants.d`], {
    stdout: "ignore",
    stderr: process.env.STDERR === "1" ? "inherit" : "ignore",
    env: { ...process.env, ...env },
  });
  try {
    for (let i = 0; i < 100; i++) {
      const w = await nsExec(NS, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", `${URL}/warm`]);
      if (w.stdout === "200") break;
      await Bun.sleep(100);
    }
    // The warm-up of test/stream.test.ts.
    for (let i = 0; i < 20; i++) await nsExec(NS, ["curl", "-s", "-o", "/dev/null", "--data-binary", "x", `${URL}/warm`]);
    await nsExec(NS, ["curl", "-s", "-o", "/dev/null", `${URL}/bytes?n=16777216`]);
    await nsExec(NS, ["sh", "-c", `head -c 16777216 /dev/zero | curl -sS -o /dev/null -T - -X POST -H 'Expect:' ${URL}/warm`]);
    const line: string[] = [];
    for (const [i, d] of DIRS.entries()) {
      const before = rss(proc.pid);
      const c0 = cpu(proc.pid);
      const t0 = performance.now();
      let peak = before;
      const timer = setInterval(() => (peak = Math.max(peak, rss(proc.pid))), 10);
      const res = await nsExec(NS, ["sh", "-c", cmd[d]!], 120_000);
      clearInterval(timer);
      peak = Math.max(peak, rss(proc.pid));
      const secs = (performance.now() - t0) / 1000;
      const used = cpu(proc.pid) - c0;
      if (res.code !== 0) line.push(`${d} FAILED ${res.stderr.trim()}`);
      const key = `${c} ${d}${DIRS.slice(0, i).includes(d) ? " again" : ""}`;
      const s = (sums[key] ??= { peak: [], cpu: [], secs: [] });
      s.peak.push((peak - before) / MB);
      s.cpu.push(used);
      s.secs.push(secs);
      const requests = Number(res.stdout.match(/(\d+) requests in/)?.[1] ?? 0);
      if (requests > 0) line.push(`${d} ${requests} requests, ${((used / requests) * 1e6).toFixed(1)} µs CPU each`);
      line.push(`${d} ${(before / MB).toFixed(1)} +${((peak - before) / MB).toFixed(1)} MB ${secs.toFixed(2)} s CPU ${used.toFixed(2)} s`);
    }
    console.log(`round ${r} config ${c}: ${line.join(" | ")}`);
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

const fmt = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return `median ${s[Math.floor(s.length / 2)]!.toFixed(2)} [${s.map((x) => x.toFixed(1)).join(" ")}]`;
};
try {
  for (let r = 0; r < ROUNDS; r++) for (let c = 0; c < CONFIGS.length; c++) await round(c, r);
  for (const [k, s] of Object.entries(sums)) console.log(`config ${k} ${JSON.stringify(CONFIGS[Number(k.split(" ")[0])])}: peak ${fmt(s.peak)} MB; CPU ${fmt(s.cpu)} s; time ${fmt(s.secs)} s`);
} finally {
  upstream.stop(true);
  spawnSync("ip", ["netns", "del", NS]);
  rmSync(dir, { recursive: true, force: true });
}
