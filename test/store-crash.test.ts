// A crash while a tenant is stored: the process is killed mid-write, before the rename and after it; the store then holds the old spec or the new one, whole.
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { AdminClient } from "../src/admin/client.ts";
import { readTenantsDir } from "../src/store/tenants-dir.ts";
import { daemonDir, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("crash");
afterAll(() => cleanupNetns(prefix));

async function plan(ns: string): Promise<string | undefined> {
  const r = await curlIn(ns, "http://127.0.0.1:8180/");
  return r.status === 200 ? (JSON.parse(r.body) as Echo).headers["x-plan"] : `status ${r.status}`;
}

describe.skipIf(Boolean(skipReason))("tenants directory: killed while storing a tenant", () => {
  const cases = [
    { point: "torn", holds: "old", tempLeft: true },
    { point: "before-rename", holds: "old", tempLeft: true },
    { point: "after-rename", holds: "new", tempLeft: false },
  ];
  test.each(cases)("killed $point: the file holds the $holds spec whole, the temp file is never read, a restart restores every tenant", async ({ point, holds, tempLeft }) => {
    const upstream = startUpstream();
    const dir = daemonDir();
    const tenantsDir = `${dir}/tenants.d`;
    const admin = new AdminClient(`${dir}/admin.sock`, 15_000);
    const [a, b] = [addNetns(`${prefix}${point}-a`), addNetns(`${prefix}${point}-b`)];
    const base = ["run", "-l", "127.0.0.1:8180", "-u", `http://127.0.0.1:${upstream.port}`, "--no-access-log", "--admin-socket", `${dir}/admin.sock`, "--tenants-dir", tenantsDir];
    const lives: ReturnType<typeof startNsproxy>[] = [];
    try {
      // First life: two tenants stored.
      const first = startNsproxy(base);
      lives.push(first);
      await first.waitFor("waiting for tenants");
      await admin.putTenant("ta", { netns: `/run/netns/${a}`, headers: { "X-Plan": "old" } });
      await admin.putTenant("tb", { netns: `/run/netns/${b}`, headers: { "X-Plan": "b" } });
      expect(await first.stop("SIGTERM")).toBe(0);
      const before = readFileSync(`${tenantsDir}/ta.toml`, "utf8");

      // Second life: the process is killed while it stores ta's new spec.
      const armed = startNsproxy(base, { env: { NSPROXY_FAULT_TENANT_WRITE: point } });
      lives.push(armed);
      await armed.waitFor("attached 2/2");
      const put = await admin.putTenant("ta", { netns: `/run/netns/${a}`, headers: { "X-Plan": "new" } }).then(
        () => "answered",
        () => "cut",
      );
      await armed.proc.exited;
      expect([put, armed.proc.signalCode]).toEqual(["cut", "SIGKILL"]);

      // What the store reads now: both tenants, ta with the old or the new spec, nothing skipped.
      const stored = readTenantsDir(tenantsDir);
      expect(stored.skipped).toEqual([]);
      expect(stored.tenants.map((t) => [t.name, (t.table.headers as Record<string, string>)["X-Plan"]])).toEqual([["ta", holds], ["tb", "b"]]);
      if (holds === "old") expect(readFileSync(`${tenantsDir}/ta.toml`, "utf8")).toBe(before);
      // The crash left its temp file behind (a partial one when torn), beside the tenant files and never read as one.
      const temps = readdirSync(tenantsDir).filter((f) => f.startsWith(".ta.toml.tmp-"));
      expect(temps.length).toBe(tempLeft ? 1 : 0);
      if (point === "torn") expect(readFileSync(`${tenantsDir}/${temps[0]}`, "utf8").length).toBeLessThan(before.length);

      // Third life: every tenant is restored, with the spec the store holds.
      const third = startNsproxy(base);
      lives.push(third);
      await third.waitFor("attached 2/2");
      expect(third.stderr()).not.toContain("skipping");
      expect(await plan(a)).toBe(holds);
      expect(await plan(b)).toBe("b");
    } finally {
      for (const d of lives) await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);
});
