// Following namespaces: gone, back, replaced at the same path, and discovered in a burst.
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { AdminClient } from "../src/admin/client.ts";
import type { TenantView } from "../src/admin/types.ts";
import { daemonDir, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, addNetnsMany, cleanupNetns, curlIn, delNetns, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";
import { until } from "./helpers/wait.ts";

const prefix = uniquePrefix("fol");
afterAll(() => cleanupNetns(prefix));

/**
 * The daemon's TCP sockets: every socket fd except unix ones (the admin connections this test polls
 * through). Before any request is proxied, these are exactly the listeners inside the tenants' namespaces.
 */
function sockets(pid: number): number {
  const unix = new Set(
    readFileSync(`/proc/${pid}/net/unix`, "utf8")
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/)[6])
      .filter(Boolean),
  );
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = readlinkSync(`/proc/${pid}/fd/${fd}`).match(/^socket:\[(\d+)\]$/);
      if (m && !unix.has(m[1]!)) n++;
    } catch {}
  }
  return n;
}


describe.skipIf(Boolean(skipReason))("following namespaces", () => {
  test("a deleted namespace releases its sockets, a re-created one is served again, a replaced one is followed", async () => {
    const upstream = startUpstream();
    const dir = daemonDir();
    const admin = new AdminClient(`${dir}/admin.sock`);
    const ns = addNetns(`${prefix}x`);
    const other = addNetns(`${prefix}other`);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8140", "-u", `http://127.0.0.1:${upstream.port}`, "-n", ns, "-n", other, "-w", "2", "--admin-socket", `${dir}/admin.sock`, "--tenants-dir", `${dir}/t.d`]);
    const state = async (name: string) => (await admin.tenants()).find((t: TenantView) => t.name === name)?.state;
    try {
      await d.waitFor("attached 2/2");
      const before = sockets(d.proc.pid);
      const t0 = performance.now();
      delNetns(ns);
      await until("the tenant to leave serving", async () => (await state(ns)) === "waiting");
      // That they are released is the behaviour; how fast is a figure for `bun bench/follow.ts`, not a test.
      await until("its two listening sockets (one per worker) to close", () => sockets(d.proc.pid) <= before - 2, 10_000);
      console.log(`namespace deleted -> sockets released in ${(performance.now() - t0).toFixed(0)} ms`);
      expect((await curlIn(other, "http://127.0.0.1:8140/")).status).toBe(200);

      addNetns(ns);
      await until("the re-created namespace to be served", async () => (await state(ns)) === "serving", 5000);
      expect((JSON.parse((await curlIn(ns, "http://127.0.0.1:8140/")).body) as Echo).headers["x-nsproxy-tenant"]).toBe(ns);

      // Replaced under the same path in one go: the listener must move into the new namespace.
      const mark = d.stderr().length;
      const t2 = performance.now();
      spawnSync("sh", ["-c", `ip netns del ${ns} && ip netns add ${ns} && ip -n ${ns} link set lo up`]);
      // Seen either as replaced, or as gone and then back, depending on when the check ran.
      await until("the replacement to be noticed", () => new RegExp(`namespace /run/netns/${ns} (was replaced|is gone)`).test(d.stderr().slice(mark)), 3000);
      await until("the new namespace to be served", async () => (await state(ns)) === "serving", 5000);
      console.log(`namespace replaced at the same path -> serving the new one after ${(performance.now() - t2).toFixed(0)} ms`);
      expect((JSON.parse((await curlIn(ns, "http://127.0.0.1:8140/")).body) as Echo).headers["x-nsproxy-tenant"]).toBe(ns);
      expect(d.stderr()).not.toContain("bug in nsproxy");
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);

  test("discovery: 200 namespaces created in a burst are served, and released when deleted in a burst", async () => {
    const dir = daemonDir();
    const admin = new AdminClient(`${dir}/admin.sock`);
    const burst = `${prefix}d`;
    const d = startNsproxy(["run", "-l", "127.0.0.1:8150", "-u", "http://127.0.0.1:9", "--discover", `/run/netns=${burst}*`, "-w", "2", "--no-access-log", "--admin-socket", `${dir}/admin.sock`, "--tenants-dir", `${dir}/t.d`]);
    try {
      await d.waitFor("attached 0/0");
      const base = sockets(d.proc.pid);
      const names = Array.from({ length: 200 }, (_, i) => `${burst}${i}`);
      const t0 = performance.now();
      addNetnsMany(names);
      await until("200 discovered tenants serving", async () => (await admin.status()).tenants.serving === 200, 20_000);
      console.log(`discovery: 200 namespaces served ${(performance.now() - t0).toFixed(0)} ms after the burst began`);
      expect((await admin.tenants()).every((t) => t.source === "discover")).toBe(true);
      expect(sockets(d.proc.pid)).toBeGreaterThanOrEqual(base + 400);
      const t1 = performance.now();
      spawnSync("ip", ["-batch", "-"], { input: names.map((n) => `netns del ${n}\n`).join("") });
      await until("every discovered tenant gone", async () => (await admin.status()).tenants.total === 0, 20_000);
      await until("their sockets released", () => sockets(d.proc.pid) <= base, 5000);
      console.log(`discovery: 200 namespaces released ${(performance.now() - t1).toFixed(0)} ms after the burst of deletes began`);
      // Discovered tenants are never written to the tenants directory.
      expect(spawnSync("ls", ["-A", `${dir}/t.d`]).stdout?.toString() ?? "").toBe("");
    } finally {
      await d.stop("SIGKILL");
    }
  }, 90_000);
});
