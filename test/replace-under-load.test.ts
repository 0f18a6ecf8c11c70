// A tenant replaced (headers, upstream, listen addresses) while wrk runs against it: not one request fails.
import { afterAll, describe, expect, test } from "bun:test";
import { AdminClient } from "../src/admin/client.ts";
import { daemonDir, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("rul");
const haveWrk = Bun.spawnSync(["sh", "-c", "command -v wrk"]).exitCode === 0;
afterAll(() => cleanupNetns(prefix));

describe.skipIf(Boolean(skipReason) || !haveWrk)("replacing a tenant under load", () => {
  test("6 replacements during 4 s of wrk -c8 on that tenant: 0 socket errors, 0 non-2xx", async () => {
    const up1 = startUpstream();
    const up2 = startUpstream();
    const dir = daemonDir();
    const socket = `${dir}/admin/admin.sock`;
    const admin = new AdminClient(socket);
    const ns = addNetns(`${prefix}t`);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8140", "-u", `http://127.0.0.1:${up1.port}`, "--no-access-log", "--admin-socket", socket, "--tenants-dir", `${dir}/t.d`, "--shutdown-grace", "5s"]);
    try {
      await d.waitFor("waiting for tenants");
      const specs = [
        { netns: `/run/netns/${ns}`, headers: { "X-Plan": "a" } },
        { netns: `/run/netns/${ns}`, headers: { "X-Plan": "b" } },
        { netns: `/run/netns/${ns}`, upstream: `http://127.0.0.1:${up2.port}` },
        { netns: `/run/netns/${ns}`, listen: ["127.0.0.1:8140", "127.0.0.1:8141"] },
        { netns: `/run/netns/${ns}`, upstream: `http://127.0.0.1:${up1.port}`, headers: { "X-Plan": "c" } },
        { netns: `/run/netns/${ns}`, listen: ["127.0.0.1:8140"] },
        { netns: `/run/netns/${ns}`, upstream_timeout: "20s" },
      ];
      expect((await admin.putTenant("t", specs[0]!)).tenant.state).toBe("serving");
      const wrk = Bun.spawn(["ip", "netns", "exec", ns, "wrk", "-t1", "-c8", "-d4s", "http://127.0.0.1:8140/"], { stdout: "pipe", stderr: "pipe" });
      const killer = setTimeout(() => wrk.kill("SIGKILL"), 30_000);
      await Bun.sleep(500);
      for (const spec of specs.slice(1)) {
        const r = await admin.putTenant("t", spec);
        expect(r.result).toBe("replaced");
        expect(r.tenant.state).toBe("serving");
        await Bun.sleep(450);
      }
      const out = await new Response(wrk.stdout).text();
      await wrk.exited;
      clearTimeout(killer);
      // nsproxy turned on tcp_migrate_req in the tenant's namespace when it listened there.
      expect(Bun.spawnSync(["ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.tcp_migrate_req"]).stdout.toString().trim()).toBe("1");
      console.log(`wrk during replacements: ${out.match(/(\d+) requests in/)?.[0]}; ${out.match(/Socket errors.*/)?.[0] ?? "no socket errors"}; ${out.match(/Non-2xx.*/)?.[0] ?? "no non-2xx"}`);
      expect(Number(out.match(/(\d+) requests in/)?.[1])).toBeGreaterThan(1000);
      expect(out).not.toContain("Socket errors");
      expect(out).not.toContain("Non-2xx");
    } finally {
      await d.stop("SIGKILL");
      up1.stop(true);
      up2.stop(true);
    }
  }, 60_000);
});
