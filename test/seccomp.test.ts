// The syscall filter on real namespaces: on every thread (a replaced worker too), refused calls fail from inside the daemon, and it keeps serving.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import type { TenantView } from "../src/admin/types.ts";
import { AdminClient } from "../src/admin/client.ts";
import { daemonDir, SOURCE_CLI, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, delNetns, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";
import { until } from "./helpers/wait.ts";

const prefix = uniquePrefix("scmp");
afterAll(() => cleanupNetns(prefix));

/** The lines of a thread's status that say who it runs as: "Uid … CapEff … CapBnd … NoNewPrivs … Seccomp …". */
function credentials(pid: number): Set<string> {
  const seen = new Set<string>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
      seen.add(["Uid", "CapEff", "CapBnd", "NoNewPrivs", "Seccomp"].map((k) => new RegExp(`^${k}:\\s*(.*)$`, "m").exec(status)?.[1]?.replace(/\s+/g, " ")).join(" | "));
    } catch {
      // A thread that ended between the listing and the read.
    }
  }
  return seen;
}

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

  // What deploy/systemd/nsproxy.service asks of systemd, done by hand (PID 1 is not systemd here): a mount namespace
  // that is a slave of the host's, the root and /run/netns read-only, uid 65534 with ambient CAP_SYS_ADMIN and
  // CAP_NET_BIND_SERVICE only, no_new_privs; and nsproxy's own filter. A namespace created after start must be seen.
  test("under the unit's restrictions by hand (slave mount namespace, read-only root, uid 65534 with two capabilities, no_new_privs): attach, a port below 1024, a namespace created after start, live add", async () => {
    const upstream = startUpstream();
    const dir = daemonDir();
    mkdirSync(`${dir}/admin`, { mode: 0o700 });
    mkdirSync(`${dir}/tenants.d`, { mode: 0o700 });
    for (const d of [dir, `${dir}/admin`, `${dir}/tenants.d`]) chownSync(d, 65534, 65534);
    chmodSync(dir, 0o755);
    const admin = new AdminClient(`${dir}/admin/admin.sock`);
    const early = addNetns(`${prefix}early`);
    const late = `${prefix}late`;
    const caps = "-all,+sys_admin,+net_bind_service";
    const restrict = [
      `mount --bind ${dir} ${dir}`, // the writable directories (RuntimeDirectory=, StateDirectory=)
      "mount -o remount,bind,ro /", // ProtectSystem=strict, as far as the root goes
      "mount -o remount,bind,ro /run/netns", // a read-only bind must still receive the host's new mounts
      `exec setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps ${caps} --ambient-caps ${caps} --bounding-set ${caps} --no-new-privs -- env TMPDIR=${dir} HOME=${dir} DENO_DIR=${dir}/deno "$@"`,
    ].join(" && ");
    const d = startNsproxy(["run", "-l", "127.0.0.1:80", "-u", `http://127.0.0.1:${upstream.port}`, "-n", early, "-n", late, "-w", "2", "--admin-socket", `${dir}/admin/admin.sock`, "--tenants-dir", `${dir}/tenants.d`], {
      command: ["unshare", "-m", "--propagation", "slave", "--", "sh", "-c", restrict, "sh", ...SOURCE_CLI],
    });
    try {
      await d.waitFor("attached 1/2");
      // 0x200400: CAP_SYS_ADMIN (21) and CAP_NET_BIND_SERVICE (10), on every thread, with the filter.
      expect([...credentials(d.proc.pid)]).toEqual(["65534 65534 65534 65534 | 0000000000200400 | 0000000000200400 | 1 | 2"]);
      expect(await tenantOf(early, 80)).toBe(early);
      addNetns(late);
      // As uid 65534 the placeholder `ip netns add` creates first (mode 000) reads EACCES, not "not a namespace": the
      // retry that sees the namespace may come after a backoff of several seconds.
      await until("the namespace created after start to be served", async () => (await tenantOf(late, 80)) === late, 20_000);
      const live = addNetns(`${prefix}live`);
      expect((await admin.putTenant("live", { netns: `/run/netns/${live}` })).tenant.state).toBe("serving");
      expect(await tenantOf(live, 80)).toBe("live");
      expect(d.stderr()).not.toContain("bug in nsproxy");
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);
});
