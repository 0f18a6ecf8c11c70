// End to end on real namespaces: tenants on identical addresses, the stamp, errors, failures isolated, threads, SIGTERM.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readlinkSync } from "node:fs";
import { startNsproxy, type Running } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("proxy");
const A = `${prefix}a`;
const B = `${prefix}b`;
const GONE = `${prefix}gone`;

describe.skipIf(Boolean(skipReason))("proxy on real namespaces", () => {
  const upstream = startUpstream();
  let daemon: Running;

  beforeAll(async () => {
    addNetns(A);
    addNetns(B);
    daemon = startNsproxy([
      "run",
      "--listen", "127.0.0.1:8080",
      "--upstream", `http://127.0.0.1:${upstream.port}`,
      "--netns", A,
      "--netns", B,
      "--netns", GONE, // never created: must not stop the other two
      "--workers", "2",
      "--upstream-timeout", "1s",
      "--shutdown-grace", "5s",
    ]);
    await daemon.waitFor(/attached 2\/3 tenants on 2 workers/);
  });

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    upstream.stop(true);
    cleanupNetns(prefix);
  });

  test("two tenants on the same address each reach the upstream with their own stamp", async () => {
    const [a, b] = await Promise.all([curlIn(A, "http://127.0.0.1:8080/hello?x=1"), curlIn(B, "http://127.0.0.1:8080/hello?x=2")]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    const ea = JSON.parse(a.body) as Echo;
    const eb = JSON.parse(b.body) as Echo;
    expect(ea.headers["x-nsproxy-tenant"]).toBe(A);
    expect(eb.headers["x-nsproxy-tenant"]).toBe(B);
    expect(new URL(ea.url).pathname + new URL(ea.url).search).toBe("/hello?x=1");
    expect(new URL(eb.url).search).toBe("?x=2");
    // Host passes through unchanged; X-Forwarded-* describe the tenant's view.
    expect(ea.headers.host).toBe("127.0.0.1:8080");
    expect(ea.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(ea.headers["x-forwarded-proto"]).toBe("http");
    expect(ea.headers["x-forwarded-host"]).toBe("127.0.0.1:8080");
  });

  test("every spoofed copy of the tenant header is stripped, in any letter case", async () => {
    const r = await curlIn(A, "http://127.0.0.1:8080/spoof", [
      "-H", `X-Nsproxy-Tenant: ${B}`,
      "-H", "x-nsproxy-tenant: root",
      "-H", "X-NSPROXY-TENANT: admin",
      "-H", "X-Forwarded-For: 6.6.6.6",
      "-H", "Forwarded: for=6.6.6.6",
    ]);
    const e = JSON.parse(r.body) as Echo;
    expect(e.rawTenantHeaders).toEqual([A]);
    expect(e.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(e.headers.forwarded).toBeUndefined();
  });

  test("method, body and hop-by-hop headers", async () => {
    const r = await curlIn(A, "http://127.0.0.1:8080/post", ["-X", "PUT", "--data-binary", "0123456789", "-H", "Connection: keep-alive, X-Private", "-H", "X-Private: secret", "-H", "Proxy-Authorization: Basic eA=="]);
    const e = JSON.parse(r.body) as Echo;
    expect(e.method).toBe("PUT");
    expect(e.bodyBytes).toBe(10);
    expect(e.headers["x-private"]).toBeUndefined();
    expect(e.headers["proxy-authorization"]).toBeUndefined();
  });

  test("upstream timeout gives 504 with a plain-text reason", async () => {
    const r = await curlIn(A, "http://127.0.0.1:8080/slow?ms=3000");
    expect(r.status).toBe(504);
    expect(r.body).toContain("did not answer within 1 s");
    expect(r.body).not.toContain("    at ");
  });

  test("the access log has a line per request with tenant, method, path, status", async () => {
    await curlIn(B, "http://127.0.0.1:8080/logged-path");
    await daemon.waitFor(new RegExp(`tenant=${B} GET "/logged-path" 200`));
  });

  test("a missing namespace is reported, with its path and reason, and retried", () => {
    expect(daemon.stderr()).toContain(`tenant ${GONE} (netns /run/netns/${GONE}): open namespace /run/netns/${GONE}: No such file or directory`);
  });

  test("no thread of nsproxy is left in a tenant namespace", () => {
    const pid = daemon.proc.pid;
    const own = readlinkSync(`/proc/${pid}/ns/net`);
    const tasks = readdirSync(`/proc/${pid}/task`);
    expect(tasks.length).toBeGreaterThan(2); // main + 2 workers at least: the check looks at real threads
    for (const tid of tasks) expect(`${tid}:${readlinkSync(`/proc/${pid}/task/${tid}/ns/net`)}`).toBe(`${tid}:${own}`);
    // And the host itself has no listener on the tenants' port: it lives inside the namespaces only.
    expect(Bun.spawnSync(["ss", "-Hltn", "sport = :8080"]).stdout.toString().trim()).toBe("");
  });
});

describe.skipIf(Boolean(skipReason))("upstream down", () => {
  test("refused upstream gives 502 naming the upstream; --log-format json logs it as JSON lines", async () => {
    const ns = addNetns(`${prefix}down`);
    // A port nothing listens on: bind one, note it, release it.
    const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    const port = probe.port;
    probe.stop(true);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8081", "-u", `http://127.0.0.1:${port}`, "-n", ns, "-w", "1", "--log-format", "json"]);
    try {
      await d.waitFor("attached 1/1");
      const r = await curlIn(ns, "http://127.0.0.1:8081/");
      expect(r.status).toBe(502);
      expect(r.body).toContain(`upstream http://127.0.0.1:${port}`);
      expect(r.body).toContain("refused");
      await d.waitFor('"type":"access"');
      const access = d.stdout().trim().split("\n").map((l) => JSON.parse(l));
      expect(access).toContainEqual(expect.objectContaining({ type: "access", tenant: ns, method: "GET", path: "/", status: 502 }));
      const logs = d.stderr().trim().split("\n").map((l) => JSON.parse(l));
      expect(logs).toContainEqual(expect.objectContaining({ level: "info", msg: expect.stringContaining("attached 1/1 tenants") }));
    } finally {
      await d.stop("SIGKILL");
    }
  });
});

describe.skipIf(Boolean(skipReason))("graceful stop", () => {
  test("SIGTERM lets a request in flight finish, then exits 0", async () => {
    const upstream = startUpstream();
    const ns = addNetns(`${prefix}term`);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8082", "-u", `http://127.0.0.1:${upstream.port}`, "-n", ns, "-w", "2", "--shutdown-grace", "10s"]);
    try {
      await d.waitFor("attached 1/1");
      const inflight = curlIn(ns, "http://127.0.0.1:8082/slow?ms=1500");
      await Bun.sleep(400);
      d.proc.kill("SIGTERM");
      const r = await inflight;
      expect(r.status).toBe(200);
      expect(r.body).toBe("slow done\n");
      expect(await d.proc.exited).toBe(0);
      // After the signal nothing new is accepted.
      const after = await curlIn(ns, "http://127.0.0.1:8082/");
      expect(after.code).not.toBe(0);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  });
});
