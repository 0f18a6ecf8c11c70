// A worker that cannot return to its own namespace, or that dies, is replaced and its tenants attached again, on real namespaces.
// The faults are real: the kernel refuses the return setns (libnetns's test switch), the worker throws or exits.
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import type { Subprocess } from "bun";
import { AdminClient } from "../src/admin/client.ts";
import { daemonDir, startNsproxy } from "./helpers/daemon.ts";
import { loadIn } from "./helpers/load.ts";
import { addNetns, cleanupNetns, curlIn, nsExec, skipReason, strayThreadsOf, uniquePrefix } from "./helpers/netns.ts";
import { freePort } from "./helpers/ports.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";
import { until } from "./helpers/wait.ts";

const prefix = uniquePrefix("repl");
const backends = new Set<Subprocess>();
afterAll(() => {
  for (const p of backends) p.kill("SIGKILL");
  cleanupNetns(prefix);
});

/** A tenant's own HTTP service inside `ns` on 127.0.0.1:`port`, answering JSON naming `name`. */
async function backendIn(ns: string, name: string, port: number): Promise<void> {
  const p = Bun.spawn(["ip", "netns", "exec", ns, process.execPath, `${import.meta.dir}/helpers/ns-backend.ts`, name, String(port)], { stdout: "pipe", stderr: "inherit" });
  backends.add(p);
  const reader = p.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!new TextDecoder().decode(value).startsWith("ready")) throw new Error(`backend ${name} in ${ns} did not start`);
}

