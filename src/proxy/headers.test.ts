// Unit tests for the header rules at the trust boundary: hop-by-hop removal and the stamp a tenant cannot forge.
import { describe, expect, test } from "bun:test";
import type { TenantSpec } from "../config/types.ts";
import { stripHopByHop, upstreamHeaders } from "./headers.ts";

const spec: TenantSpec = {
  name: "acme",
  netns: "/run/netns/acme",
  listen: [{ host: "127.0.0.1", port: 8080, text: "127.0.0.1:8080" }],
  upstream: { origin: "http://127.0.0.1:9000", prefix: "", text: "http://127.0.0.1:9000" },
  tenantHeader: "X-Nsproxy-Tenant",
  headers: { "X-Env": "prod", "X-Region": "eu-1" },
  upstreamTimeoutMs: 30_000,
};

const client = { address: "10.0.0.7" };

/** Headers from [name, value] pairs, so a test can send one name several times in several spellings. */
const from = (pairs: [string, string][]) => new Headers(pairs);

describe("stripHopByHop", () => {
  test("removes the fields the Connection header names, in any case and across several Connection headers", () => {
    const h = from([
      ["Connection", "X-Secret, keep-alive"],
      ["connection", " X-Other ,close"],
      ["x-secret", "1"],
      ["X-OTHER", "2"],
      ["X-Kept", "3"],
    ]);
    stripHopByHop(h);
    expect(h.has("x-secret")).toBe(false);
    expect(h.has("x-other")).toBe(false);
    expect(h.has("connection")).toBe(false);
    expect(h.get("x-kept")).toBe("3");
  });

  test("removes the RFC 9110 hop-by-hop fields", () => {
    const h = from([
      ["Keep-Alive", "timeout=5"],
      ["TE", "trailers"],
      ["Trailer", "X-Checksum"],
      ["Transfer-Encoding", "chunked"],
      ["Upgrade", "websocket"],
      ["Content-Type", "text/plain"],
    ]);
    stripHopByHop(h);
    expect([...h.keys()]).toEqual(["content-type"]);
  });

  test("removes every Proxy-* field and nothing that merely contains 'proxy'", () => {
    const h = from([
      ["Proxy-Authorization", "Basic eDp5"],
      ["proxy-connection", "keep-alive"],
      ["Proxy-Anything", "1"],
      ["X-Proxy-Id", "kept"],
      ["Authorization", "Bearer t"],
    ]);
    stripHopByHop(h);
    expect([...h.keys()].sort()).toEqual(["authorization", "x-proxy-id"]);
  });

  test("ignores Connection entries that are not header names", () => {
    const h = from([
      ["Connection", 'a b, "quoted", , x-gone'],
      ["x-gone", "1"],
      ["a", "kept"],
    ]);
    stripHopByHop(h);
    expect(h.has("x-gone")).toBe(false);
    expect(h.get("a")).toBe("kept");
  });
});

