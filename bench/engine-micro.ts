// The engine alone, no sockets: how many ns a typical keep-alive exchange costs in parse + rewrite + state machine.
// Usage: bun bench/engine-micro.ts [iterations]   (SAB=1: counters in a SharedArrayBuffer as in a worker; HIST=1: with the histogram)
import { ProxyConn } from "../src/engine/conn.ts";
import { makeStamp } from "../src/engine/rewrite.ts";
import { Stat } from "../src/engine/stats.ts";
import type { Duplex, Env, Route, UpstreamEvents } from "../src/engine/types.ts";

const n = Number(process.argv[2] ?? 500_000);
const sink: Duplex = { write: (d) => d.length, end() {}, terminate() {}, pause() {}, resume() {} };
let events: UpstreamEvents | undefined;
const env: Env = {
  limits: { requestTimeoutMs: 1e4, idleTimeoutMs: 6e4, connectTimeoutMs: 5e3, bodyTimeoutMs: 6e4, tunnelTimeoutMs: 36e5, maxHeaderBytes: 16384, maxHeaders: 100, maxTargetBytes: 8192 },
  dial: (_to, e) => {
    events = e;
  },
  now: () => 0,
  workerStats: process.env.HIST ? new Float64Array(new SharedArrayBuffer(32 * 8)) : undefined,
};
const route: Route = { tenant: "acme", stamp: makeStamp("X-Nsproxy-Tenant", "acme", {}, ""), upstream: { host: "127.0.0.1", port: 9 }, upstreamText: "u", upstreamTimeoutMs: 3e4, stats: process.env.SAB ? new Float64Array(new SharedArrayBuffer(Stat.COUNT * 8)) : new Float64Array(Stat.COUNT) };
const conn = new ProxyConn(sink, route, "127.0.0.1", env);
const enc = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
const req = enc("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n");
const res = enc("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-type: text/plain\r\n\r\nok\n");
conn.onClientData(req);
events!.onOpen(sink);
events!.onData(res);
for (let round = 0; round < 3; round++) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    conn.onClientData(req);
    events!.onData(res);
  }
  const ns = ((performance.now() - t0) * 1e6) / n;
  console.log(`round ${round + 1}: ${ns.toFixed(0)} ns per exchange (${n} exchanges), state ${conn.state}`);
}
