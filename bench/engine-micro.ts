// The engine alone, no sockets: how many ns a typical keep-alive exchange costs in parse + rewrite + state machine.
// Usage: bun bench/engine-micro.ts [iterations]
//   SAB=1: counters in a SharedArrayBuffer as in a worker; HIST=1: with the histogram;
//   LOG=text|json: with the access log (its batches counted, not written);
//   ALLOC=1: also the GC-heap bytes allocated per exchange (see allocatedPerExchange); WARM=k: k untimed exchanges first.
import { spawnSync } from "node:child_process";
import { ProxyConn } from "../src/engine/conn.ts";
import { makeStamp } from "../src/engine/rewrite.ts";
import { Stat } from "../src/engine/stats.ts";
import { accessLog } from "../src/proxy/access-log.ts";
import { openExchange } from "./lib/exchange.ts";

const n = Number(process.argv[2] ?? 500_000);
const rounds = Number(process.env.ROUNDS ?? 3);
const format = process.env.LOG;
let logged = 0;
const access = format === "text" || format === "json" ? accessLog(format, (chunk) => (logged += chunk.length)) : undefined;
const { conn, exchange } = openExchange(
  { ProxyConn, makeStamp },
  {
    stats: process.env.SAB ? new Float64Array(new SharedArrayBuffer(Stat.COUNT * 8)) : new Float64Array(Stat.COUNT),
    workerStats: process.env.HIST ? new Float64Array(new SharedArrayBuffer(32 * 8)) : undefined,
    access,
  },
);
// WARM: untimed exchanges first, so the JIT has compiled the hot path before the rounds (for callgrind's n vs 3n).
for (let i = 0; i < Number(process.env.WARM ?? 0); i++) {
  exchange();
}
for (let round = 0; round < rounds; round++) {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    exchange();
  }
  const c = process.cpuUsage(c0);
  const ns = ((performance.now() - t0) * 1e6) / n;
  // CPU time is the figure to compare on a loaded machine: wall time includes waiting for a core.
  const cpu = ((c.user + c.system) * 1e3) / n;
  console.log(`round ${round + 1}: ${cpu.toFixed(0)} ns CPU per exchange (wall ${ns.toFixed(0)}; ${n} exchanges), state ${conn.state}${format ? `, log ${format} ${logged} bytes` : ""}`);
}
access?.flush();

/**
 * GC-heap bytes allocated per exchange: JSC's own accounting (BUN_JSC_logGC prints the bytes allocated
 * in each cycle when it asks for a collection), summed over a run of n and one of 3n exchanges in child
 * processes; the difference over 2n cancels start-up. Counts cells and the extra memory JSC is told of
 * (string and buffer storage); exact to one 8 MB cycle, so ±16 MB / 2n. bun:jsc heapStats() cannot do
 * this: its heapSize and objectCount are those of the last collection, not allocations since.
 */
function allocatedPerExchange(): number {
  const run = (count: number) => {
    const r = spawnSync(process.execPath, [import.meta.path, String(count)], { env: { ...process.env, ALLOC: "", ROUNDS: "1", BUN_JSC_logGC: "1" }, encoding: "utf8", maxBuffer: 1 << 28 });
    let bytes = 0;
    for (const m of r.stderr.matchAll(/bytes allocated this cycle: (\d+)/g)) bytes += Number(m[1]);
    return bytes;
  };
  return (run(3 * n) - run(n)) / (2 * n);
}
if (process.env.ALLOC) console.log(`allocated: ${allocatedPerExchange().toFixed(0)} GC-heap bytes per exchange (n=${n} vs 3n)`);
