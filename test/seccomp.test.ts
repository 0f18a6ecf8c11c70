// The syscall filter on real namespaces: on every thread (a replaced worker too), refused calls fail from inside the daemon, and it keeps serving.
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import type { TenantView } from "../src/admin/types.ts";
import { AdminClient } from "../src/admin/client.ts";
import { daemonDir, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, delNetns, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";
import { until } from "./helpers/wait.ts";

const prefix = uniquePrefix("scmp");
afterAll(() => cleanupNetns(prefix));

/** The Seccomp: line of every thread of pid: "tid comm" → mode (0 none, 2 filter). */
function seccompModes(pid: number): Map<string, string> {
  const modes = new Map<string, string>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
      const name = /^Name:\s*(.*)$/m.exec(status)?.[1] ?? "?";
      modes.set(`${tid} ${name}`, /^Seccomp:\s*(\d)$/m.exec(status)?.[1] ?? "missing");
    } catch {
      // A thread that ended between the listing and the read.
    }
  }
  return modes;
}

async function tenantOf(ns: string, port: number): Promise<string | undefined> {
  const r = await curlIn(ns, `http://127.0.0.1:${port}/`);
  return r.status === 200 ? (JSON.parse(r.body) as Echo).headers["x-nsproxy-tenant"] : `status ${r.status} (${r.code})`;
}

describe.skipIf(Boolean(skipReason))("syscall filter", () => {
  test("every thread is filtered (a replaced worker too); unshare, mount and clone of a namespace get EPERM inside the daemon; attach, live add and follow still work", async () => {
    const upstream = startUpstream();
    const dir = daemonDir();
    const admin = new AdminClient(`${dir}/admin.sock`);
    const first = addNetns(`${prefix}a`);
    const late = addNetns(`${prefix}b`);
    const state = async (name: string) => (await admin.tenants()).find((t: TenantView) => t.name === name)?.state;
    // Worker 1 exits after attaching the live-added tenant: its replacement is a thread started under the filter.
    const d = startNsproxy(["run", "-l", "127.0.0.1:8160", "-u", `http://127.0.0.1:${upstream.port}`, "-n", first, "-w", "2", "--admin-socket", `${dir}/admin.sock`, "--tenants-dir", `${dir}/t.d`], {
      env: { NSPROXY_FAULT_SECCOMP_PROBE: "1", NSPROXY_FAULT_WORKER_EXIT: `late@1` },
    });
    try {
      await d.waitFor("attached 1/1");
      const out = d.stderr();
      expect(out).toContain("syscall filter on every thread");
      expect(out).toContain("seccomp probe: unshare(CLONE_NEWNET) = EPERM");
      expect(out).toContain("seccomp probe: mount(tmpfs) = EPERM");
      expect(out).toContain("seccomp probe: clone(CLONE_NEWNET) = EPERM");
      expect(out).toContain("seccomp probe: clone3 = ENOSYS");
      expect(await tenantOf(first, 8160)).toBe(first);

      // Live add; the fault ends worker 1 after it listens, the pool starts another thread and attaches again.
      await admin.putTenant("late", { netns: `/run/netns/${late}` });
      await d.waitFor(/worker 1 terminated \(worker exited\)/);
      await until("the replaced worker to serve the tenant again", async () => (await state("late")) === "serving", 15_000);
      expect(await tenantOf(late, 8160)).toBe("late");

      // Follow: the namespace goes away and comes back; the tenant is attached again.
      delNetns(late);
      await until("the tenant to wait for its namespace", async () => (await state("late")) === "waiting", 10_000);
      addNetns(late);
      await until("the re-created namespace to be served", async () => (await state("late")) === "serving", 10_000);
      expect(await tenantOf(late, 8160)).toBe("late");
      expect(await tenantOf(first, 8160)).toBe(first);

      const modes = seccompModes(d.proc.pid);
      expect(modes.size).toBeGreaterThan(3);
      const unfiltered = [...modes].filter(([, mode]) => mode !== "2");
      expect(unfiltered).toEqual([]);
      expect(d.stderr()).not.toContain("bug in nsproxy");
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);

  test("--no-seccomp: no thread is filtered, and the daemon says so", async () => {
    const upstream = startUpstream();
    const ns = addNetns(`${prefix}off`);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8161", "-u", `http://127.0.0.1:${upstream.port}`, "-n", ns, "-w", "1", "--no-seccomp"]);
    try {
      await d.waitFor("attached 1/1");
      expect(d.stderr()).toContain("syscall filter off");
      expect(await tenantOf(ns, 8161)).toBe(ns);
      expect([...seccompModes(d.proc.pid).values()].every((m) => m === "0")).toBe(true);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 30_000);
});
