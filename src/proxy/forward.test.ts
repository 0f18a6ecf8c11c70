// Route logic of the per-tenant proxy app, without a listener: app.request() against real upstreams on loopback.
import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync, gunzipSync } from "node:zlib";
import type { TenantSpec, Upstream } from "../config/types.ts";
import type { AccessEntry, AccessSink } from "./access-log.ts";
import { createTenantApp } from "./forward.ts";

/** What the upstream saw of one request. */
interface Seen {
  method: string;
  path: string;
  headers: Record<string, string>;
  tenantCopies: string[];
  body: string;
}

const GZIPPED = gzipSync(Buffer.from("hello, compressed world\n".repeat(20)));

/** One handler for both upstreams: a few fixed routes, else an echo of what arrived. */
/** Methods the upstream received, in order, for requests whose answer has no body to carry them (HEAD). */
const methods: string[] = [];

async function handle(req: Request): Promise<Response> {
  const url = new URL(req.url);
  methods.push(req.method);
  switch (url.pathname) {
    case "/v1/slow":
    case "/slow":
      await Bun.sleep(3000);
      return new Response("too late\n");
    case "/gzip":
      return new Response(GZIPPED, { headers: { "content-type": "text/plain", "content-encoding": "gzip" } });
    case "/redirect":
      return new Response(null, { status: 302, headers: { location: "http://127.0.0.1:1/elsewhere" } });
    case "/hop":
      return new Response("hop\n", {
        headers: {
          connection: "keep-alive, X-Upstream-Secret",
          "x-upstream-secret": "s3cret",
          "keep-alive": "timeout=5",
          "proxy-authenticate": "Basic",
          "x-kept": "yes",
        },
      });
    case "/cookies": {
      const h = new Headers();
      h.append("set-cookie", "a=1; Path=/");
      h.append("set-cookie", "b=2; Path=/");
      return new Response("cookies\n", { headers: h });
    }
  }
  const seen: Seen = {
    method: req.method,
    path: url.pathname + url.search,
    headers: Object.fromEntries(req.headers),
    tenantCopies: req.headers.get("x-nsproxy-tenant")?.split(",").map((s) => s.trim()) ?? [],
    body: await req.text(),
  };
  return Response.json(seen, { status: url.pathname.endsWith("/created") ? 201 : 200 });
}

const tcp = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: handle });
const dir = mkdtempSync(join(tmpdir(), "nsproxy-forward-"));
const socketPath = join(dir, "up.sock");
const unix = Bun.serve({ unix: socketPath, fetch: handle });

