// The engine alone, no sockets: how many ns a typical keep-alive exchange costs in parse + rewrite + state machine.
// Usage: bun bench/engine-micro.ts [iterations]
//   SAB=1: counters in a SharedArrayBuffer as in a worker; HIST=1: with the histogram;
//   LOG=text|json: with the access log (its batches counted, not written);
//   ALLOC=1: also the GC-heap bytes allocated per exchange (see allocatedPerExchange); WARM=k: k untimed exchanges first.
import { spawnSync } from "node:child_process";
import { ProxyConn } from "../src/engine/conn.ts";
import { makeStamp } from "../src/engine/rewrite.ts";
import { Stat } from "../src/engine/stats.ts";
import type { Duplex, Env, Route, UpstreamEvents } from "../src/engine/types.ts";
import { accessLog } from "../src/proxy/access-log.ts";

const n = Number(process.argv[2] ?? 500_000);
const rounds = Number(process.env.ROUNDS ?? 3);
const format = process.env.LOG;
let logged = 0;
const sink: Duplex = { write: (d) => d.length, end() {}, terminate() {}, pause() {}, resume() {} };
let events: UpstreamEvents | undefined;
const env: Env = {
  limits: { requestTimeoutMs: 1e4, idleTimeoutMs: 6e4, connectTimeoutMs: 5e3, bodyTimeoutMs: 6e4, tunnelTimeoutMs: 36e5, maxHeaderBytes: 16384, maxHeaders: 100, maxTargetBytes: 8192 },
  dial: (_to, e) => {
    events = e;
  },
  now: () => 0,
  writeCopies: true, // as on Bun: the request head buffer is reused
  workerStats: process.env.HIST ? new Float64Array(new SharedArrayBuffer(32 * 8)) : undefined,
  access: format === "text" || format === "json" ? accessLog(format, (chunk) => (logged += chunk.length)) : undefined,
};
const route: Route = { tenant: "acme", stamp: makeStamp("X-Nsproxy-Tenant", "acme", {}, ""), upstream: { host: "127.0.0.1", port: 9 }, upstreamText: "u", upstreamTimeoutMs: 3e4, stats: process.env.SAB ? new Float64Array(new SharedArrayBuffer(Stat.COUNT * 8)) : new Float64Array(Stat.COUNT) };
const conn = new ProxyConn(sink, route, "127.0.0.1", env);
const enc = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
const req = enc("GET /index.html?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n");
const res = enc("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-type: text/plain\r\n\r\nok\n");
conn.onClientData(req);
events!.onOpen(sink);
events!.onData(res);
// WARM: untimed exchanges first, so the JIT has compiled the hot path before the rounds (for callgrind's n vs 3n).
for (let i = 0; i < Number(process.env.WARM ?? 0); i++) {
  conn.onClientData(req);
  events!.onData(res);
}
for (let round = 0; round < rounds; round++) {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    conn.onClientData(req);
    events!.onData(res);
  }
  const c = process.cpuUsage(c0);
  const ns = ((performance.now() - t0) * 1e6) / n;
  // CPU time is the figure to compare on a loaded machine: wall time includes waiting for a core.
  const cpu = ((c.user + c.system) * 1e3) / n;
  console.log(`round ${round + 1}: ${cpu.toFixed(0)} ns CPU per exchange (wall ${ns.toFixed(0)}; ${n} exchanges), state ${conn.state}${format ? `, log ${format} ${logged} bytes` : ""}`);
}
(env.access as { flush?: () => void } | undefined)?.flush?.();

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
