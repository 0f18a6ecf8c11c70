// TCP mode without sockets: fake client and upstream sides that record every call in order, a fake clock.
import { describe, expect, test } from "bun:test";
import { makeStamp } from "./rewrite.ts";
import { Stat } from "./stats.ts";
import { TcpConn } from "./tcp.ts";
import type { Duplex, Env, Route, UpstreamAddress, UpstreamEvents } from "./types.ts";

const enc = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));

/** A socket that records what the engine does to it; `onClose` lets it report its close inside end()/terminate() as Bun does. */
class FakeSock implements Duplex {
  /** Every call in order: "w:<bytes>", "shutdown", "end", "terminate", "pause", "resume". */
  calls: string[] = [];
  written: Uint8Array[] = [];
  /** How many bytes write() accepts before reporting backpressure (Infinity: all). */
  room = Number.POSITIVE_INFINITY;
  paused = false;
  onClose: (() => void) | undefined;
  write(data: Uint8Array): number {
    const n = Math.min(data.length, this.room);
    this.room -= n;
    this.written.push(data.slice(0, n));
    this.calls.push(`w:${Buffer.from(data.subarray(0, n)).toString("latin1")}`);
    return n;
  }
  shutdown() {
    this.calls.push("shutdown");
  }
  end() {
    this.calls.push("end");
    this.onClose?.();
  }
  terminate() {
    this.calls.push("terminate");
    this.onClose?.();
  }
  pause() {
    this.paused = true;
    this.calls.push("pause");
  }
  resume() {
    this.paused = false;
    this.calls.push("resume");
  }
  text() {
    return Buffer.concat(this.written).toString("latin1");
  }
  bytes() {
    return new Uint8Array(Buffer.concat(this.written));
  }
  /** Calls other than writes and pause/resume: how the socket was closed. */
  get fate() {
    return this.calls.filter((c) => c === "shutdown" || c === "end" || c === "terminate");
  }
}

function setup(opts: { prefix?: Uint8Array | (() => Uint8Array); syncDialError?: string; afterHandshake?: boolean } = {}) {
  let now = 0;
  const dials: { to: UpstreamAddress; events: UpstreamEvents; sock: FakeSock }[] = [];
  const closed: unknown[] = [];
  const env: Env = {
    limits: { requestTimeoutMs: 10_000, idleTimeoutMs: 60_000, connectTimeoutMs: 5_000, bodyTimeoutMs: 60_000, tunnelTimeoutMs: 3_600_000, maxHeaderBytes: 16384, maxHeaders: 100, maxTargetBytes: 8192 },
    dial: (to, events) => {
      dials.push({ to, events, sock: new FakeSock() });
      if (opts.syncDialError) events.onClose(opts.syncDialError);
    },
    now: () => now,
    closed: (c) => closed.push(c),
  };
  const route: Route = {
    tenant: "acme",
    stamp: makeStamp("X-Nsproxy-Tenant", "acme", {}, ""),
    upstream: { host: "127.0.0.1", port: 5432 },
    upstreamText: "tcp://127.0.0.1:5432",
    upstreamTimeoutMs: 30_000,
    stats: new Float64Array(Stat.COUNT),
  };
  const client = new FakeSock();
  const conn = new TcpConn(client, route, env, opts.prefix, opts.afterHandshake);
  // Like the runtime: a socket's close is reported to its owner, also from inside end()/terminate().
  client.onClose = () => conn.onClientClose();
  const ev = () => dials[0]!.events;
  const open = () => {
    const d = dials[0]!;
    d.sock.onClose = () => d.events.onClose();
    d.events.onOpen(d.sock);
    return d.sock;
  };
  return { conn, client, dials, ev, open, closed, st: route.stats, tick: (ms: number) => conn.sweep((now += ms)) };
}

