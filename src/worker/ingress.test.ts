// The ingress table of one worker, without sockets: routes by Host and SNI, 404/503, and what a replaced entry leaves behind.
import { describe, expect, test } from "bun:test";
import { Stat } from "../engine/stats.ts";
import type { Env, Route } from "../engine/types.ts";
import { Ingress, type IngressTenant } from "./ingress.ts";
import { SharedCounts, sharedCountsBuffer } from "./shared-counts.ts";

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
