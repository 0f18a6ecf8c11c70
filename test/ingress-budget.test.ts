// Descriptor budget on real namespaces: an ingress flood leaves egress answering, a tenant's ingress_max_connections
// refuses that tenant alone, and a limit lowered at runtime (prlimit) is followed without a busy loop.
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import type { Subprocess } from "bun";
import { AdminClient } from "../src/admin/client.ts";
import { daemonDir, SOURCE_CLI, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { cpuSeconds, startClient } from "./helpers/client-proc.ts";
import { freePort } from "./helpers/ports.ts";
import { startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("budget");
const BACKEND = `${import.meta.dir}/helpers/ns-backend.ts`;
const spawned = new Set<Subprocess>();
afterAll(() => {
  for (const p of spawned) p.kill("SIGKILL");
  cleanupNetns(prefix);
});

/** An egress request from inside `ns`, timed. */
async function timedGet(ns: string, url: string): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const r = await curlIn(ns, url, ["--max-time", "5"]);
  return { status: r.status, ms: performance.now() - t0 };
}

describe.skipIf(Boolean(skipReason))("descriptor budget", () => {
  test("2,000 idle ingress connections under a 2,048-descriptor limit: another tenant's egress answers every request within 1 s", async () => {
    const upstream = startUpstream();
    const b = addNetns(`${prefix}fb`);
    const [port, listen] = [freePort(), freePort()];
    const dir = daemonDir();
    writeFileSync(
      `${dir}/c.toml`,
      `[daemon]\ningress_listen = ["127.0.0.1:${port}"]\nrequest_timeout = "60s"\n` +
        `[tenants.b]\nnetns = "${b}"\nlisten = "127.0.0.1:${listen}"\nupstream = "http://127.0.0.1:${upstream.port}"\n`,
    );
    const d = startNsproxy(["run", "-c", `${dir}/c.toml`, "-w", "2", "--no-access-log", "--admin-socket", `${dir}/admin.sock`, "--tenants-dir", `${dir}/t.d`], {
      command: ["prlimit", "--nofile=2048:2048", ...SOURCE_CLI],
    });
    try {
      await d.waitFor("attached 1/1");
      // Connections that never send a byte: no Host, no tenant; only ingress's share of the budget bounds them.
      const flood = await startClient(undefined, ["hold", "127.0.0.1", String(port), "2000", "6000", ""], "HOLDING");
      const results: { status: number; ms: number }[] = [];
      for (let i = 0; i < 10; i++) results.push(await timedGet(b, `http://127.0.0.1:${listen}/e${i}`));
      expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
      for (const r of results) expect(r.ms).toBeLessThan(1000);
      const status = await new AdminClient(`${dir}/admin.sock`).status();
      // Ingress holds its share and no more: half of what connections may hold, two descriptors each.
      expect(status.totals!.ingress_connections).toBeGreaterThan(300);
      expect(status.totals!.ingress_connections).toBeLessThan(1000);
      expect(status.totals!.open_connections).toBeGreaterThanOrEqual(status.totals!.ingress_connections!);
      const flooded = await flood.result();
      expect(flooded.closedEarly + flooded.failed).toBeGreaterThan(500); // refused at accept: over ingress's share
      await d.waitFor(/descriptor limit reached \(2048\): ingress holds \d+ of its share/);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);

  test("ingress_max_connections: over the cap that tenant's ingress alone gets 503; another tenant's ingress is served", async () => {
    const [a, b] = [addNetns(`${prefix}ca`), addNetns(`${prefix}cb`)];
    for (const [ns, name] of [[a, "tenant-a"], [b, "tenant-b"]] as const) {
      const p = Bun.spawn(["ip", "netns", "exec", ns, process.execPath, BACKEND, name, "3000"], { stdout: "pipe", stderr: "inherit" });
      spawned.add(p);
      const reader = p.stdout.getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toStartWith("ready");
      reader.releaseLock();
    }
    const port = freePort();
    const dir = daemonDir();
    writeFileSync(
      `${dir}/c.toml`,
      `[daemon]\ningress_listen = ["127.0.0.1:${port}"]\n` +
        `[tenants.a]\nnetns = "${a}"\ningress_hosts = ["a.example"]\ningress_backend = "127.0.0.1:3000"\ningress_max_connections = 3\n` +
        `[tenants.b]\nnetns = "${b}"\ningress_hosts = ["b.example"]\ningress_backend = "127.0.0.1:3000"\n`,
    );
    const d = startNsproxy(["run", "-c", `${dir}/c.toml`, "-w", "2", "--no-access-log", "--admin-socket", `${dir}/admin.sock`, "--tenants-dir", `${dir}/t.d`]);
    try {
      await d.waitFor("attached 2/2");
      // Eight keep-alive connections to a.example, each answered once and then starting another request: routed, and held.
      const head = "GET /first HTTP/1.1\r\nHost: a.example\r\n\r\n";
      const holder = await startClient(undefined, ["hold", "127.0.0.1", String(port), "8", "2500", head], "HOLDING");
      await Bun.sleep(300);
      const other = Bun.spawnSync(["curl", "-sS", "--max-time", "5", "-H", "Host: b.example", `http://127.0.0.1:${port}/`]);
      expect(JSON.parse(other.stdout.toString()).tenant).toBe("tenant-b");
      const metrics = Bun.spawnSync(["curl", "-sS", "--unix-socket", `${dir}/admin.sock`, "http://nsproxy/metrics"]).stdout.toString();
      expect(metrics).toContain('nsproxy_tenant_ingress_connections_refused_total{tenant="a"} 5');
      const held = await holder.result();
      expect(held.refused503).toBe(5);
      expect(held.replies.join("\n")).toContain("503");
      await d.waitFor("tenant a: ingress_max_connections (3) reached");
      // Once they are gone, the tenant is served again.
      const again = Bun.spawnSync(["curl", "-sS", "--max-time", "5", "-H", "Host: a.example", `http://127.0.0.1:${port}/`]);
      expect(JSON.parse(again.stdout.toString()).tenant).toBe("tenant-a");
    } finally {
      await d.stop("SIGKILL");
    }
  }, 60_000);

  test("prlimit to 1,024 on a running daemon holding 1,500 connections: no busy loop, one line, others served, recovery when raised", async () => {
    const upstream = startUpstream();
    const [a, b] = [addNetns(`${prefix}la`), addNetns(`${prefix}lb`)];
    const listen = freePort();
    const dir = daemonDir();
    const admin = `${dir}/admin.sock`;
    const d = startNsproxy(
      ["run", "-l", `127.0.0.1:${listen}`, "-u", `http://127.0.0.1:${upstream.port}`, "-n", a, "-n", b, "-w", "2", "--no-access-log", "--request-timeout", "60s", "--max-connections", "2000", "--admin-socket", admin, "--tenants-dir", `${dir}/t.d`],
      { command: ["prlimit", "--nofile=4096:4096", ...SOURCE_CLI] },
    );
    try {
      await d.waitFor("attached 2/2");
      // Tenant a holds 1,500 connections that never send a byte: far more descriptors than 1,024.
      const held = await startClient(a, ["hold", "127.0.0.1", String(listen), "1500", "9000", ""], "HOLDING");
      await Bun.sleep(300);
      expect((await new AdminClient(admin).status()).totals!.open_connections).toBe(1500);
      // The soft limit is the one in force (raising a hard limit back needs CAP_SYS_RESOURCE, which this box lacks).
      expect(Bun.spawnSync(["prlimit", "--pid", String(d.proc.pid), "--nofile=1024:4096"]).exitCode).toBe(0);
      const cpu0 = cpuSeconds(d.proc.pid);
      const t0 = Date.now();
      // B asks on new connections throughout: each is a pending accept while the process is over its limit.
      const statuses: number[] = [];
      while (Date.now() - t0 < 5000) {
        statuses.push((await timedGet(b, `http://127.0.0.1:${listen}/b`)).status);
        await Bun.sleep(200);
      }
      const cpu = cpuSeconds(d.proc.pid) - cpu0;
      expect(cpu).toBeLessThan(2);
      // Served once the idle connections over the new limit are closed (within a second or so).
      expect(statuses.slice(-5)).toEqual(Array(5).fill(200));
      const lines = d.stderr().split("\n").filter((l) => l.includes("changed from 4096 to 1024"));
      expect(lines.length).toBe(1);
      expect(d.stderr().split("\n").filter((l) => l.includes("descriptor")).length).toBeLessThanOrEqual(4);
      // Raised again: connections beyond what 1,024 allowed are accepted and held.
      expect(Bun.spawnSync(["prlimit", "--pid", String(d.proc.pid), "--nofile=4096:4096"]).exitCode).toBe(0);
      await Bun.sleep(1000);
      const metrics = Bun.spawnSync(["curl", "-sS", "--unix-socket", admin, "http://nsproxy/metrics"]).stdout.toString();
      const shed = Number(/^nsproxy_connections_shed_total (\d+)$/m.exec(metrics)?.[1]);
      expect(shed).toBeGreaterThan(500); // the idle ones over the lowered budget
      expect(metrics).toContain("nsproxy_descriptors_limit 4096");
      const more = await startClient(b, ["hold", "127.0.0.1", String(listen), "900", "1500", ""], "HOLDING");
      await Bun.sleep(300);
      // More than the lowered limit could hold: all of b's new connections are open at once.
      expect((await new AdminClient(admin).status()).totals!.open_connections).toBe(1500 - shed + 900);
      await more.result();
      await held.result();
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);
});
