// An sni:// connection without sockets: the hello gathered, the route picked by its server name, refusals, timeouts.
import { describe, expect, test } from "bun:test";
import { makeStamp } from "./rewrite.ts";
import { SniConn, type SniRoutes } from "./sni-conn.ts";
import { Stat } from "./stats.ts";
import type { Duplex, Env, Route, UpstreamAddress, UpstreamEvents } from "./types.ts";

const FIXTURES = ((await Bun.file(new URL("./testdata/client-hellos.json", import.meta.url)).json()) as { hellos: { label: string; hex: string }[] }).hellos;
/** curl's TLS 1.3 ClientHello naming x.example. */
const HELLO = new Uint8Array(Buffer.from(FIXTURES.find((f) => f.label === "curl TLS 1.3")!.hex, "hex"));

class FakeSock implements Duplex {
  calls: string[] = [];
  written: Uint8Array[] = [];
  write(data: Uint8Array): number {
    this.written.push(data.slice());
    this.calls.push("write");
    return data.length;
  }
  shutdown() {
    this.calls.push("shutdown");
  }
  end() {
    this.calls.push("end");
  }
  terminate() {
    this.calls.push("terminate");
  }
  pause() {
    this.calls.push("pause");
  }
  resume() {
    this.calls.push("resume");
  }
  bytes() {
    return new Uint8Array(Buffer.concat(this.written));
  }
}

function setup(routeTls: (name: string) => Route | string = () => route) {
  let now = 0;
  const dials: { to: UpstreamAddress; events: UpstreamEvents }[] = [];
  const env: Env = {
    limits: { requestTimeoutMs: 10_000, idleTimeoutMs: 60_000, connectTimeoutMs: 5_000, bodyTimeoutMs: 60_000, tunnelTimeoutMs: 3_600_000, maxHeaderBytes: 16384, maxHeaders: 100, maxTargetBytes: 8192 },
    dial: (to, events) => dials.push({ to, events }),
    now: () => now,
  };
  const refused: string[] = [];
  const released: SniConn[] = [];
  const asked: string[] = [];
  const routes: SniRoutes = {
    routeTls: (name) => (asked.push(name), routeTls(name)),
    refusedTls: (why) => refused.push(why),
    release: (c) => released.push(c),
  };
  const client = new FakeSock();
  const conn = new SniConn(client, routes, env);
  return { conn, client, dials, refused, released, asked, tick: (ms: number) => (now += ms) };
}

const route: Route = {
  tenant: "acme",
  stamp: makeStamp("X-Nsproxy-Tenant", "acme", {}, ""),
  upstream: { host: "127.0.0.1", port: 8443, nsFd: 7, halfOpen: true },
  upstreamText: "tenant acme backend 127.0.0.1:8443",
  upstreamTimeoutMs: 30_000,
  stats: new Float64Array(Stat.COUNT),
  direction: "ingress",
};

describe("SniConn", () => {
  test("a hello in pieces is routed by its server name; the tenant's service gets every hello byte first", () => {
    const { conn, client, dials, asked, refused } = setup();
    conn.onClientData(HELLO.subarray(0, 7));
    conn.onClientData(HELLO.subarray(7, 100));
    expect(dials).toHaveLength(0);
    expect(conn.state).toBe("hello");
    conn.onClientData(HELLO.subarray(100));
    expect(asked).toEqual(["x.example"]);
    expect(dials.map((d) => d.to)).toEqual([route.upstream]);
    expect(conn.state).toBe("connecting");
    const up = new FakeSock();
    dials[0]!.events.onOpen(up);
    conn.onClientData(new Uint8Array([1, 2, 3]));
    expect(up.bytes()).toEqual(new Uint8Array([...HELLO, 1, 2, 3]));
    dials[0]!.events.onData(new Uint8Array([9]));
    expect(client.bytes()).toEqual(new Uint8Array([9]));
    expect(refused).toEqual([]);
  });

  test("no tenant for the name: refused with the reason, the client cut, released once", () => {
    const { conn, client, dials, refused, released } = setup(() => 'no tenant for server name "x.example"');
    conn.onClientData(HELLO);
    expect(refused).toEqual(['no tenant for server name "x.example"']);
    expect(client.calls).toEqual(["terminate"]);
    expect(dials).toHaveLength(0);
    conn.onClientClose();
    expect(released).toEqual([conn]);
    expect(conn.state).toBe("closed");
  });

  test("not TLS: the parser's reason is what the owner logs", () => {
    const { conn, refused, released } = setup();
    conn.onClientData(new Uint8Array(Buffer.from("GET / HTTP/1.1\r\n")));
    expect(refused).toEqual(['not a TLS ClientHello: first byte 0x47 ("G": plain text, HTTP on a TLS listener?) is not a TLS handshake record (0x16)']);
    expect(released).toHaveLength(1);
  });

  test("a hello not complete within request_timeout is refused; a FIN before it is complete closes", () => {
    const a = setup();
    a.conn.onClientData(HELLO.subarray(0, 50));
    a.tick(9_999);
    a.conn.sweep(9_999);
    expect(a.refused).toEqual([]);
    a.conn.sweep(10_000);
    expect(a.refused).toEqual(["no complete ClientHello within request_timeout"]);
    expect(a.client.calls).toEqual(["terminate"]);

    const b = setup();
    b.conn.onClientData(HELLO.subarray(0, 50));
    b.conn.onClientEnd();
    expect(b.client.calls).toEqual(["terminate"]);
    expect(b.released).toHaveLength(1);
    expect(b.refused).toEqual([]);
  });

  test("drained (tenant or daemon stopping) before routing: closed at once", () => {
    const { conn, client, released } = setup();
    conn.drain();
    expect(client.calls).toEqual(["terminate"]);
    expect(released).toEqual([conn]);
  });
});
