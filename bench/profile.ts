// Where a proxy's CPU goes at N=1 under wrk: perf record (JSC's JIT dump for nsproxy), summarised by kind of code and by the JS function native time is spent under.
// Usage (root): bun bench/profile.ts [nsproxy|haproxy|both] [SECONDS]; prints markdown (bench/PROFILE.md says how to read it).
import type { Subprocess } from "bun";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { KINDS, kindOf, perfMapLines, samples } from "./lib/perf.ts";
import { cpuSeconds, loadavg } from "./lib/proc.ts";
import { startUpstream } from "./lib/haproxy.ts";
import { startHaproxy, waitAttached } from "./lib/proxies.ts";
import { addNamespaces, BUN, collectLines, ensureTools, nsproxyRunFlags, PREFIX, ROOT, runBench, sh, spawn, stop, TMP } from "./lib/setup.ts";
import { wrk } from "./lib/wrk.ts";

const [which = "both", secondsArg = "15"] = process.argv.slice(2);
const seconds = Number(secondsArg);
/** Samples per second per CPU: enough for 1% to mean ~100 samples over 15 s, little enough not to move the figures much. */
const FREQ = 999;
const CONNS = 50;

const pct = (n: number, total: number) => `${((100 * n) / total).toFixed(1)}%`;

function top(counts: Map<string, number>, total: number, k: number): string {
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, k)
    .map(([name, n]) => `| ${name.slice(0, 90).replaceAll("|", "\\|")} | ${pct(n, total)} |`)
    .join("\n");
}

const add = (m: Map<string, number>, k: string, n = 1) => m.set(k, (m.get(k) ?? 0) + n);

/** The summary of one recording: kinds, threads, top leaf symbols, and for JIT'd JS frames the native time under them. */
function summarise(name: string, text: string, self: string): string {
  const all = samples(text);
  const total = all.length;
  const kinds = new Map<string, number>();
  const leaves = new Map<string, number>();
  const threads = new Map<string, number>();
  /** "thread\tkind" → samples. */
  const threadKinds = new Map<string, number>();
  const underJs = new Map<string, number>();
  const nativeUnderJs = new Map<string, number>();
  let nativeCalledFromJs = 0;
  for (const { comm, frames } of all) {
    const leaf = frames[0]!;
    const kind = kindOf(leaf.dso, self);
    add(kinds, kind);
    add(threads, comm);
    add(threadKinds, `${comm}\t${kind}`);
    add(leaves, `${leaf.sym} (${kind})`);
    // The innermost JS frame: the engine function this sample's work was done for.
    const js = frames.find((f) => kindOf(f.dso, self) === "JIT'd JS" && !/Thunk|Trampoline/.test(f.sym));
    if (js) {
      add(underJs, js.sym);
      if (kind !== "JIT'd JS") {
        nativeCalledFromJs++;
        add(nativeUnderJs, `${js.sym} → ${kind}`);
      }
    }
  }
  const kindRows = [...kinds].sort((a, b) => b[1] - a[1]).map(([k, n]) => `| ${k} | ${pct(n, total)} |`).join("\n");
  return [
    `### ${name}: ${total} samples`,
    "",
    "| innermost frame in | share |\n|---|---|",
    kindRows,
    `| (native or kernel code under a JIT'd JS frame) | ${pct(nativeCalledFromJs, total)} |`,
    "",
    "Threads:",
    "",
    `| thread | share | ${KINDS.join(" | ")} |\n|---|---|${KINDS.map(() => "---|").join("")}`,
    [...threads]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([t, n]) => `| ${t} | ${pct(n, total)} | ${KINDS.map((k) => pct(threadKinds.get(`${t}\t${k}`) ?? 0, total)).join(" | ")} |`)
      .join("\n"),
    "",
    "Hottest innermost functions:",
    "",
    "| function (kind) | self |\n|---|---|",
    top(leaves, total, 25),
    ...(underJs.size > 0
      ? [
          "",
          "JS functions, with everything under them until the next JS frame (their own code, the runtime and the kernel they call):",
          "",
          "| JS function | share |\n|---|---|",
          top(underJs, total, 25),
          "",
          "Native, libc or kernel code by the innermost JS function above it (call trampolines skipped):",
          "",
          "| JS function → kind of code | share |\n|---|---|",
          top(nativeUnderJs, total, 25),
        ]
      : []),
    "",
  ].join("\n");
}