/** One request on a fresh connection to the ingress listener: status and the answering tenant's service. */
async function viaIngress(port: number, host: string): Promise<[number, string | undefined]> {
  const r = Bun.spawn(["curl", "-sS", "--max-time", "5", "-H", `Host: ${host}`, "-w", "\n%{http_code}", `http://127.0.0.1:${port}/in`], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(r.stdout).text();
  await r.exited;
  const cut = out.lastIndexOf("\n");
  const status = Number(out.slice(cut + 1));
  return [status, status === 200 ? (JSON.parse(out.slice(0, cut)) as { tenant: string }).tenant : undefined];
}

/** Listening sockets on a port inside a namespace: one per worker (SO_REUSEPORT), none left by a dead worker. */
async function listeners(ns: string, port: number): Promise<number> {
  const r = await nsExec(ns, ["ss", "-Hltn", `sport = :${port}`]);
  return r.stdout.split("\n").filter((l) => l.trim()).length;
}

/** net.ipv4.tcp_migrate_req inside a namespace ("1": a closing listener's queued connections move to another). */
async function migrateReq(ns: string): Promise<string> {
  return (await nsExec(ns, ["sysctl", "-n", "net.ipv4.tcp_migrate_req"])).stdout.trim();
}

async function stamp(ns: string, port: number): Promise<[number, string | undefined]> {
  const r = await curlIn(ns, `http://127.0.0.1:${port}/after`);
  return [r.status, r.status === 200 ? (JSON.parse(r.body) as Echo).headers["x-nsproxy-tenant"] : undefined];
}

describe.skipIf(Boolean(skipReason))("worker replacement", () => {
  test("at start-up the kernel refuses both workers' return home: the window's check sees EINVAL, both are replaced, every tenant serves", async () => {
    const upstream = startUpstream();
    const calm = addNetns(`${prefix}calm`);
    const bad = addNetns(`${prefix}bad`);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8095", "-u", `http://127.0.0.1:${upstream.port}`, "-n", calm, "-n", bad, "-w", "2"], {
      env: { NSPROXY_FAULT_STRAND_TENANT: bad },
    });
    try {
      await d.waitFor(/worker 0 terminated \(setns back to own namespace: Invalid argument\)/);
      await d.waitFor(/worker 1 terminated \(setns back to own namespace: Invalid argument\)/);
      await d.waitFor(`tenant ${bad}: serving after`, 15_000);
      for (const ns of [calm, bad]) {
        expect(await stamp(ns, 8095)).toEqual([200, ns]);
        expect(await listeners(ns, 8095)).toBe(2);
      }
      await until("no thread in a tenant namespace", () => strayThreadsOf(d.proc.pid).length === 0, 5000);
      expect(d.stderr()).not.toContain("bug in nsproxy");
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  });

  // Worker 1 meets the fault while tenant "bad" is added at runtime; "calm" is under load throughout.
  const cases = [
    { kind: "return home fails", env: "NSPROXY_FAULT_STRAND_TENANT", log: /worker 1 terminated \(setns back to own namespace: Invalid argument\)/, strands: true },
    { kind: "uncaught error", env: "NSPROXY_FAULT_WORKER_THROW", log: /worker 1 terminated \(uncaught error: injected fault after attaching bad/i },
    { kind: "hard exit", env: "NSPROXY_FAULT_WORKER_EXIT", log: /worker 1 terminated \(worker exited\)/ },
  ];
  test.each(cases)("$kind: worker 1 is replaced, both tenants serve from both workers, nothing is left in a tenant namespace; 0 failed requests on a tenant under load", async ({ env, log, strands }) => {
    const upstream = startUpstream();
    const dir = daemonDir();
    const admin = new AdminClient(`${dir}/admin.sock`, 15_000);
    const calm = addNetns(`${prefix}l-${env.slice(-5).toLowerCase()}`);
    const bad = addNetns(`${prefix}b-${env.slice(-5).toLowerCase()}`);
    const d = startNsproxy(
      ["run", "-l", "127.0.0.1:8096", "-u", `http://127.0.0.1:${upstream.port}`, "-n", calm, "-w", "2", "--no-access-log", "--admin-socket", `${dir}/admin.sock`, "--tenants-dir", `${dir}/t.d`],
      { env: { [env]: "bad@1" } },
    );
    try {
      await d.waitFor("attached 1/1");
      // 8 keep-alive connections: SO_REUSEPORT spreads them over both workers, so worker 1 holds some.
      const load = loadIn(calm, "http://127.0.0.1:8096/calm", { concurrency: 8, maxMs: 5000, maxRequests: 500_000 });
      await Bun.sleep(800);
      await admin.putTenant("bad", { netns: `/run/netns/${bad}` });
      await d.waitFor(log, 8000);
      const faultAt = Date.now();
      await d.waitFor("worker 1 replaced", 8000);
      await until("bad to serve", async () => (await admin.tenants()).find((t) => t.name === "bad")?.state === "serving", 8000);
      await until("no thread in a tenant namespace", () => strayThreadsOf(d.proc.pid).length === 0, 5000);
      expect(await listeners(calm, 8096)).toBe(2);
      expect(await listeners(bad, 8096)).toBe(2);
      expect(await stamp(bad, 8096)).toEqual([200, "bad"]);
      // A stranded worker turns on tcp_migrate_req before closing its listeners: what the kernel queued on them
      // moves to worker 0's instead of being reset (without it, ~1 strand in 7 under load reset 1-2 connections).
      if (strands) expect(await migrateReq(calm)).toBe("1");
      const r = await load;
      console.log(`${env}: calm under load: ${r.requests} requests, ${r.ok} ok, bad ${JSON.stringify(r.bad)}, errors ${JSON.stringify(r.errors)}`);
      // The load ran before, during and after the fault.
      expect(r.startedAt).toBeLessThan(faultAt);
      expect(r.endedAt).toBeGreaterThan(faultAt);
      expect(r.errors).toEqual({});
      expect(r.bad).toEqual({});
      expect(r.tenants).toEqual({ [calm]: r.requests });
      expect(r.requests).toBeGreaterThan(1000);
      expect(d.stderr()).not.toContain("bug in nsproxy");
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);

  test("an ingress connect whose return home fails strands worker 1: it is replaced, other tenants keep serving both ways, nothing is left in a tenant namespace", async () => {
    const upstream = startUpstream();
    const dir = daemonDir();
    const calm = addNetns(`${prefix}ic`);
    const bad = addNetns(`${prefix}ib`);
    const good = addNetns(`${prefix}ig`);
    await backendIn(bad, "svc-bad", 3000);
    await backendIn(good, "svc-good", 3000);
    const port = freePort();
    writeFileSync(
      `${dir}/c.toml`,
      `[daemon]\ningress_listen = ["127.0.0.1:${port}"]\n` +
        `[tenants.calm]\nnetns = "${calm}"\nlisten = "127.0.0.1:8097"\nupstream = "http://127.0.0.1:${upstream.port}"\n` +
        `[tenants.bad]\nnetns = "${bad}"\ningress_hosts = ["bad.example"]\ningress_backend = "127.0.0.1:3000"\n` +
        `[tenants.good]\nnetns = "${good}"\ningress_hosts = ["good.example"]\ningress_backend = "127.0.0.1:3000"\n`,
    );
    const d = startNsproxy(["run", "-c", `${dir}/c.toml`, "-w", "2", "--no-access-log", "--admin-socket", `${dir}/admin.sock`, "--tenants-dir", `${dir}/t.d`], {
      env: { NSPROXY_FAULT_STRAND_INGRESS: "bad@1" },
    });
    try {
      await d.waitFor("attached 3/3");
      const load = loadIn(calm, "http://127.0.0.1:8097/calm", { concurrency: 8, maxMs: 5000, maxRequests: 500_000 });
      await Bun.sleep(800);
      // SO_REUSEPORT spreads new connections over both workers: worker 0 answers for bad, worker 1 meets the fault.
      const before: number[] = [];
      for (let i = 0; i < 60 && !/worker 1 terminated/.test(d.stderr()); i++) before.push((await viaIngress(port, "bad.example"))[0]);
      await d.waitFor(/worker 1 terminated \(setns back to own namespace failed after an ingress connect\)/, 5000);
      const faultAt = Date.now();
      // The one request that met the fault failed (502); every other one was answered.
      expect(before.filter((s) => s !== 200)).toEqual([502]);
      await d.waitFor("worker 1 replaced", 8000);
      await until("no thread in a tenant namespace", () => strayThreadsOf(d.proc.pid).length === 0, 5000);
      // The replacement is not armed: both ingress tenants answer from both workers, each from its own service.
      for (let i = 0; i < 10; i++) {
        expect(await viaIngress(port, "bad.example")).toEqual([200, "svc-bad"]);
        expect(await viaIngress(port, "good.example")).toEqual([200, "svc-good"]);
      }
      expect(await listeners(calm, 8097)).toBe(2);
      expect(await migrateReq(calm)).toBe("1");
      const r = await load;
      console.log(`ingress strand: calm under load: ${r.requests} requests, ${r.ok} ok, bad ${JSON.stringify(r.bad)}, errors ${JSON.stringify(r.errors)}`);
      expect(r.startedAt).toBeLessThan(faultAt);
      expect(r.endedAt).toBeGreaterThan(faultAt);
      expect(r.errors).toEqual({});
      expect(r.bad).toEqual({});
      // The stamp is the tenant's name, "calm".
      expect(r.tenants).toEqual({ calm: r.requests });
      expect(d.stderr()).not.toContain("bug in nsproxy");
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);
});
