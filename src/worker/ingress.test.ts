// The ingress table of one worker, without sockets: routes by Host and SNI, 404/503, and what a replaced entry leaves behind.
import { describe, expect, test } from "bun:test";
import { Stat, W_FD_REFUSED, W_INGRESS_FD_REFUSED, W_INGRESS_UNROUTED, WORKER_HEADER } from "../engine/stats.ts";
import type { Duplex, Env, Route } from "../engine/types.ts";
import { Ingress, type IngressTenant } from "./ingress.ts";
import { FD_RESERVE, SharedCounts, sharedCountsBuffer } from "./shared-counts.ts";

function setup() {
  const warned: string[] = [];
  const env: Env = {
    limits: { requestTimeoutMs: 10_000, idleTimeoutMs: 60_000, connectTimeoutMs: 5_000, bodyTimeoutMs: 60_000, tunnelTimeoutMs: 3_600_000, maxHeaderBytes: 16384, maxHeaders: 100, maxTargetBytes: 8192 },
    dial: () => {},
    now: () => 0,
  };
  const ingress = new Ingress(env, new SharedCounts(sharedCountsBuffer(20_000)), { warn: (_k, m) => warned.push(m) }, () => new Float64Array(Stat.COUNT));
  const tenant = (name: string, extra: Partial<IngressTenant> = {}): IngressTenant => ({
    name,
    netns: `/run/netns/${name}`,
    hosts: [`${name}.example`, `*.${name}.example`],
    backend: { host: "127.0.0.1", port: 3000, text: "127.0.0.1:3000" },
    nsFd: 7,
    slot: 0,
    upstreamTimeoutMs: 30_000,
    maxConnections: 1000,
    ...extra,
  });
  return { ingress, tenant, warned };
}

const isRoute = (r: unknown): r is Route => typeof r === "object" && r !== null && "upstream" in r;

describe("Ingress routing table", () => {
  test("Host picks the tenant's route (exact, wildcard, port and case ignored); unknown hosts are 404 and reported", () => {
    const { ingress, tenant, warned } = setup();
    ingress.set(tenant("acme"));
    ingress.set(tenant("globex", { nsFd: 9 }));
    const a = ingress.routeHttp("ACME.example:8080");
    expect(isRoute(a) && a.tenant).toBe("acme");
    expect(isRoute(a) && a.upstream).toEqual({ host: "127.0.0.1", port: 3000, nsFd: 7 });
    expect(isRoute(a) && a.direction).toBe("ingress");
    expect(isRoute(a) && a.upstreamText).toBe("tenant acme backend 127.0.0.1:3000 (netns /run/netns/acme)");
    const g = ingress.routeHttp("api.eu.globex.example");
    expect(isRoute(g) && g.upstream.nsFd).toBe(9);
    expect(ingress.routeHttp("initech.example")).toEqual({ status: 404, reason: "no tenant serves host initech.example" });
    expect(ingress.routeHttp("")).toEqual({ status: 404, reason: "no Host in the request" });
    // Each is reported to the worker's owner under one kind, which it rate-limits (one line per 10 s).
    expect(warned.map((w) => w.split(" (")[0])).toEqual(['ingress: no tenant for Host "initech.example"', 'ingress: no tenant for Host ""']);
  });

  test("a tenant whose namespace is gone answers 503 naming why; back, it routes again", () => {
    const { ingress, tenant } = setup();
    ingress.set(tenant("acme", { nsFd: -1, down: "namespace /run/netns/acme is gone" }));
    expect(ingress.routeHttp("acme.example")).toEqual({ status: 503, reason: "tenant acme: namespace /run/netns/acme is gone" });
    expect(ingress.routeTls("acme.example")).toBe("tenant acme: namespace /run/netns/acme is gone");
    ingress.set(tenant("acme", { nsFd: 11 }));
    const r = ingress.routeHttp("acme.example");
    expect(isRoute(r) && r.upstream.nsFd).toBe(11);
  });

  test("a replaced or dropped entry's routes can dial no more (its fd number may come back for another namespace)", () => {
    const { ingress, tenant } = setup();
    ingress.set(tenant("acme", { nsFd: 7, tlsBackend: { host: "127.0.0.1", port: 443, text: "127.0.0.1:443" } }));
    const before = ingress.routeHttp("acme.example") as Route;
    const beforeTls = ingress.routeTls("acme.example") as Route;
    expect(beforeTls.upstream).toEqual({ host: "127.0.0.1", port: 443, nsFd: 7, halfOpen: true });
    ingress.set(tenant("acme", { nsFd: 8 }));
    expect(before.upstream.nsFd).toBe(-1);
    expect(beforeTls.upstream.nsFd).toBe(-1);
    const after = ingress.routeHttp("acme.example") as Route;
    expect(after.upstream.nsFd).toBe(8);
    // No TLS backend any more: SNI names the reason.
    expect(ingress.routeTls("acme.example")).toBe("tenant acme has no ingress_tls_backend");
    ingress.drop("acme");
    expect(after.upstream.nsFd).toBe(-1);
    expect(ingress.routeHttp("acme.example")).toMatchObject({ status: 404 });
  });

  test("a host moving between two tenants in one reload: the newer claim wins, the other's own update follows", () => {
    const { ingress, tenant } = setup();
    ingress.set(tenant("a", { hosts: ["shared.example", "a.example"] }));
    ingress.set(tenant("b", { hosts: ["shared.example"] }));
    expect((ingress.routeHttp("shared.example") as Route).tenant).toBe("b");
    ingress.set(tenant("a", { hosts: ["a.example"] }));
    expect((ingress.routeHttp("a.example") as Route).tenant).toBe("a");
    expect((ingress.routeHttp("shared.example") as Route).tenant).toBe("b");
  });
});

