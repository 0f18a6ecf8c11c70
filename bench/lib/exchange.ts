// The keep-alive exchange the engine benchmarks replay (one request, one response, no sockets), on any tree's engine.
import type { ProxyConn } from "../../src/engine/conn.ts";
import type { makeStamp } from "../../src/engine/rewrite.ts";
import type { Duplex, Env, Limits, Route, UpstreamEvents } from "../../src/engine/types.ts";

/** Generous limits and timeouts: none of them is reached by the replayed exchange. */
export const LIMITS: Limits = { requestTimeoutMs: 1e4, idleTimeoutMs: 6e4, connectTimeoutMs: 5e3, bodyTimeoutMs: 6e4, tunnelTimeoutMs: 36e5, maxHeaderBytes: 16384, maxHeaders: 100, maxTargetBytes: 8192 };

const enc = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));

/** What wrk sends: a small GET with Host, User-Agent and Accept. */
export const REQUEST = enc("GET /index.html?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n");

/** What the bench upstream answers: 200 with a 3-byte body. */
export const RESPONSE = enc("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-type: text/plain\r\n\r\nok\n");

/** The engine modules an exchange needs: this tree's, or another checkout's loaded by path (bench/engine-ab.ts). */
export interface Engine {
  ProxyConn: typeof ProxyConn;
  makeStamp: typeof makeStamp;
}

/**
 * A connection of tenant "acme" whose upstream is open and has answered once, over sockets that accept every write at
 * once. `exchange()` replays one more request and response on it.
 */
export function openExchange(engine: Engine, opts: { stats: Float64Array; access?: Env["access"]; workerStats?: Float64Array }): { conn: ProxyConn; exchange(): void } {
  const sink: Duplex = { write: (d) => d.length, end() {}, terminate() {}, pause() {}, resume() {} };
  let events: UpstreamEvents | undefined;
  const env: Env = { limits: LIMITS, dial: (_to, e) => void (events = e), now: () => 0, writeCopies: true, workerStats: opts.workerStats, access: opts.access }; // writeCopies: as on Bun, the request head buffer is reused
  const route: Route = { tenant: "acme", stamp: engine.makeStamp("X-Nsproxy-Tenant", "acme", {}, ""), upstream: { host: "127.0.0.1", port: 9 }, upstreamText: "u", upstreamTimeoutMs: 3e4, stats: opts.stats };
  const conn = new engine.ProxyConn(sink, route, "127.0.0.1", env);
  conn.onClientData(REQUEST);
  events!.onOpen(sink);
  events!.onData(RESPONSE);
  return {
    conn,
    exchange() {
      conn.onClientData(REQUEST);
      events!.onData(RESPONSE);
    },
  };
}
