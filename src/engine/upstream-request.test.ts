// What a connection sends upstream, without sockets: request heads written into one reused buffer (never a previous head's bytes, never under a transport still holding it), their exact bytes, and which requests a stale upstream connection may have sent twice.
import { describe, expect, test } from "bun:test";
import { ProxyConn } from "./conn.ts";
import { makeStamp } from "./rewrite.ts";
import { Stat } from "./stats.ts";
import type { Duplex, Env, Route, UpstreamEvents } from "./types.ts";

const enc = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
const text = (b: Uint8Array) => Buffer.from(b).toString("latin1");

/** A socket whose write() either copies what it takes (as Bun's) or keeps the buffer itself (as Deno's). */
class Sock implements Duplex {
  /** What each write() was given, as it was then (a copy) and the buffer itself. */
  writes: { bytes: string; given: Uint8Array }[] = [];
  room = Number.POSITIVE_INFINITY;
  terminated = false;
  write(data: Uint8Array): number {
    const n = Math.min(data.length, this.room);
    this.room -= n;
    this.writes.push({ bytes: text(data.subarray(0, n)), given: data.subarray(0, n) });
    return n;
  }
  end() {}
  terminate() {
    this.terminated = true;
  }
  pause() {}
  resume() {}
  text(): string {
    return this.writes.map((w) => w.bytes).join("");
  }
}

function setup(opts: { writeCopies?: boolean; prefix?: string } = {}) {
  const dials: { events: UpstreamEvents; sock: Sock }[] = [];
  const env: Env = {
    limits: { requestTimeoutMs: 10_000, idleTimeoutMs: 60_000, connectTimeoutMs: 5_000, bodyTimeoutMs: 60_000, tunnelTimeoutMs: 3_600_000, maxHeaderBytes: 16384, maxHeaders: 100, maxTargetBytes: 8192 },
    dial: (_to, events) => dials.push({ events, sock: new Sock() }),
    now: () => 0,
    writeCopies: opts.writeCopies ?? true,
  };
  const route: Route = {
    tenant: "acme",
    stamp: makeStamp("X-Nsproxy-Tenant", "acme", { "X-Env": "prod" }, opts.prefix ?? ""),
    upstream: { host: "127.0.0.1", port: 9 },
    upstreamText: "http://127.0.0.1:9",
    upstreamTimeoutMs: 30_000,
    stats: new Float64Array(Stat.COUNT),
  };
  const client = new Sock();
  const conn = new ProxyConn(client, route, "10.0.0.7", env);
  const open = (n = 0) => {
    const d = dials[n]!;
    d.events.onOpen(d.sock);
    return d.sock;
  };
  const ev = () => dials.at(-1)!.events;
  return { conn, client, dials, open, ev };
}

const STAMP = "X-Env: prod\r\nX-Nsproxy-Tenant: acme\r\nX-Forwarded-Proto: http\r\nX-Forwarded-For: 10.0.0.7\r\n";
const OK = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

