// Out of descriptors: tenants that do not fit fail and retry, the daemon stays up, says why, and raises no false alarm.
import { afterAll, describe, expect, test } from "bun:test";
import { AdminClient } from "../src/admin/client.ts";
import { daemonDir, SOURCE_CLI, startNsproxy } from "./helpers/daemon.ts";
import { addNetnsMany, cleanupNetns, skipReason, uniquePrefix } from "./helpers/netns.ts";

const prefix = uniquePrefix("lim");
afterAll(() => cleanupNetns(prefix));

describe.skipIf(Boolean(skipReason))("descriptor limit", () => {
  test("150 tenants under a 120-descriptor limit: one worker each, EMFILE per tenant that does not fit, a warning, no crash, no thread alarm", async () => {
    const names = Array.from({ length: 150 }, (_, i) => `${prefix}${i}`);
    addNetnsMany(names);
    const dir = daemonDir();
    const d = startNsproxy(
      ["run", "-l", "127.0.0.1:8160", "-u", "http://127.0.0.1:9", "--discover", `/run/netns=${prefix}*`, "-w", "2", "--no-access-log", "--admin-socket", `${dir}/admin.sock`, "--tenants-dir", `${dir}/t.d`],
      { command: ["prlimit", "--nofile=120:120", ...SOURCE_CLI] },
    );
    try {
      await d.waitFor(/attached \d+\/150 tenants/);
      await d.waitFor("need more descriptors than the limit 120");
      await d.waitFor("each new tenant listens in one worker");
      expect(d.stderr()).toContain("Too many open files [EMFILE]");
      // Retries run side by side; the thread check must wait for quiet instead of flagging workers mid-attach.
      await Bun.sleep(2500);
      expect(d.proc.exitCode).toBeNull();
      expect(d.stderr()).not.toContain("bug in nsproxy");
      const status = await new AdminClient(`${dir}/admin.sock`).status();
      expect(status.tenants.total).toBe(150);
      expect(status.tenants.serving).toBeGreaterThan(0);
      expect(status.tenants.serving).toBeLessThan(150);
    } finally {
      await d.stop("SIGKILL");
    }
  }, 60_000);

  test("300 tenants x 2 workers under a 1000-descriptor limit: each listens in one worker and all serve", async () => {
    const names = Array.from({ length: 300 }, (_, i) => `${prefix}s${i}`);
    addNetnsMany(names);
    const dir = daemonDir();
    const d = startNsproxy(
      ["run", "-l", "127.0.0.1:8161", "-u", "http://127.0.0.1:9", "--discover", `/run/netns=${prefix}s*`, "-w", "2", "--no-access-log", "--admin-socket", `${dir}/admin.sock`, "--tenants-dir", `${dir}/t.d`],
      { command: ["prlimit", "--nofile=1000:1000", ...SOURCE_CLI] },
    );
    try {
      await d.waitFor(/attached 300\/300 tenants/);
      expect(d.stderr()).toContain("each new tenant listens in one worker");
      // One listening socket per tenant (in all-workers mode each namespace would show two).
      for (const ns of [names[0]!, names[150]!, names[299]!]) {
        const r = Bun.spawnSync(["ip", "netns", "exec", ns, "ss", "-Hltn", "sport = :8161"]);
        expect(r.stdout.toString().trim().split("\n").length).toBe(1);
      }
      const status = await new AdminClient(`${dir}/admin.sock`).status();
      expect(status.tenants.serving).toBe(300);
    } finally {
      await d.stop("SIGKILL");
    }
  }, 60_000);
});