describe("TcpConn", () => {
  test("afterHandshake: no dial until the TLS handshake is done; the prefix is made then", () => {
    let version = "";
    const { conn, dials, open, client, closed, st, tick } = setup({ prefix: () => enc(`PP(${version})|`), afterHandshake: true });
    conn.onClientData(enc("early"));
    expect(dials.length).toBe(0);
    version = "TLSv1.3";
    conn.onHandshake();
    expect(dials.length).toBe(1);
    expect(open().text()).toBe("PP(TLSv1.3)|early");
    // A client that never finishes its handshake is closed after request_timeout, counting no upstream failure.
    const stuck = setup({ afterHandshake: true });
    stuck.tick(9_000);
    expect(stuck.client.calls).not.toContain("terminate");
    stuck.tick(1_000);
    expect(stuck.client.calls).toContain("terminate");
    expect(stuck.dials.length).toBe(0);
    expect(stuck.st[Stat.UpstreamConnectFailures]).toBe(0);
    expect(stuck.closed.length).toBe(1);
    void client;
    void closed;
    void st;
    void tick;
  });

  test("dials at once, half-open, to the route's upstream", () => {
    const { conn, dials } = setup();
    expect(dials.length).toBe(1);
    expect(dials[0]!.to).toEqual({ host: "127.0.0.1", port: 5432, halfOpen: true });
    expect(conn.state).toBe("connecting");
  });

  test("the prefix goes first, then the client bytes that came before the upstream opened, in order, in one write", () => {
    const { conn, client, open } = setup({ prefix: enc("PROXY-HEADER|") });
    conn.onClientData(enc("a1"));
    conn.onClientData(enc("b2"));
    expect(client.paused).toBe(false);
    const up = open();
    expect(up.calls).toEqual(["w:PROXY-HEADER|a1b2"]);
    conn.onClientData(enc("c3"));
    expect(up.text()).toBe("PROXY-HEADER|a1b2c3");
    expect(conn.state).toBe("open");
  });

  test("a prefix given as a function is made when the upstream opens, once", () => {
    let made = 0;
    const { conn, open } = setup({ prefix: () => (made++, enc("HDR")) });
    conn.onClientData(enc("x"));
    expect(made).toBe(0);
    const up = open();
    expect(made).toBe(1);
    expect(up.text()).toBe("HDRx");
  });

  test("bytes pass both ways unchanged, every byte value, and are counted", () => {
    const { conn, client, ev, open, st } = setup();
    const up = open();
    const all = new Uint8Array(256).map((_, i) => i);
    const http = enc("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    conn.onClientData(all);
    conn.onClientData(http);
    ev().onData(http);
    ev().onData(all);
    expect(up.bytes()).toEqual(new Uint8Array([...all, ...http]));
    expect(client.bytes()).toEqual(new Uint8Array([...http, ...all]));
    expect(st[Stat.BytesIn]).toBe(256 + http.length);
    expect(st[Stat.BytesOut]).toBe(256 + http.length);
  });

  test("early client bytes are held up to 64 kB, then the client is paused; resumed once they are flushed", () => {
    const { conn, client, open } = setup();
    const chunk = (c: string) => enc(c.repeat(30_000));
    conn.onClientData(chunk("a"));
    conn.onClientData(chunk("b"));
    expect(client.paused).toBe(false);
    conn.onClientData(chunk("c"));
    expect(client.paused).toBe(true);
    const up = open();
    expect(up.text()).toBe("a".repeat(30_000) + "b".repeat(30_000) + "c".repeat(30_000));
    expect(client.paused).toBe(false);
  });

  test("upstream backpressure: the rest is queued, the client paused; drain writes it in order and resumes the client", () => {
    const { conn, client, ev, open } = setup();
    const up = open();
    up.room = 3;
    conn.onClientData(enc("0123456789"));
    expect(up.text()).toBe("012");
    expect(client.paused).toBe(true);
    conn.onClientData(enc("AB")); // already on its way when the pause came
    ev().onDrain(); // no room yet: nothing moves, still paused
    expect(up.text()).toBe("012");
    expect(client.paused).toBe(true);
    up.room = Number.POSITIVE_INFINITY;
    ev().onDrain();
    expect(up.text()).toBe("0123456789AB");
    expect(client.paused).toBe(false);
  });

  test("client backpressure: the rest is queued, the upstream paused; client drain writes it and resumes the upstream", () => {
    const { conn, client, ev, open } = setup();
    const up = open();
    client.room = 4;
    ev().onData(enc("response-bytes"));
    expect(client.text()).toBe("resp");
    expect(up.paused).toBe(true);
    client.room = Number.POSITIVE_INFINITY;
    conn.onClientDrain();
    expect(client.text()).toBe("response-bytes");
    expect(up.paused).toBe(false);
  });

  test("half-close, client first: FIN goes up after the queue is flushed; the upstream's bytes keep coming; its FIN ends it", () => {
    const { conn, client, ev, open, closed } = setup();
    const up = open();
    up.room = 2;
    conn.onClientData(enc("query"));
    conn.onClientEnd();
    expect(up.fate).toEqual([]); // "query" is not all written: no FIN yet
    up.room = Number.POSITIVE_INFINITY;
    ev().onDrain();
    expect(up.calls.filter((c) => c.startsWith("w:") || c === "shutdown")).toEqual(["w:qu", "w:ery", "shutdown"]);
    ev().onData(enc("result-1"));
    ev().onData(enc("result-2"));
    expect(client.text()).toBe("result-1result-2");
    expect(client.fate).toEqual([]);
    expect(conn.state).toBe("open");
    // After our FIN, Bun reports the upstream's FIN as a close.
    ev().onClose();
    expect(client.fate).toEqual(["shutdown", "end"]);
    expect(conn.state).toBe("closed");
    expect(closed).toEqual([conn]);
  });

  test("half-close, upstream first: FIN goes to the client after its queue; the client's bytes keep going up; its FIN ends it", () => {
    const { conn, client, ev, open, closed } = setup();
    const up = open();
    client.room = 3;
    ev().onData(enc("greeting"));
    ev().onEnd!();
    expect(client.fate).toEqual([]);
    client.room = Number.POSITIVE_INFINITY;
    conn.onClientDrain();
    expect(client.text()).toBe("greeting");
    expect(client.fate).toEqual(["shutdown"]);
    conn.onClientData(enc("late-request"));
    expect(up.text()).toBe("late-request");
    expect(conn.state).toBe("open");
    conn.onClientEnd();
    expect(up.fate).toEqual(["shutdown", "end"]);
    expect(conn.state).toBe("closed");
    expect(closed).toEqual([conn]);
  });

  test("the client's FIN before the upstream opens goes up after the prefix and the early bytes", () => {
    const { conn, ev, open, closed } = setup({ prefix: enc("P|") });
    conn.onClientData(enc("hello"));
    conn.onClientEnd();
    const up = open();
    expect(up.calls.filter((c) => c !== "pause" && c !== "resume")).toEqual(["w:P|hello", "shutdown"]);
    ev().onData(enc("bye"));
    ev().onEnd!();
    expect(conn.state).toBe("closed");
    expect(closed.length).toBe(1);
  });

  test("connect refused: the client is closed, the failure counted and described", () => {
    const { conn, client, ev, closed, st } = setup();
    conn.onClientData(enc("early"));
    ev().onClose("connection refused");
    ev().onClose("connection refused"); // Bun reports some failures twice
    expect(client.fate).toEqual(["end"]);
    expect(client.written.length).toBe(0);
    expect(st[Stat.UpstreamConnectFailures]).toBe(1);
    expect(conn.failure).toBe("upstream tcp://127.0.0.1:5432: connection refused");
    expect(closed).toEqual([conn]);
  });

  test("a failure reported inside dial() is acted on after the constructor returned", async () => {
    const { conn, client, closed, st } = setup({ syncDialError: "cannot connect (socket missing or unreachable)" });
    expect(closed).toEqual([]); // the caller has not registered the connection yet
    expect(conn.state).toBe("connecting");
    await Promise.resolve();
    expect(client.fate).toEqual(["end"]);
    expect(st[Stat.UpstreamConnectFailures]).toBe(1);
    expect(closed).toEqual([conn]);
  });

  test("connect timeout: the client is closed and counted; an upstream that opens later is cut", () => {
    const { conn, client, dials, tick, closed, st } = setup();
    tick(4_999);
    conn.onClientData(enc("x")); // client bytes do not extend the connect timeout
    expect(conn.state).toBe("connecting");
    tick(1);
    expect(conn.state).toBe("closed");
    expect(client.fate).toEqual(["end"]);
    expect(st[Stat.UpstreamConnectFailures]).toBe(1);
    expect(conn.failure).toBe("upstream tcp://127.0.0.1:5432: connect timed out after 5 s");
    const late = dials[0]!;
    late.events.onOpen(late.sock);
    expect(late.sock.fate).toEqual(["terminate"]);
    expect(late.sock.written.length).toBe(0);
    expect(closed).toEqual([conn]);
  });

  test("idle timeout: a byte either way restarts it; with none for idle_timeout both sides are closed", () => {
    const { conn, client, ev, open, tick, closed } = setup();
    const up = open();
    tick(59_000);
    conn.onClientData(enc("ping"));
    tick(59_000);
    ev().onData(enc("pong"));
    tick(59_999);
    expect(conn.state).toBe("open");
    tick(1);
    expect(conn.state).toBe("closed");
    expect(client.fate).toEqual(["end"]);
    expect(up.fate).toEqual(["end"]);
    expect(closed).toEqual([conn]);
  });

  test("drain() changes nothing: bytes keep flowing until destroy()", () => {
    const { conn, client, ev, open, closed } = setup();
    const up = open();
    conn.drain();
    conn.onClientData(enc("a"));
    ev().onData(enc("b"));
    expect(up.text()).toBe("a");
    expect(client.text()).toBe("b");
    conn.destroy();
    expect(client.fate).toEqual(["terminate"]);
    expect(up.fate).toEqual(["terminate"]);
    conn.onClientData(enc("c"));
    ev().onData(enc("d"));
    conn.destroy();
    expect(up.text()).toBe("a");
    expect(client.text()).toBe("b");
    expect(closed).toEqual([conn]);
  });

  test("destroy while connecting: the client is cut; the upstream is cut when it opens", () => {
    const { conn, client, dials, closed, st } = setup();
    conn.destroy();
    expect(client.fate).toEqual(["terminate"]);
    dials[0]!.events.onOpen(dials[0]!.sock);
    expect(dials[0]!.sock.fate).toEqual(["terminate"]);
    expect(st[Stat.UpstreamConnectFailures]).toBe(0);
    expect(closed).toEqual([conn]);
  });

  test("the upstream resets while the client still sends: what it sent reaches the client, then the client is closed", () => {
    const { conn, client, ev, open, closed } = setup();
    const up = open();
    client.room = 2;
    ev().onData(enc("last words"));
    ev().onClose(); // no FIN before: a reset
    expect(client.paused).toBe(true); // its bytes have nowhere to go
    conn.onClientData(enc("dropped"));
    expect(up.text()).toBe("");
    expect(conn.state).toBe("open");
    client.room = Number.POSITIVE_INFINITY;
    conn.onClientDrain();
    expect(client.text()).toBe("last words");
    expect(client.fate).toEqual(["shutdown", "end"]);
    expect(closed).toEqual([conn]);
  });

  test("the client resets: what it sent still goes up, then the upstream is closed", () => {
    const { conn, client, ev, open, closed, st } = setup();
    const up = open();
    up.room = 1;
    conn.onClientData(enc("abc"));
    ev().onData(enc("to nobody"));
    conn.onClientClose();
    expect(client.written.length).toBe(1); // "to nobody" was written before the reset
    ev().onData(enc("more"));
    expect(client.text()).toBe("to nobody");
    expect(st[Stat.BytesOut]).toBe("to nobody".length); // what could not be sent is not counted
    expect(up.paused).toBe(true);
    up.room = Number.POSITIVE_INFINITY;
    ev().onDrain();
    expect(up.text()).toBe("abc");
    expect(up.fate).toEqual(["shutdown", "end"]);
    expect(closed).toEqual([conn]);
  });

  test("a failed TLS handshake is counted and cuts the connection", () => {
    const { conn, client, closed, st } = setup();
    conn.onHandshakeFailed();
    expect(st[Stat.TlsHandshakeFailures]).toBe(1);
    expect(client.fate).toEqual(["terminate"]);
    expect(closed).toEqual([conn]);
  });

  test("closed() is called once whichever way it ends, also when sockets report their close from inside end()", () => {
    const endings: ((s: ReturnType<typeof setup>) => void)[] = [
      (s) => (s.open(), s.conn.onClientEnd(), s.ev().onEnd!()),
      (s) => (s.open(), s.ev().onEnd!(), s.conn.onClientEnd(), s.conn.onClientClose(), s.ev().onClose()),
      (s) => (s.open(), s.conn.onClientClose(), s.conn.onClientClose()),
      (s) => (s.open(), s.ev().onClose("ECONNRESET"), s.ev().onClose()),
      (s) => (s.open(), s.conn.destroy(), s.conn.destroy(), s.conn.onClientClose()),
      (s) => (s.open(), s.tick(60_000), s.tick(60_000)),
      (s) => (s.tick(5_000), s.ev().onClose("late")),
    ];
    for (const end of endings) {
      const s = setup();
      end(s);
      expect(s.conn.state).toBe("closed");
      expect(s.closed).toEqual([s.conn]);
    }
  });
});