/** A client socket that keeps what nsproxy wrote and whether it closed it. */
class FakeSock implements Duplex {
  out = "";
  closed = false;
  write(data: Uint8Array): number {
    this.out += Buffer.from(data).toString("latin1");
    return data.length;
  }
  end() {
    this.closed = true;
  }
  terminate() {
    this.closed = true;
  }
  pause() {}
  resume() {}
}

const PEER = { remoteAddress: "127.0.0.1", remotePort: 40000, localAddress: "127.0.0.1", localPort: 80, tls: false };
const HELLO_FIXTURES = ((await Bun.file(new URL("../engine/testdata/client-hellos.json", import.meta.url)).json()) as { hellos: { label: string; hex: string }[] }).hellos;
/** curl's TLS 1.3 ClientHello naming x.example. */
const HELLO = new Uint8Array(Buffer.from(HELLO_FIXTURES.find((f) => f.label === "curl TLS 1.3")!.hex, "hex"));

describe("Ingress connection caps", () => {
  function live(fdLimit = 20_000) {
    const warned: string[] = [];
    const counts = new SharedCounts(sharedCountsBuffer(fdLimit));
    counts.splitBudget(true);
    const stats = new Float64Array(Stat.COUNT);
    const workerStats = new Float64Array(WORKER_HEADER);
    let ingress: Ingress;
    const env: Env = {
      limits: { requestTimeoutMs: 10_000, idleTimeoutMs: 60_000, connectTimeoutMs: 5_000, bodyTimeoutMs: 60_000, tunnelTimeoutMs: 3_600_000, maxHeaderBytes: 16384, maxHeaders: 100, maxTargetBytes: 8192 },
      dial: () => {}, // the backend never answers: each routed request holds its connection
      now: () => 0,
      closed: (c) => ingress.release(c as never),
      workerStats,
    };
    ingress = new Ingress(env, counts, { warn: (_k, m) => warned.push(m) }, () => stats);
    const base = { netns: "/run/netns/x", backend: { host: "127.0.0.1", port: 3000, text: "127.0.0.1:3000" }, nsFd: 7, upstreamTimeoutMs: 30_000 };
    ingress.set({ ...base, name: "acme", hosts: ["acme.example"], slot: 1, maxConnections: 2, tlsBackend: { host: "127.0.0.1", port: 443, text: "127.0.0.1:443" } });
    ingress.set({ ...base, name: "x", hosts: ["x.example"], slot: 2, maxConnections: 1, tlsBackend: { host: "127.0.0.1", port: 443, text: "127.0.0.1:443" } });
    ingress.set({ ...base, name: "globex", hosts: ["globex.example"], slot: 3, maxConnections: 1000 });
    const request = (host: string) => {
      const sock = new FakeSock();
      const conn = ingress.httpHooks.accept(sock, PEER);
      conn?.onClientData(new TextEncoder().encode(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`));
      return { sock, conn };
    };
    return { ingress, counts, stats, workerStats, warned, request };
  }

  test("ingress_max_connections: a tenant's third routed connection gets 503 naming the cap; others are served; a closed one makes room", () => {
    const { counts, stats, warned, request } = live();
    const [a1, a2, a3] = [request("acme.example"), request("acme.example"), request("acme.example")];
    expect([a1.sock.out, a2.sock.out]).toEqual(["", ""]);
    expect(a3.sock.out).toStartWith("HTTP/1.1 503 ");
    expect(a3.sock.out).toContain("tenant acme: ingress_max_connections (2) reached");
    expect(stats[Stat.IngressRefusedCap]).toBe(1);
    expect(warned.some((w) => w.includes("ingress_max_connections (2) reached"))).toBe(true);
    expect(counts.open(1, "ingress")).toBe(2);
    expect(request("globex.example").sock.out).toBe("");
    a1.conn!.onClientClose();
    expect(counts.open(1, "ingress")).toBe(1);
    expect(request("acme.example").sock.out).toBe("");
    expect(counts.ingressConnections()).toBe(3); // a1 closed, a3 refused
  });

  test("silent connections count against no tenant but against ingress's share: past it they are refused at accept, egress keeps its part", () => {
    const { ingress, counts, workerStats } = live(FD_RESERVE + 40);
    expect(counts.shareOf("ingress")).toBe(20);
    const socks = Array.from({ length: 11 }, () => new FakeSock());
    const conns = socks.map((s) => ingress.httpHooks.accept(s, PEER));
    expect(conns.filter(Boolean).length).toBe(10);
    expect(socks[10]!.closed).toBe(true);
    expect(counts.ingressConnections()).toBe(10);
    expect([1, 2, 3].map((slot) => counts.open(slot, "ingress"))).toEqual([0, 0, 0]);
    expect([workerStats[W_FD_REFUSED], workerStats[W_INGRESS_FD_REFUSED]]).toEqual([1, 1]);
    // The flood holds all ingress may: an egress connection still gets its two descriptors.
    expect(counts.reserveFds(2, "egress")).toBe(true);
    conns[0]!.onClientClose();
    expect(counts.ingressConnections()).toBe(9);
    expect(ingress.httpHooks.accept(new FakeSock(), PEER)).toBeDefined();
  });

  test("sni: a connection over its tenant's cap is closed and counted there, not as unrouted", () => {
    const { ingress, counts, stats, workerStats } = live();
    const first = new FakeSock();
    ingress.sniHooks.accept(first, PEER)!.onClientData(HELLO);
    expect(first.closed).toBe(false);
    expect(counts.open(2, "ingress")).toBe(1);
    const second = new FakeSock();
    ingress.sniHooks.accept(second, PEER)!.onClientData(HELLO);
    expect(second.closed).toBe(true);
    expect(stats[Stat.IngressRefusedCap]).toBe(1);
    expect(workerStats[W_INGRESS_UNROUTED]).toBe(0);
  });
});