afterAll(() => {
  tcp.stop(true);
  unix.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

function tenant(upstream: Upstream, over: Partial<TenantSpec> = {}): TenantSpec {
  return {
    name: "acme",
    netns: "/run/netns/acme",
    listen: [{ host: "127.0.0.1", port: 8080, text: "127.0.0.1:8080" }],
    upstream,
    tenantHeader: "X-Nsproxy-Tenant",
    headers: { "X-Env": "prod" },
    upstreamTimeoutMs: 10_000,
    ...over,
  };
}

const httpUpstream = (prefix = ""): Upstream => ({
  origin: `http://127.0.0.1:${tcp.port}`,
  prefix,
  text: `http://127.0.0.1:${tcp.port}${prefix}`,
});

/** A port nothing listens on: bound once to learn a free number, then closed. */
async function refusedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** An access sink that keeps its entries. */
function recorder(): AccessSink & { entries: AccessEntry[] } {
  const entries: AccessEntry[] = [];
  return Object.assign((e: AccessEntry) => void entries.push(e), { entries, flush() {} });
}

const env = { clientAddress: "10.0.0.7" };

describe("createTenantApp: forwarding to an http upstream", () => {
  let access: ReturnType<typeof recorder>;
  beforeEach(() => {
    access = recorder();
  });

  test("joins the prefix and the path, keeps the query, stamps the tenant", async () => {
    const app = createTenantApp(tenant(httpUpstream("/api/v2")), access);
    const res = await app.request("/users/7?fields=name&x=%2F", { headers: { "X-Nsproxy-Tenant": "globex" } }, env);
    expect(res.status).toBe(200);
    const seen = (await res.json()) as Seen;
    expect(seen.path).toBe("/api/v2/users/7?fields=name&x=%2F");
    expect(seen.tenantCopies).toEqual(["acme"]);
    expect(seen.headers["x-env"]).toBe("prod");
    expect(seen.headers["x-forwarded-for"]).toBe("10.0.0.7");
    expect(seen.headers["x-forwarded-proto"]).toBe("http");
  });

  test("without a prefix the path goes through as is, root included", async () => {
    const app = createTenantApp(tenant(httpUpstream()));
    expect(((await (await app.request("/a/b/?q", {}, env)).json()) as Seen).path).toBe("/a/b/?q");
    expect(((await (await app.request("/", {}, env)).json()) as Seen).path).toBe("/");
  });

  test("a prefix and the root path make the prefix plus a slash", async () => {
    const app = createTenantApp(tenant(httpUpstream("/api")));
    expect(((await (await app.request("/?x=1", {}, env)).json()) as Seen).path).toBe("/api/?x=1");
  });

  test("forwards the method and the body, and the upstream's status", async () => {
    const app = createTenantApp(tenant(httpUpstream("/v1")), access);
    const body = JSON.stringify({ name: "widget", n: 3 });
    for (const method of ["POST", "PUT", "PATCH", "DELETE"]) {
      const res = await app.request("/items/created", { method, body, headers: { "content-type": "application/json" } }, env);
      expect(res.status).toBe(201);
      const seen = (await res.json()) as Seen;
      expect(seen.method).toBe(method);
      expect(seen.body).toBe(body);
      expect(seen.headers["content-type"]).toBe("application/json");
    }
  });

  test("Host stays the client's; X-Forwarded-Host says so too", async () => {
    const app = createTenantApp(tenant(httpUpstream()));
    const res = await app.request("/h", { headers: { host: "api.acme.internal:8080" } }, env);
    const seen = (await res.json()) as Seen;
    expect(seen.headers.host).toBe("api.acme.internal:8080");
    expect(seen.headers["x-forwarded-host"]).toBe("api.acme.internal:8080");
  });

  test("client hop-by-hop, Proxy-* and Forwarded headers do not reach the upstream", async () => {
    const app = createTenantApp(tenant(httpUpstream()));
    const res = await app.request(
      "/hdr",
      {
        headers: {
          connection: "X-Client-Hop",
          "x-client-hop": "1",
          "proxy-authorization": "Basic eDp5",
          forwarded: "for=1.2.3.4",
          "x-forwarded-for": "1.2.3.4",
          "x-env": "dev",
        },
      },
      env,
    );
    const seen = (await res.json()) as Seen;
    expect(seen.headers["x-client-hop"]).toBeUndefined();
    expect(seen.headers["proxy-authorization"]).toBeUndefined();
    expect(seen.headers.forwarded).toBeUndefined();
    expect(seen.headers["x-forwarded-for"]).toBe("10.0.0.7");
    expect(seen.headers["x-env"]).toBe("prod");
  });

  test("the access sink gets tenant, method, path with query, and status", async () => {
    const app = createTenantApp(tenant(httpUpstream("/v1")), access);
    await (await app.request("/items/created?id=3", { method: "POST", body: "x" }, env)).text();
    expect(access.entries).toHaveLength(1);
    const [e] = access.entries;
    expect(e).toMatchObject({ tenant: "acme", method: "POST", path: "/items/created?id=3", status: 201 });
    expect(typeof e!.ms).toBe("number");
  });

  test("Content-Encoding passes through untouched: the gzip bytes arrive as sent", async () => {
    const app = createTenantApp(tenant(httpUpstream()), access);
    const res = await app.request("/gzip", { headers: { "accept-encoding": "gzip" } }, env);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-encoding")).toBe("gzip");
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(Buffer.from(bytes).equals(GZIPPED)).toBe(true);
    expect(gunzipSync(bytes).toString()).toStartWith("hello, compressed world\n");
    expect(access.entries[0]?.bytes).toBe(GZIPPED.byteLength);
  });

  test("hop-by-hop response headers are removed, the rest kept", async () => {
    const app = createTenantApp(tenant(httpUpstream()));
    const res = await app.request("/hop", {}, env);
    expect(await res.text()).toBe("hop\n");
    expect(res.headers.get("x-kept")).toBe("yes");
    expect(res.headers.has("x-upstream-secret")).toBe(false);
    expect(res.headers.has("keep-alive")).toBe(false);
    expect(res.headers.has("proxy-authenticate")).toBe(false);
    expect(res.headers.has("connection")).toBe(false);
  });

  test("several Set-Cookie headers reach the client separately", async () => {
    const app = createTenantApp(tenant(httpUpstream()));
    const res = await app.request("/cookies", {}, env);
    expect(res.headers.getSetCookie()).toEqual(["a=1; Path=/", "b=2; Path=/"]);
  });

  test("redirects are not followed: the 302 and its Location come back as sent", async () => {
    const app = createTenantApp(tenant(httpUpstream()), access);
    const res = await app.request("/redirect", {}, env);
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("http://127.0.0.1:1/elsewhere");
    expect(access.entries.map((e) => e.status)).toEqual([302]);
  });

  test("HEAD is forwarded as HEAD", async () => {
    const app = createTenantApp(tenant(httpUpstream()), access);
    methods.length = 0;
    const res = await app.request("/head", { method: "HEAD" }, env);
    expect(res.status).toBe(200);
    expect(methods).toEqual(["HEAD"]);
    expect(access.entries[0]?.method).toBe("HEAD");
    expect(await res.text()).toBe("");
  });
});

describe("createTenantApp: upstream failures", () => {
  test("a refused connection is a 502 naming the upstream, without a stack trace", async () => {
    const port = await refusedPort();
    const upstream: Upstream = { origin: `http://127.0.0.1:${port}`, prefix: "/v1", text: `http://127.0.0.1:${port}/v1` };
    const access = recorder();
    const res = await createTenantApp(tenant(upstream), access).request("/x?y=1", { method: "POST", body: "payload" }, env);
    expect(res.status).toBe(502);
    const body = await res.text();
    expect(body).toContain(`upstream http://127.0.0.1:${port}/v1`);
    expect(body).toContain("connection refused");
    expect(body).not.toMatch(/\n\s+at /);
    expect(body).not.toContain(".ts:");
    expect(res.headers.get("content-type")).toStartWith("text/plain");
    expect(access.entries).toEqual([expect.objectContaining({ tenant: "acme", method: "POST", path: "/x?y=1", status: 502 })]);
  });

  test("a missing unix socket is a 502 naming the socket", async () => {
    const path = join(dir, "nobody-home.sock");
    const upstream: Upstream = { origin: "http://localhost", prefix: "", unix: path, text: `unix:${path}` };
    const res = await createTenantApp(tenant(upstream)).request("/", {}, env);
    expect(res.status).toBe(502);
    const body = await res.text();
    expect(body).toContain(`unix:${path}`);
    expect(body).not.toMatch(/\n\s+at /);
  });

  test("an upstream slower than upstreamTimeoutMs is a 504", async () => {
    const access = recorder();
    const app = createTenantApp(tenant(httpUpstream(), { upstreamTimeoutMs: 200 }), access);
    const res = await app.request("/slow", {}, env);
    expect(res.status).toBe(504);
    const body = await res.text();
    expect(body).toContain(`upstream http://127.0.0.1:${tcp.port}`);
    expect(body).toContain("did not answer within 0.2 s");
    expect(access.entries.map((e) => e.status)).toEqual([504]);
  });
});

describe("createTenantApp: unix socket upstream", () => {
  const upstream: Upstream = { origin: "http://localhost", prefix: "/v1", unix: socketPath, text: `unix:${socketPath}:/v1` };

  test("joins the prefix, keeps the query, forwards method, body and stamp", async () => {
    const access = recorder();
    const app = createTenantApp(tenant(upstream), access);
    const res = await app.request("/things/created?limit=5", { method: "PUT", body: "over the socket", headers: { "x-nsproxy-tenant": "spoof" } }, env);
    expect(res.status).toBe(201);
    const seen = (await res.json()) as Seen;
    expect(seen.method).toBe("PUT");
    expect(seen.path).toBe("/v1/things/created?limit=5");
    expect(seen.body).toBe("over the socket");
    expect(seen.tenantCopies).toEqual(["acme"]);
    expect(access.entries).toEqual([expect.objectContaining({ tenant: "acme", method: "PUT", path: "/things/created?limit=5", status: 201 })]);
  });

  test("a slow unix upstream is a 504 naming the socket", async () => {
    const res = await createTenantApp(tenant(upstream, { upstreamTimeoutMs: 200 })).request("/slow", {}, env);
    expect(res.status).toBe(504);
    expect(await res.text()).toContain(`unix:${socketPath}:/v1`);
  });
});