/**
 * JSC names its JIT dump jit-N-M.dump, which `perf inject --jit` does not take (it wants jit-PID.dump): the dumps in
 * `dir` (this process's alone) become /tmp/perf-PID.map, which perf reads for samples in anonymous memory.
 */
function jitDumpToPerfMap(dir: string, pid: number): number {
  const lines = readdirSync(dir)
    .filter((n) => n.startsWith("jit-") && n.endsWith(".dump"))
    .flatMap((f) => perfMapLines(readFileSync(`${dir}/${f}`)));
  writeFileSync(`/tmp/perf-${pid}.map`, `${lines.join("\n")}\n`);
  return lines.length;
}

/** Load `p` with wrk inside `ns` and record it meanwhile; returns the summary and the CPU per request. */
async function profile(label: string, p: { proc: Subprocess; port: number }, ns: string, self: string, jitDir?: string): Promise<string> {
  const url = `http://127.0.0.1:${p.port}/`;
  await wrk(ns, url, { conns: CONNS, durationS: 3 }); // warm-up: the JIT has compiled the hot path
  const data = `${TMP}/${label}.perf`;
  const rec = spawn(["perf", "record", "-g", "-F", String(FREQ), "-p", String(p.proc.pid), "-o", data, "--", "sleep", String(seconds)], (seconds + 30) * 1000);
  const c0 = cpuSeconds(p.proc.pid);
  const load = await wrk(ns, url, { conns: CONNS, durationS: seconds });
  const cpu = cpuSeconds(p.proc.pid) - c0;
  await rec.exited;
  const jitted = jitDir ? jitDumpToPerfMap(jitDir, p.proc.pid) : 0;
  const input = data;
  // Written to a file: the text is larger than a pipe's buffer would be let to grow.
  sh(["sh", "-c", `perf script --no-inline -i "${input}" -F comm,tid,ip,sym,dso > "${data}.txt"`]);
  const text = readFileSync(`${data}.txt`, "utf8");
  const perRequest = (cpu * 1e6) / load.requests;
  if (jitDir) rmSync(`/tmp/perf-${p.proc.pid}.map`, { force: true });
  return `${summarise(label, text, self)}\n${jitDir ? `${jitted} JIT'd code blocks named from JSC's JIT dump. ` : ""}wrk: ${Math.round(load.rps)} req/s, ${load.requests} requests, ${load.errors} errors; ${perRequest.toFixed(1)} µs CPU per request while recorded (perf adds its own cost).\n`;
}

/**
 * nsproxy from source under the bun that runs this script (the same engine as dist/nsproxy, whose compiled binary
 * has no symbol table for perf), with JSC writing its JIT dump.
 */
async function startFromSource(ns: string, port: number, upstreamPort: number, jitDir: string): Promise<{ proc: Subprocess; port: number }> {
  const dir = `${TMP}/nsproxy-profile`;
  const argv = [BUN, `${ROOT}/src/cli.ts`, "run", "-l", `127.0.0.1:${port}`, "-u", `http://127.0.0.1:${upstreamPort}`, "--discover", `/run/netns=${ns}`, ...nsproxyRunFlags(dir)];
  const proc = spawn(argv, 30 * 60_000, { env: { BUN_JSC_useJITDump: "1", BUN_JSC_jitDumpDirectory: jitDir } });
  const log: string[] = [];
  void collectLines(proc.stderr, log);
  void collectLines(proc.stdout, log);
  await waitAttached(log, 1, 30_000, proc);
  return { proc, port };
}

await runBench(async () => {
  ensureTools({ binary: false });
  const ns = `${PREFIX}p-0`;
  addNamespaces([ns]);
  const { port: upstreamPort } = await startUpstream();
  const out = [`load average at the start: ${loadavg()}`, ""];
  if (which === "nsproxy" || which === "both") {
    const jitDir = `${TMP}/jit`;
    sh(["mkdir", "-p", jitDir]);
    const p = await startFromSource(ns, 8090, upstreamPort, jitDir);
    out.push(await profile("nsproxy", p, ns, "bun.exe", jitDir));
    await stop(p.proc);
  }
  if (which === "haproxy" || which === "both") {
    const p = await startHaproxy([ns], 8091, upstreamPort, 30_000);
    out.push(await profile("HAProxy", p, ns, "haproxy"));
    await stop(p.proc);
  }
  out.push(`load average at the end: ${loadavg()}`);
  console.log(out.join("\n"));
});
