// Metrics on real namespaces: exact counts per tenant in a parsed scrape, refusals counted, /readyz, the listener only on the host.
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import parse from "parse-prometheus-text-format";
import { daemonDir, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, addNetnsMany, cleanupNetns, curlIn, nsExec, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { freePort } from "./helpers/ports.ts";
import { startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("met");
const CLIENT = [process.execPath, `${import.meta.dir}/helpers/ns-client.ts`];
afterAll(() => cleanupNetns(prefix));

/** The value of one sample: family name and labels that must match. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const family = parse(text).find((f) => f.name === name);
  if (!family) throw new Error(`no family ${name} in the scrape`);
  const m = family.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  if (!m) throw new Error(`no sample ${name}${JSON.stringify(labels)}`);
  return Number(m.value ?? m.count);
}

describe.skipIf(Boolean(skipReason))("metrics", () => {
  test("N requests on A and M on B are exactly N and M; refusals, bytes, open connections and the histogram count", async () => {
    const upstream = startUpstream();
    const a = addNetns(`${prefix}a`);
    const b = addNetns(`${prefix}b`);
    const port = freePort();
    const dir = daemonDir();
    writeFileSync(
      `${dir}/nsproxy.toml`,
      `[daemon]\nmetrics_listen = "127.0.0.1:${port}"\n\n[defaults]\nlisten = "127.0.0.1:8190"\nupstream = "http://127.0.0.1:${upstream.port}"\n\n` +
        `[tenants."${a}"]\nnetns = "${a}"\nmax_connections = 3\n\n[tenants."${b}"]\nnetns = "${b}"\n`,
    );
    const d = startNsproxy(["run", "--config", `${dir}/nsproxy.toml`, "-w", "2", "--upstream-timeout", "1s", "--admin-socket", `${dir}/admin/admin.sock`, "--tenants-dir", `${dir}/t.d`]);
    try {
      await d.waitFor("attached 2/2");
      const N = 7;
      const M = 4;
      for (let i = 0; i < N; i++) expect((await curlIn(a, `http://127.0.0.1:8190/a${i}`)).status).toBe(200);
      for (let i = 0; i < M; i++) expect((await curlIn(b, `http://127.0.0.1:8190/b${i}`)).status).toBe(200);
      // Two answers nsproxy writes itself on B: a 405 and a 504.
      expect((await curlIn(b, "http://127.0.0.1:8190/x", ["-X", "CONNECT"])).status).toBe(405);
      expect((await curlIn(b, "http://127.0.0.1:8190/slow?ms=3000")).status).toBe(504);
      // Five connections held on A, whose cap is 3: two refused.
      const held = await nsExec(a, [...CLIENT, "hold", "127.0.0.1", "8190", "5", "300", ""]);
      expect(JSON.parse(held.stdout).refused503).toBe(2);

      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(sample(text, "nsproxy_tenant_http_responses_total", { tenant: a, code: "2xx" })).toBe(N);
      expect(sample(text, "nsproxy_tenant_http_responses_total", { tenant: b, code: "2xx" })).toBe(M);
      expect(sample(text, "nsproxy_tenant_local_responses_total", { tenant: b, code: "405" })).toBe(1);
      expect(sample(text, "nsproxy_tenant_local_responses_total", { tenant: b, code: "504", reason: "gateway_timeout" })).toBe(1);
      expect(sample(text, "nsproxy_tenant_upstream_timeouts_total", { tenant: b })).toBe(1);
      expect(sample(text, "nsproxy_tenant_local_responses_total", { tenant: a, code: "405" })).toBe(0);
      expect(sample(text, "nsproxy_tenant_connections_refused_total", { tenant: a })).toBe(2);
      expect(sample(text, "nsproxy_tenant_connections_refused_total", { tenant: b })).toBe(0);
      expect(sample(text, "nsproxy_tenant_connections_total", { tenant: a })).toBe(N + 3);
      expect(sample(text, "nsproxy_tenant_current_connections", { tenant: a })).toBe(0);
      expect(sample(text, "nsproxy_tenant_bytes_in_total", { tenant: a })).toBeGreaterThan(N * 40);
      expect(sample(text, "nsproxy_tenant_bytes_out_total", { tenant: a })).toBeGreaterThan(N * 100);
      expect(sample(text, "nsproxy_tenants", { state: "serving" })).toBe(2);
      expect(sample(text, "nsproxy_metrics_tenant_series_aggregated")).toBe(0);
      expect(sample(text, "nsproxy_request_duration_seconds")).toBe(N + M + 2);
      // The admin socket serves the same exposition.
      const viaAdmin = await (await fetch("http://nsproxy/metrics", { unix: `${dir}/admin/admin.sock` })).text();
      expect(sample(viaAdmin, "nsproxy_tenant_http_responses_total", { tenant: a, code: "2xx" })).toBe(N);
      // The listener is the host's: from inside a tenant namespace the address is not there.
      const fromTenant = await nsExec(a, ["curl", "-sS", "--max-time", "3", `http://127.0.0.1:${port}/metrics`]);
      expect(fromTenant.code).not.toBe(0);
      expect(fromTenant.stdout).toBe("");
      // Nothing else is served there.
      expect((await fetch(`http://127.0.0.1:${port}/v1/status`)).status).toBe(404);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  });

  test("above metrics_tenant_limit the series are aggregated, and the exposition says so", async () => {
    const upstream = startUpstream();
    const a = addNetns(`${prefix}ga`);
    const b = addNetns(`${prefix}gb`);
    const port = freePort();
    const d = startNsproxy(["run", "-l", "127.0.0.1:8191", "-u", `http://127.0.0.1:${upstream.port}`, "-n", a, "-n", b, "--metrics-listen", `127.0.0.1:${port}`, "--metrics-tenant-limit", "1"]);
    try {
      await d.waitFor("attached 2/2");
      await curlIn(a, "http://127.0.0.1:8191/");
      await curlIn(b, "http://127.0.0.1:8191/");
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(sample(text, "nsproxy_metrics_tenant_series_aggregated")).toBe(1);
      expect(sample(text, "nsproxy_tenant_http_responses_total", { tenant: "_all", code: "2xx" })).toBe(2);
      expect(text).not.toContain(`tenant="${a}"`);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  });

  test("/healthz 200 while up; /readyz 503 before the attach pass, 200 after, 503 while shutting down", async () => {
    const upstream = startUpstream();
    const a = addNetns(`${prefix}r`);
    const port = freePort();
    const d = startNsproxy(["run", "-l", "127.0.0.1:8192", "-u", `http://127.0.0.1:${upstream.port}`, "-n", a, "--metrics-listen", `127.0.0.1:${port}`, "--shutdown-grace", "5s"], {
      env: { NSPROXY_TEST_HOLD_ATTACH_MS: "1500" },
    });
    try {
      await d.waitFor("metrics on http://");
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(503);
      await d.waitFor("attached 1/1");
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
      // A request in flight keeps the daemon in its shutdown grace: not ready meanwhile.
      const inflight = curlIn(a, "http://127.0.0.1:8192/slow?ms=2000");
      await Bun.sleep(300);
      d.proc.kill("SIGTERM");
      await d.waitFor("SIGTERM");
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(503);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      expect((await inflight).status).toBe(200);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  });

  test("1,100 tenants: counters past the first chunk of 1024 slots count too", async () => {
    const upstream = startUpstream();
    const names = Array.from({ length: 1100 }, (_, i) => `${prefix}k${String(i).padStart(4, "0")}`);
    addNetnsMany(names);
    const sampled = [names[0]!, names[600]!, names[1099]!];
    for (const ns of sampled) Bun.spawnSync(["ip", "-n", ns, "link", "set", "lo", "up"]);
    const port = freePort();
    const d = startNsproxy(["run", "-l", "127.0.0.1:8193", "-u", `http://127.0.0.1:${upstream.port}`, "--discover", `/run/netns=${prefix}k*`, "--no-access-log", "--metrics-listen", `127.0.0.1:${port}`, "--metrics-tenant-limit", "2000"]);
    try {
      await d.waitFor(/attached 1100\/1100 tenants/, 60_000);
      for (const ns of sampled) expect((await curlIn(ns, "http://127.0.0.1:8193/")).status).toBe(200);
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      for (const ns of sampled) expect(sample(text, "nsproxy_tenant_http_responses_total", { tenant: ns, code: "2xx" })).toBe(1);
      expect(sample(text, "nsproxy_tenant_http_responses_total", { tenant: names[1]!, code: "2xx" })).toBe(0);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 120_000);
});
