// The connection state machine without sockets: fake client and upstream sides, a fake clock.
import { describe, expect, test } from "bun:test";
import { ProxyConn } from "./conn.ts";
import { makeStamp } from "./rewrite.ts";
import { Stat } from "./stats.ts";
import { UpstreamPool } from "./upstream-pool.ts";
import type { Duplex, Env, Exchange, Route, UpstreamEvents } from "./types.ts";

const enc = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
const dec = (b: Uint8Array[]) => Buffer.concat(b).toString("latin1");

class FakeSock implements Duplex {
  written: Uint8Array[] = [];
  /** How many bytes write() accepts before reporting backpressure (Infinity: all). */
  room = Number.POSITIVE_INFINITY;
  paused = false;
  ended = false;
  terminated = false;
  write(data: Uint8Array): number {
    const n = Math.min(data.length, this.room);
    this.room -= n;
    this.written.push(data.slice(0, n));
    return n;
  }
  end() {
    this.ended = true;
  }
  terminate() {
    this.terminated = true;
  }
  pause() {
    this.paused = true;
  }
  resume() {
    this.paused = false;
  }
  text() {
    return dec(this.written);
  }
}

function setup(opts: { upstreamTimeoutMs?: number } = {}) {
  let now = 0;
  const dials: { events: UpstreamEvents; sock: FakeSock }[] = [];
  const log: Exchange[] = [];
  const env: Env = {
    limits: { requestTimeoutMs: 10_000, idleTimeoutMs: 60_000, connectTimeoutMs: 5_000, bodyTimeoutMs: 60_000, tunnelTimeoutMs: 3_600_000, maxHeaderBytes: 16384, maxHeaders: 100, maxTargetBytes: 8192 },
    dial: (_to, events) => dials.push({ events, sock: new FakeSock() }),
    access: (e) => log.push(e),
    now: () => now,
  };
  const route: Route = {
    tenant: "acme",
    stamp: makeStamp("X-Nsproxy-Tenant", "acme", { "X-Env": "prod" }, ""),
    upstream: { host: "127.0.0.1", port: 9 },
    upstreamText: "http://127.0.0.1:9",
    upstreamTimeoutMs: opts.upstreamTimeoutMs ?? 30_000,
    stats: new Float64Array(Stat.COUNT),
  };
  const client = new FakeSock();
  const conn = new ProxyConn(client, route, "10.0.0.7", env);
  /** Open the n-th dialled upstream connection and return its socket. */
  const open = (n = 0) => {
    const d = dials[n]!;
    d.events.onOpen(d.sock);
    return d.sock;
  };
  /** The events of the latest upstream connection (what the runtime would call). */
  const ev = () => dials.at(-1)!.events;
  return { conn, client, dials, open, ev, log, tick: (ms: number) => conn.sweep((now += ms)) };
}