describe("upstream request heads in one buffer per connection", () => {
  test("a long head then a short one on the same connection: each leaves exactly its own bytes, from the same buffer", () => {
    const { conn, open, ev } = setup();
    const cookie = "c".repeat(1500); // larger than the buffer's first size: it grows (to at most 4 kB, so it is kept)
    conn.onClientData(enc(`GET /long HTTP/1.1\r\nHost: h\r\nCookie: ${cookie}\r\nX-nsproxy-tenant: evil\r\n\r\n`));
    const up = open();
    ev().onData(enc(OK));
    conn.onClientData(enc("GET /s HTTP/1.1\r\nHost: h\r\nX_Nsproxy_Tenant: evil\r\n\r\n"));
    ev().onData(enc(OK));
    conn.onClientData(enc("GET / HTTP/1.0\r\n\r\n"));
    expect(up.writes.map((w) => w.bytes)).toEqual([
      `GET /long HTTP/1.1\r\nHost: h\r\nCookie: ${cookie}\r\n${STAMP}X-Forwarded-Host: h\r\n\r\n`,
      `GET /s HTTP/1.1\r\nHost: h\r\n${STAMP}X-Forwarded-Host: h\r\n\r\n`,
      `GET / HTTP/1.0\r\n${STAMP}\r\n`,
    ]);
    // One buffer, written again from its start: no allocation per head.
    expect(up.writes[1]!.given.buffer).toBe(up.writes[0]!.given.buffer);
    expect(up.writes[2]!.given.byteOffset).toBe(0);
  });

  test("a head larger than 4 kB is written in a buffer of its own, let go after it: a connection keeps at most 4 kB for its heads", () => {
    const { conn, open, ev } = setup();
    conn.onClientData(enc("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"));
    const up = open();
    ev().onData(enc(OK));
    const cookie = "c".repeat(10_000);
    conn.onClientData(enc(`GET /big HTTP/1.1\r\nHost: h\r\nCookie: ${cookie}\r\n\r\n`));
    ev().onData(enc(OK));
    conn.onClientData(enc("GET /3 HTTP/1.1\r\nHost: h\r\n\r\n"));
    expect(up.writes.map((w) => w.bytes.split("\r\n")[0])).toEqual(["GET /1 HTTP/1.1", "GET /big HTTP/1.1", "GET /3 HTTP/1.1"]);
    expect(up.writes[1]!.bytes).toBe(`GET /big HTTP/1.1\r\nHost: h\r\nCookie: ${cookie}\r\n${STAMP}X-Forwarded-Host: h\r\n\r\n`);
    expect(up.writes[1]!.given.buffer.byteLength).toBeGreaterThan(10_000);
    expect(up.writes[2]!.given.buffer.byteLength).toBeLessThanOrEqual(4096);
  });

  test("a transport that keeps the buffers it is given (Deno's) gets a new one per head: what it holds is never written over", () => {
    const { conn, open, ev } = setup({ writeCopies: false });
    conn.onClientData(enc("GET /first-and-long HTTP/1.1\r\nHost: h\r\n\r\n"));
    const up = open();
    ev().onData(enc(OK));
    conn.onClientData(enc("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"));
    expect(up.writes.length).toBe(2);
    expect(up.writes.map((w) => text(w.given))).toEqual(up.writes.map((w) => w.bytes));
    expect(up.writes[1]!.given.buffer).not.toBe(up.writes[0]!.given.buffer);
  });

  test("a head the upstream has not taken whole is never written over: the next head goes into a new buffer", () => {
    const { conn, client, dials, ev } = setup();
    conn.onClientData(enc("GET /first HTTP/1.1\r\nHost: h\r\n\r\n"));
    const up = dials[0]!.sock;
    up.room = 10; // the kernel takes 10 bytes; the rest waits for drain
    dials[0]!.events.onOpen(up);
    // An upstream may answer before it has read the whole request: the client connection goes on.
    ev().onData(enc(OK));
    expect(client.text()).toBe(OK);
    conn.onClientData(enc("GET /second HTTP/1.1\r\nHost: h\r\n\r\n"));
    up.room = Number.POSITIVE_INFINITY;
    ev().onDrain();
    expect(up.text()).toBe(`GET /first HTTP/1.1\r\nHost: h\r\n${STAMP}X-Forwarded-Host: h\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n${STAMP}X-Forwarded-Host: h\r\n\r\n`);
  });

  test("request lines rebuilt (absolute-form, a path prefix, OPTIONS *), an upgrade, fields a Connection names: the bytes as before", () => {
    const cases: [prefix: string, send: string, upstream: string][] = [
      ["", "GET http://h:8/a?b HTTP/1.1\r\nHost: h:8\r\nAccept: */*\r\n\r\n", `GET /a?b HTTP/1.1\r\nHost: h:8\r\nAccept: */*\r\n${STAMP}X-Forwarded-Host: h:8\r\n\r\n`],
      ["/base", "GET /a?b HTTP/1.1\r\nHost: h\r\n\r\n", `GET /base/a?b HTTP/1.1\r\nHost: h\r\n${STAMP}X-Forwarded-Host: h\r\n\r\n`],
      ["/base", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", `OPTIONS /base HTTP/1.1\r\nHost: h\r\n${STAMP}X-Forwarded-Host: h\r\n\r\n`],
      ["", "OPTIONS * HTTP/1.0\r\n\r\n", `OPTIONS * HTTP/1.0\r\n${STAMP}\r\n`],
      [
        "",
        "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, X-Drop\r\nUpgrade: websocket\r\nX-Drop: 1\r\nSec-WebSocket-Key: k\r\n\r\n",
        `GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\nConnection: upgrade\r\n${STAMP}X-Forwarded-Host: h\r\n\r\n`,
      ],
      [
        "",
        "POST /u HTTP/1.1\r\nConnection: content-length, KEEP-ALIVE, x-a\r\nX-A: 1\r\nHost: h\r\nKeep-Alive: 5\r\nContent-Length: 2\r\nTE: trailers\r\n\r\nhi",
        `POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n${STAMP}X-Forwarded-Host: h\r\n\r\nhi`,
      ],
      ["", "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-Name: \xe9t\xe9\r\nHost: h\r\n\r\n0\r\n\r\n", `PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-Name: \xe9t\xe9\r\nHost: h\r\n${STAMP}X-Forwarded-Host: h\r\n\r\n0\r\n\r\n`],
    ];
    for (const [prefix, send, upstream] of cases) {
      const { conn, client, open } = setup({ prefix });
      conn.onClientData(enc(send));
      expect([send, client.text()]).toEqual([send, ""]);
      expect([send, open().text()]).toEqual([send, upstream]);
    }
  });
});

describe("a stale upstream connection: which requests are sent again (RFC 9112 §9.3.1)", () => {
  /** A kept-alive upstream connection after one exchange, then `request` on it, and the upstream closes as it arrives. */
  function staleAfter(request: string, room = Number.POSITIVE_INFINITY) {
    const x = setup();
    x.conn.onClientData(enc("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"));
    const up = x.open();
    x.ev().onData(enc(OK));
    up.room = room;
    x.conn.onClientData(enc(request));
    x.ev().onClose();
    return { ...x, up };
  }

  test("a POST without a body the upstream may have received is never sent again: 502, the client connection kept", () => {
    for (const request of ["POST /p HTTP/1.1\r\nHost: h\r\n\r\n", "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", "PATCH /p HTTP/1.1\r\nHost: h\r\n\r\n"]) {
      const { client, dials, up } = staleAfter(request);
      expect(up.text()).toContain(request.slice(0, 8));
      expect([request, dials.length]).toEqual([request, 1]);
      expect(client.text()).toEndWith("nsproxy: upstream http://127.0.0.1:9: connection closed before a response\n");
      expect(client.text().match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 200", "HTTP/1.1 502"]);
    }
  });

  test("idempotent methods without a body are sent once more, on a fresh connection", () => {
    for (const method of ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]) {
      const { client, dials, open, ev } = staleAfter(`${method} /i HTTP/1.1\r\nHost: h\r\n\r\n`);
      expect([method, dials.length]).toEqual([method, 2]);
      expect(open(1).text()).toStartWith(`${method} /i HTTP/1.1\r\n`);
      ev().onData(enc(OK));
      expect(client.text().match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 200", "HTTP/1.1 200"]);
    }
  });

  test("a POST none of whose bytes left (the socket took nothing: closed under us) is sent on a fresh connection", () => {
    const { client, dials, open, ev } = staleAfter("POST /p HTTP/1.1\r\nHost: h\r\n\r\n", 0);
    expect(dials.length).toBe(2);
    expect(open(1).text()).toStartWith("POST /p HTTP/1.1\r\n");
    ev().onData(enc(OK));
    expect(client.text().match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 200", "HTTP/1.1 200"]);
  });
});