describe("upstreamHeaders", () => {
  test("the tenant header carries the tenant name alone, whatever the client sent", () => {
    const h = upstreamHeaders(
      from([
        ["X-Nsproxy-Tenant", "globex"],
        ["x-nsproxy-tenant", "root"],
        ["X-NSPROXY-TENANT", "acme, globex"],
      ]),
      spec,
      client,
    );
    expect(h.get("x-nsproxy-tenant")).toBe("acme");
    expect([...h.entries()].filter(([k]) => k === "x-nsproxy-tenant")).toEqual([["x-nsproxy-tenant", "acme"]]);
  });

  test("a custom tenant header is replaced too, and the default one is then left alone", () => {
    const custom = { ...spec, tenantHeader: "X-Tenant" };
    const h = upstreamHeaders(from([["x-tenant", "evil"], ["X-Nsproxy-Tenant", "client-value"]]), custom, client);
    expect(h.get("x-tenant")).toBe("acme");
    expect(h.get("x-nsproxy-tenant")).toBe("client-value");
  });

  test("static headers override every client copy", () => {
    const h = upstreamHeaders(from([["x-env", "dev"], ["X-ENV", "staging"], ["X-Region", "us"]]), spec, client);
    expect(h.get("x-env")).toBe("prod");
    expect(h.get("x-region")).toBe("eu-1");
  });

  test("a client cannot drop the stamp or the static headers by naming them in Connection", () => {
    const h = upstreamHeaders(from([["Connection", "X-Nsproxy-Tenant, X-Env, X-Forwarded-For"]]), spec, client);
    expect(h.get("x-nsproxy-tenant")).toBe("acme");
    expect(h.get("x-env")).toBe("prod");
    expect(h.get("x-forwarded-for")).toBe("10.0.0.7");
  });

  test("X-Forwarded-For, -Proto and -Host are the proxy's, not the client's", () => {
    const h = upstreamHeaders(
      from([
        ["Host", "api.acme.internal:8080"],
        ["X-Forwarded-For", "1.2.3.4"],
        ["X-Forwarded-Proto", "https"],
        ["X-Forwarded-Host", "bank.example"],
      ]),
      spec,
      client,
    );
    expect(h.get("x-forwarded-for")).toBe("10.0.0.7");
    expect(h.get("x-forwarded-proto")).toBe("http");
    expect(h.get("x-forwarded-host")).toBe("api.acme.internal:8080");
  });

  test("without a Host, a client's X-Forwarded-Host is dropped rather than passed on", () => {
    const h = upstreamHeaders(from([["X-Forwarded-Host", "bank.example"]]), spec, client);
    expect(h.has("x-forwarded-host")).toBe(false);
  });

  test("Forwarded is removed; Host and ordinary headers are kept", () => {
    const h = upstreamHeaders(
      from([
        ["Forwarded", "for=1.2.3.4;proto=https"],
        ["Host", "api.acme.internal"],
        ["Accept", "application/json"],
        ["Cookie", "a=1"],
      ]),
      spec,
      client,
    );
    expect(h.has("forwarded")).toBe(false);
    expect(h.get("host")).toBe("api.acme.internal");
    expect(h.get("accept")).toBe("application/json");
    expect(h.get("cookie")).toBe("a=1");
  });

  test("hop-by-hop and Proxy-* request headers do not reach the upstream", () => {
    const h = upstreamHeaders(
      from([
        ["Connection", "keep-alive, X-Hop"],
        ["X-Hop", "1"],
        ["Keep-Alive", "timeout=5"],
        ["TE", "trailers"],
        ["Upgrade", "h2c"],
        ["Transfer-Encoding", "chunked"],
        ["Proxy-Authorization", "Basic eDp5"],
      ]),
      spec,
      client,
    );
    for (const name of ["connection", "x-hop", "keep-alive", "te", "upgrade", "transfer-encoding", "proxy-authorization"]) {
      expect([name, h.has(name)]).toEqual([name, false]);
    }
  });

  test("works in place: the request's own Headers become the upstream's (no copy on the hot path)", () => {
    const incoming = from([["X-Nsproxy-Tenant", "globex"], ["Connection", "close"]]);
    expect(upstreamHeaders(incoming, spec, client)).toBe(incoming);
    expect(incoming.get("x-nsproxy-tenant")).toBe(spec.name);
    expect(incoming.get("connection")).toBeNull();
  });
});

describe("stripHopByHop on the upstream's response", () => {
  test("hop-by-hop fields of the upstream's response are removed, the rest kept", () => {
    const upstream = from([
      ["Connection", "keep-alive, X-Upstream-Hop"],
      ["X-Upstream-Hop", "1"],
      ["Keep-Alive", "timeout=5"],
      ["Transfer-Encoding", "chunked"],
      ["Proxy-Authenticate", "Basic"],
      ["Content-Type", "application/json"],
      ["Content-Encoding", "gzip"],
      ["Location", "/elsewhere"],
    ]);
    stripHopByHop(upstream);
    expect([...upstream.keys()].sort()).toEqual(["content-encoding", "content-type", "location"]);
  });

  test("several Set-Cookie headers stay separate", () => {
    const upstream = new Headers();
    upstream.append("Set-Cookie", "a=1; Path=/");
    upstream.append("Set-Cookie", "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT");
    stripHopByHop(upstream);
    expect(upstream.getSetCookie()).toEqual(["a=1; Path=/", "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT"]);
  });
});

test("Connection: host leaves Host in place", () => {
  const h = new Headers({ host: "api.acme.internal", connection: "host, x-drop", "x-drop": "1" });
  stripHopByHop(h);
  expect(h.get("host")).toBe("api.acme.internal");
  expect(h.get("x-drop")).toBeNull();
});