describe("ProxyConn", () => {
  test("a GET goes upstream with the stamp and forwarding fields; the response comes back as sent", () => {
    const { conn, client, open, log, ev } = setup();
    conn.onClientData(enc("GET /a?b=1 HTTP/1.1\r\nHost: svc\r\nX-nsproxy-TENANT: evil\r\nX_Nsproxy_Tenant: evil\r\nX-Env: dev\r\nUser-Agent: t\r\n\r\n"));
    const up = open();
    expect(up.text()).toBe(
      "GET /a?b=1 HTTP/1.1\r\nHost: svc\r\nUser-Agent: t\r\nX-Env: prod\r\nX-Nsproxy-Tenant: acme\r\nX-Forwarded-Proto: http\r\nX-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Host: svc\r\n\r\n",
    );
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Odd-Case: v\r\n\r\nhi"));
    expect(client.text()).toBe("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Odd-Case: v\r\n\r\nhi");
    expect(client.ended).toBe(false);
    expect(log).toEqual([expect.objectContaining({ tenant: "acme", method: "GET", path: "/a?b=1", status: 200, bytes: 2 })]);
  });

  test("pipelined requests are answered in order, over one upstream connection", () => {
    const { conn, client, dials, open, ev } = setup();
    conn.onClientData(enc("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"));
    const up = open();
    expect(up.text()).toStartWith("GET /1 ");
    expect(up.text()).not.toContain("GET /2");
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"));
    expect(up.text()).toContain("GET /2 ");
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"));
    expect(client.text()).toBe("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2");
    expect(dials.length).toBe(1);
  });

  test("a chunked body passes byte for byte, trailers included, and the next request follows", () => {
    const { conn, open } = setup();
    const body = "5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n";
    conn.onClientData(enc(`POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n${body.slice(0, 7)}`));
    const up = open();
    conn.onClientData(enc(body.slice(7)));
    expect(up.text()).toEndWith(`\r\n\r\n${body}`);
    expect(conn.state).toBe("wait");
  });

  test("a GET with a body keeps its body (Content-Length framing), and TRACE's response body comes back", () => {
    const { conn, client, open, ev } = setup();
    conn.onClientData(enc("GET /q HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody"));
    const up = open();
    expect(up.text()).toEndWith("Content-Length: 4\r\nX-Env: prod\r\nX-Nsproxy-Tenant: acme\r\nX-Forwarded-Proto: http\r\nX-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Host: h\r\n\r\nbody");
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Type: message/http\r\nContent-Length: 3\r\n\r\nabc"));
    expect(client.text()).toEndWith("\r\n\r\nabc");
  });

  test("HEAD and 304 responses have no body even with Content-Length", () => {
    const { conn, client, open, ev } = setup();
    conn.onClientData(enc("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"));
    open();
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"));
    expect(conn.state).toBe("head");
    expect(client.ended).toBe(false);
  });

  test("upstream backpressure pauses the client; drain resumes it", () => {
    const { conn, client, open, ev } = setup();
    conn.onClientData(enc("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n"));
    const up = open();
    up.room = 3;
    conn.onClientData(enc("0123456789"));
    expect(client.paused).toBe(true);
    up.room = Number.POSITIVE_INFINITY;
    ev().onDrain();
    expect(client.paused).toBe(false);
    expect(up.text()).toEndWith("0123456789");
  });

  test("client backpressure pauses the upstream; client drain resumes it", () => {
    const { conn, client, open, ev } = setup();
    conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    const up = open();
    client.room = 10;
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde"));
    expect(up.paused).toBe(true);
    client.room = Number.POSITIVE_INFINITY;
    conn.onClientDrain();
    expect(up.paused).toBe(false);
    expect(client.text()).toEndWith("abcde");
  });

  test("Upgrade: the 101 turns the connection into a tunnel both ways", () => {
    const { conn, client, open, ev } = setup();
    conn.onClientData(enc("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n"));
    const up = open();
    expect(up.text()).toContain("\r\nUpgrade: websocket\r\n");
    expect(up.text()).toContain("\r\nConnection: upgrade\r\n");
    ev().onData(enc("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x01a"));
    expect(client.text()).toBe("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\x81\x01a");
    conn.onClientData(enc("\x81\x01b"));
    expect(up.text()).toEndWith("\x81\x01b");
    expect(conn.state).toBe("tunnel");
  });

  test("100-continue: the interim response reaches the client, then the final one", () => {
    const { conn, client, open, ev } = setup();
    conn.onClientData(enc("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"));
    const up = open();
    expect(up.text()).toContain("Expect: 100-continue\r\n");
    ev().onData(enc("HTTP/1.1 100 Continue\r\n\r\n"));
    expect(client.text()).toBe("HTTP/1.1 100 Continue\r\n\r\n");
    conn.onClientData(enc("ok"));
    ev().onData(enc("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"));
    expect(client.text()).toEndWith("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
  });

  test("a refused upstream is a 502 naming it; a silent one a 504", () => {
    const a = setup();
    a.conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    a.dials[0]!.events.onClose("connection refused");
    expect(a.client.text()).toStartWith("HTTP/1.1 502 Bad Gateway\r\n");
    expect(a.client.text()).toContain("nsproxy: upstream http://127.0.0.1:9: connection refused");
    expect(a.client.text()).not.toContain("Connection: close");
    expect(a.client.ended).toBe(false); // its request was read whole: the connection is still well framed

    const b = setup({ upstreamTimeoutMs: 1000 });
    b.conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    b.open();
    b.tick(500);
    expect(b.client.text()).toBe("");
    b.tick(600);
    expect(b.client.text()).toStartWith("HTTP/1.1 504 Gateway Timeout\r\n");
  });

  test("slowloris: a head still incomplete after request_timeout gets 408 and the connection closes", () => {
    const { conn, client, dials, tick } = setup();
    conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\nX-a: "));
    tick(5000);
    conn.onClientData(enc("b"));
    tick(5001);
    expect(client.text()).toStartWith("HTTP/1.1 408 Request Timeout\r\n");
    expect(client.ended).toBe(true);
    expect(dials.length).toBe(0);
  });

  test("a stale reused upstream connection is retried once for a bodyless request", () => {
    const { conn, client, dials, open, ev } = setup();
    conn.onClientData(enc("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"));
    open();
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    conn.onClientData(enc("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"));
    ev().onClose(); // the upstream's keep-alive timer closed it as the request went out
    expect(dials.length).toBe(2);
    const up2 = open(1);
    expect(up2.text()).toStartWith("GET /2 ");
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    expect(client.text().match(/200 OK/g)?.length).toBe(2);
  });

  test("bytes beyond the response's framing are never passed on", () => {
    const { conn, client, open, ev } = setup();
    conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    const up = open();
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 200 OK\r\n\r\nsmuggled"));
    // The response itself is delivered, the extra bytes never are, and that upstream connection is dropped.
    expect(client.text()).toBe("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA");
    expect(up.terminated).toBe(true);
    expect(client.ended).toBe(false);
  });

  test("a response head in several reads reaches the client whole, then the body that came with its last piece", () => {
    const { conn, client, open, ev } = setup();
    conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    open();
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Len"));
    expect(client.text()).toBe("");
    ev().onData(enc("gth: 5\r\nX-A: 1\r\n\r\nhel"));
    ev().onData(enc("lo"));
    expect(client.text()).toBe("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello");
    // Head and body in one read leave as one write; so do an interim head, its final one and the body.
    const before = client.written.length;
    conn.onClientData(enc("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"));
    ev().onData(enc("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    expect(client.written.length).toBe(before + 1);
    expect(client.text()).toEndWith("hello" + "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  });

  test("an HTTP/1.0 request after an HTTP/1.1 one on the same connection gets its rebuilt head only, not the received one too", () => {
    const { conn, client, open, ev } = setup();
    conn.onClientData(enc("GET /a HTTP/1.1\r\nHost: h\r\n\r\n"));
    open();
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"));
    const first = client.text();
    expect(first).toBe("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na");
    conn.onClientData(enc("GET /b HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"));
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"));
    expect(client.text().slice(first.length)).toBe("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nb");
  });

  test("one answer per request, even when the upstream's close is reported from inside terminate()", () => {
    for (const trigger of ["invalid response", "timeout"] as const) {
      const { conn, client, dials, tick } = setup({ upstreamTimeoutMs: 1000 });
      conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
      const d = dials[0]!;
      // A socket like Bun's: terminate() reports the close at once, synchronously.
      const sock = new FakeSock();
      sock.terminate = () => {
        sock.terminated = true;
        d.events.onClose();
      };
      d.events.onOpen(sock);
      if (trigger === "invalid response") d.events.onData(enc("HTTP/1.1 2OO OK\r\n\r\n"));
      else tick(1500);
      expect(client.text().match(/HTTP\/1\.1 50\d/g)?.length).toBe(1);
    }
  });

  test("refusals: CONNECT 405, CL+TE 400, HTTP/2.0 505 — plain text, connection closed, nothing sent upstream", () => {
    for (const [raw, status] of [
      ["CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 405],
      ["POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400],
      ["GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505],
      ["GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400],
    ] as const) {
      const { conn, client, dials } = setup();
      conn.onClientData(enc(raw));
      expect(client.text()).toStartWith(`HTTP/1.1 ${status} `);
      expect(client.text()).toContain("Content-Type: text/plain");
      if (status === 405) expect(client.text()).toContain("\r\nAllow: GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH\r\n");
      expect(client.ended).toBe(true);
      expect(dials.length).toBe(0);
    }
  });

  test("an HTTP/1.0 client asking for keep-alive gets it; without, the connection closes", () => {
    const a = setup();
    a.conn.onClientData(enc("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    a.open();
    a.ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    expect(a.client.text()).toBe("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");
    expect(a.client.ended).toBe(false);
    const b = setup();
    b.conn.onClientData(enc("GET / HTTP/1.0\r\n\r\n"));
    b.open();
    b.ev().onData(enc("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
    expect(b.client.text()).toBe("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    expect(b.client.ended).toBe(true);
  });

  test("a response read to the close ends the client connection after it", () => {
    const { conn, client, open, ev } = setup();
    conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    open();
    ev().onData(enc("HTTP/1.1 200 OK\r\n\r\npart1"));
    ev().onData(enc("part2"));
    ev().onClose();
    expect(client.text()).toBe("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart1part2");
    expect(client.ended).toBe(true);
  });
});

describe("ProxyConn edge cases", () => {
  test("empty lines between pipelined requests are skipped (RFC 9112 §2.2)", () => {
    const { conn, client, open, ev } = setup();
    conn.onClientData(enc("POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"));
    const up = open();
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    expect(up.text()).toContain("GET /2 HTTP/1.1\r\n");
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    expect(client.text().match(/200 OK/g)?.length).toBe(2);
  });

  test("a chunked request whose trailers carry the stamp, a look-alike or X-Forwarded-For is refused", () => {
    for (const name of ["X-Nsproxy-Tenant", "x_nsproxy_tenant", "X-Forwarded-For", "Content-Length", "X-Env"]) {
      const { conn, client, open } = setup();
      conn.onClientData(enc(`POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n${name}: forged\r\n\r\n`));
      const up = open();
      expect(up.text()).not.toContain("forged");
      expect(client.text()).toStartWith("HTTP/1.1 400 ");
      expect(client.text()).toContain("is not allowed");
    }
    const ok = setup();
    ok.conn.onClientData(enc("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-Checksum: 1\r\n\r\n"));
    expect(ok.open().text()).toEndWith("0\r\nX-Checksum: 1\r\n\r\n");
  });
});

describe("ProxyConn half-close", () => {
  test("a client that sends FIN after its request still gets the answer, then the connection closes", () => {
    const { conn, client, open, ev } = setup();
    conn.onClientData(enc("GET /a HTTP/1.1\r\nHost: h\r\n\r\n"));
    conn.onClientEnd();
    expect(client.ended).toBe(false);
    open();
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    expect(client.text()).toBe("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    expect(client.ended).toBe(true);
  });

  test("FIN while idle, or mid-body, closes at once", () => {
    const a = setup();
    a.conn.onClientEnd();
    expect(a.client.ended).toBe(true);
    const b = setup();
    b.conn.onClientData(enc("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc"));
    const up = b.open();
    b.conn.onClientEnd();
    expect(b.client.ended).toBe(true);
    expect(up.terminated).toBe(true);
  });
});

describe("ProxyConn timeouts and early answers", () => {
  test("idle keep-alive: closed after idle_timeout, quietly", () => {
    const { conn, client, open, ev, tick } = setup();
    conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    open();
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    const answered = client.text();
    tick(59_000);
    expect(client.ended).toBe(false);
    tick(2_000);
    expect(client.ended).toBe(true);
    expect(client.text()).toBe(answered);
  });

  test("upstream connect: no connection within connect_timeout is a 502 saying so", () => {
    const { conn, client, tick } = setup();
    conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    tick(5_001);
    expect(client.text()).toStartWith("HTTP/1.1 502 Bad Gateway\r\n");
    expect(client.text()).toContain("connect timed out after 5 s");
  });

  test("a request body that stalls for body_timeout gets 408; the upstream connection is dropped", () => {
    const { conn, client, open, tick } = setup();
    conn.onClientData(enc("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc"));
    const up = open();
    tick(30_000);
    conn.onClientData(enc("def")); // progress restarts the clock
    tick(59_000);
    expect(client.text()).toBe("");
    tick(2_000);
    expect(client.text()).toStartWith("HTTP/1.1 408 Request Timeout\r\n");
    expect(up.terminated).toBe(true);
  });

  test("an upstream that answers before the body is complete (413): the answer reaches the client, then both close", () => {
    const { conn, client, open, ev } = setup();
    conn.onClientData(enc("POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\nabc"));
    const up = open();
    ev().onData(enc("HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\n\r\nno\r\n"));
    expect(client.text()).toBe("HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nno\r\n");
    expect(client.ended).toBe(true);
    expect(up.terminated).toBe(true);
  });
});

describe("ProxyConn drain (tenant replaced or removed)", () => {
  test("an idle keep-alive connection answers one more request with Connection: close, then closes", () => {
    const { conn, client, open, ev } = setup();
    conn.onClientData(enc("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"));
    open();
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    conn.drain();
    expect(client.ended).toBe(false); // its client may be sending a request right now
    conn.onClientData(enc("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"));
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    expect(client.text()).toEndWith("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    expect(client.ended).toBe(true);
  });

  test("a draining connection that stays silent is closed after a second", () => {
    const { conn, client, tick } = setup();
    conn.drain();
    tick(900);
    expect(client.ended).toBe(false);
    tick(200);
    expect(client.ended).toBe(true);
  });
});

describe("upstream pool (idle connections of a tenant, reused by its next client connection)", () => {
  function pooled() {
    const a = setup();
    const pool = new UpstreamPool();
    (a.conn.route as { pool?: UpstreamPool }).pool = pool;
    const next = () => new ProxyConn(new FakeSock(), a.conn.route, "10.0.0.8", (a.conn as unknown as { env: Env }).env);
    return { ...a, pool, next };
  }

  test("a client that closes after a complete keep-alive response leaves its upstream connection to the next one", () => {
    const { conn, client, dials, open, ev, pool, next } = pooled();
    conn.onClientData(enc("GET /1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
    const up = open();
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    expect(client.ended).toBe(true);
    expect(up.terminated).toBe(false);
    expect(pool.size).toBe(1);
    const b = next();
    b.onClientData(enc("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"));
    expect(dials.length).toBe(1); // no new connection
    expect(up.text()).toContain("GET /2 HTTP/1.1\r\n");
    expect(up.text()).toContain("X-Forwarded-For: 10.0.0.8\r\n");
    expect(pool.size).toBe(0);
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    expect((b.client as FakeSock).text()).toBe("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  });

  test("not pooled: a response with Connection: close, a client gone mid-exchange; an idle one that speaks is dropped", () => {
    const a = pooled();
    a.conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
    const upA = a.open();
    a.ev().onData(enc("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"));
    expect(a.pool.size).toBe(0);
    expect(upA.terminated).toBe(true);

    const b = pooled();
    b.conn.onClientData(enc("GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"));
    const upB = b.open();
    b.conn.onClientClose(); // the client left before the answer
    expect(b.pool.size).toBe(0);
    expect(upB.terminated).toBe(true);

    const c = pooled();
    c.conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
    const upC = c.open();
    c.ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    expect(c.pool.size).toBe(1);
    c.dials[0]!.events.onData(enc("HTTP/1.1 408 Request Timeout\r\n\r\n")); // nothing asked: out of step
    expect(c.pool.size).toBe(0);
    expect(upC.terminated).toBe(true);
  });

  test("an idle connection expires; a stale one the upstream closed is retried on a fresh one", () => {
    const { conn, dials, open, ev, pool, next } = pooled();
    conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
    open();
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    expect(pool.size).toBe(1);
    const b = next();
    b.onClientData(enc("GET /again HTTP/1.1\r\nHost: h\r\n\r\n"));
    dials[0]!.events.onClose(); // the upstream had closed it as we sent
    expect(dials.length).toBe(2);
    const fresh = open(1);
    expect(fresh.text()).toStartWith("GET /again ");
    pool.give(dials[1]!.events as never, 0);
    pool.sweep(10_000);
    expect(pool.size).toBe(0);
  });
});

describe("ProxyConn and HTTP/1.0 clients: no transfer coding reaches them (RFC 9112 §6.1)", () => {
  const CHUNKED = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\nX-Up: 1\r\n\r\n";

  test("a chunked answer that came whole with its head gets a Content-Length: chunk data only, no trailers, keep-alive kept", () => {
    const { conn, client, open, ev, log } = setup();
    conn.onClientData(enc("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    const up = open();
    ev().onData(enc(`${CHUNKED}3;ext=1\r\nabc\r\n0a\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n`));
    expect(client.text()).toBe("HTTP/1.1 200 OK\r\nX-Up: 1\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\nabc0123456789");
    expect(client.ended).toBe(false);
    expect(up.terminated).toBe(false); // the upstream's framing was complete: its connection stays usable
    expect(log).toEqual([expect.objectContaining({ status: 200, bytes: 13 })]);
    conn.onClientData(enc("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    expect(client.text()).toEndWith("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok");
  });

  test("a chunked answer still arriving goes to the close: chunk data across reads, then the client connection ends", () => {
    const { conn, client, open, ev } = setup();
    conn.onClientData(enc("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    open();
    ev().onData(enc(`${CHUNKED}5\r\nhel`));
    expect(client.text()).toBe("HTTP/1.1 200 OK\r\nX-Up: 1\r\nConnection: close\r\n\r\nhel");
    for (const piece of ["lo\r", "\n", "1", "0\r\n", "0123456789abcdef", "\r\n0\r\nX-T", "railer: t\r\n", "\r\n"]) {
      expect(client.ended).toBe(false);
      ev().onData(enc(piece));
    }
    expect(client.text()).toBe("HTTP/1.1 200 OK\r\nX-Up: 1\r\nConnection: close\r\n\r\nhello0123456789abcdef");
    expect(client.ended).toBe(true);
    expect(client.terminated).toBe(false);
  });

  test("a de-chunked answer the upstream cuts, or breaks, resets the client: a clean close would pass for the whole body", () => {
    for (const cut of ["close", "garbage"] as const) {
      const { conn, client, open, ev } = setup();
      conn.onClientData(enc("GET / HTTP/1.0\r\n\r\n"));
      open();
      ev().onData(enc(`${CHUNKED}5\r\nhello\r\n`));
      if (cut === "close") ev().onClose();
      else ev().onData(enc("zz\r\n"));
      expect(client.text()).toEndWith("\r\n\r\nhello");
      expect(client.terminated).toBe(true);
      expect(client.ended).toBe(false);
    }
  });

  test("HEAD, 204 and 304 need no body handling: only the Transfer-Encoding field goes", () => {
    for (const [method, status] of [
      ["HEAD", "200 OK"],
      ["GET", "204 No Content"],
      ["GET", "304 Not Modified"],
    ] as const) {
      const { conn, client, open, ev } = setup();
      conn.onClientData(enc(`${method} / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n`));
      open();
      ev().onData(enc(`HTTP/1.1 ${status}\r\nTransfer-Encoding: chunked\r\nETag: "x"\r\n\r\n`));
      expect(client.text()).toBe(`HTTP/1.1 ${status}\r\nETag: "x"\r\nConnection: keep-alive\r\n\r\n`);
      expect(conn.state).toBe("head");
    }
  });

  test("a coding besides chunked cannot be undone for an HTTP/1.0 client: 502; an HTTP/1.1 client gets the chunks as sent", () => {
    const a = setup();
    a.conn.onClientData(enc("GET / HTTP/1.0\r\n\r\n"));
    a.open();
    a.ev().onData(enc("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"));
    expect(a.client.text()).toStartWith("HTTP/1.0 502 Bad Gateway\r\n");
    expect(a.client.text()).toContain("transfer coding an HTTP/1.0 client cannot read");

    const b = setup();
    b.conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    b.open();
    b.ev().onData(enc("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-T: 1\r\n\r\n"));
    expect(b.client.text()).toBe("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-T: 1\r\n\r\n");
  });
});

describe("ProxyConn after an upstream that failed before answering", () => {
  test("the 502 keeps the connection: two 200s follow on it", () => {
    const { conn, client, dials, open, ev, log } = setup();
    conn.onClientData(enc("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"));
    open();
    ev().onClose(); // the request was read, no byte of a response
    expect(client.text()).toBe(
      "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 74\r\n\r\nnsproxy: upstream http://127.0.0.1:9: connection closed before a response\n",
    );
    expect(client.ended).toBe(false);
    expect(conn.state).toBe("head");
    for (const path of ["/2", "/3"]) {
      conn.onClientData(enc(`GET ${path} HTTP/1.1\r\nHost: h\r\n\r\n`));
      if (dials.length === 2 && path === "/2") open(1);
      expect(dials.at(-1)!.sock.text()).toContain(`GET ${path} HTTP/1.1\r\n`);
      ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    }
    expect(dials.length).toBe(2); // no retry of /1: a fresh connection was dialled for /2 only
    expect(client.text().match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 502", "HTTP/1.1 200", "HTTP/1.1 200"]);
    expect(log.map((e) => [e.path, e.status])).toEqual([
      ["/1", 502],
      ["/2", 200],
      ["/3", 200],
    ]);
  });

  test("a pipelined request behind the failed one is served; a 504 and an invalid head keep the connection too", () => {
    const a = setup();
    a.conn.onClientData(enc("POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nabGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"));
    a.open();
    a.ev().onClose();
    a.open(1);
    expect(a.dials[1]!.sock.text()).toStartWith("GET /2 HTTP/1.1\r\n");
    a.ev().onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    expect(a.client.text().match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 502", "HTTP/1.1 200"]);
    expect(a.client.ended).toBe(false);

    const b = setup({ upstreamTimeoutMs: 1000 });
    b.conn.onClientData(enc("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    const up = b.open();
    b.tick(1500);
    expect(b.client.text()).toStartWith("HTTP/1.0 504 Gateway Timeout\r\n");
    expect(b.client.text()).toContain("\r\nConnection: keep-alive\r\n");
    expect(up.terminated).toBe(true); // a late answer is never read as the next request's
    expect(b.client.ended).toBe(false);

    const c = setup();
    c.conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    c.open();
    c.ev().onData(enc("HTTP/1.1 2OO OK\r\n\r\n"));
    expect(c.client.text()).toStartWith("HTTP/1.1 502 Bad Gateway\r\n");
    expect(c.client.ended).toBe(false);
  });

  test("a client that does not read its answers: the 502 that finds the last one still queued closes the connection", () => {
    const { conn, client, dials, open, ev } = setup();
    client.room = 100; // the first 502 (about 190 bytes) does not fit: the client is not reading
    conn.onClientData(enc("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n"));
    open();
    ev().onClose();
    expect(dials.length).toBe(2); // /1 answered (queued), /2 sent on
    open(1);
    ev().onClose();
    expect(dials.length).toBe(2); // /3 is never sent: the connection closes once the client takes what is queued
    expect(client.paused).toBe(true);
    client.room = Number.POSITIVE_INFINITY;
    conn.onClientDrain();
    expect(client.text().match(/502 Bad Gateway/g)?.length).toBe(2);
    expect(client.text().match(/\r\nConnection: close\r\n/g)?.length).toBe(1);
    expect(client.ended).toBe(true);
  });

  test("closed after the 502 when the client asked to close, half-closed, its body was not read whole, or the tenant drains", () => {
    const cases: [string, (x: ReturnType<typeof setup>) => void][] = [
      ["Connection: close", (x) => x.conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))],
      ["HTTP/1.0 without keep-alive", (x) => x.conn.onClientData(enc("GET / HTTP/1.0\r\n\r\n"))],
      [
        "half-closed",
        (x) => {
          x.conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
          x.conn.onClientEnd();
        },
      ],
      ["body not read whole", (x) => x.conn.onClientData(enc("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc"))],
      [
        "draining",
        (x) => {
          x.conn.onClientData(enc("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
          x.conn.drain();
        },
      ],
    ];
    for (const [name, start] of cases) {
      const x = setup();
      start(x);
      x.open();
      x.ev().onClose();
      expect({ name, reply: x.client.text().slice(0, 24), close: x.client.text().includes("\r\nConnection: close\r\n"), ended: x.client.ended }).toEqual({
        name,
        reply: expect.stringMatching(/^HTTP\/1\.[01] 502 Bad Gateway/),
        close: true,
        ended: true,
      });
    }
  });
});
