// Connection limits on real namespaces: a tenant's max_connections refuses that tenant alone; at the descriptor limit nothing spins and service comes back.
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { daemonDir, SOURCE_CLI, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { cpuSeconds, startClient } from "./helpers/client-proc.ts";
import { startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("conn");
afterAll(() => cleanupNetns(prefix));

describe.skipIf(Boolean(skipReason))("connection limits", () => {
  test("max_connections: over the cap that tenant alone gets 503; the other tenant is served", async () => {
    const upstream = startUpstream();
    const a = addNetns(`${prefix}capa`);
    const b = addNetns(`${prefix}capb`);
    const dir = daemonDir();
    const config = `${dir}/nsproxy.toml`;
    writeFileSync(
      config,
      `[defaults]\nlisten = "127.0.0.1:8170"\nupstream = "http://127.0.0.1:${upstream.port}"\n\n[tenants."${a}"]\nnetns = "${a}"\nmax_connections = 5\n\n[tenants."${b}"]\nnetns = "${b}"\n`,
    );
    const d = startNsproxy(["run", "--config", config, "-w", "2"]);
    try {
      await d.waitFor("attached 2/2");
      const holder = await startClient(a, ["hold", "127.0.0.1", "8170", "12", "1500", ""], "HOLDING");
      const other = await curlIn(b, "http://127.0.0.1:8170/other");
      expect(other.status).toBe(200);
      const held = await holder.result();
      expect(held.open).toBe(12);
      expect(held.refused503).toBe(7);
      await d.waitFor(`tenant ${a}: max_connections (5) reached`);
      // Once they are gone, the tenant is served again.
      expect((await curlIn(a, "http://127.0.0.1:8170/again")).status).toBe(200);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  });

  test("at the descriptor limit: no busy loop, one line naming the limit, established connections keep working, service resumes", async () => {
    const upstream = startUpstream();
    const a = addNetns(`${prefix}fda`);
    const b = addNetns(`${prefix}fdb`);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8171", "-u", `http://127.0.0.1:${upstream.port}`, "-n", a, "-n", b, "-w", "1", "--no-access-log"], {
      command: ["prlimit", "--nofile=400:400", ...SOURCE_CLI],
    });
    try {
      await d.waitFor("attached 2/2");
      // B's established keep-alive connection: a GET every 200 ms throughout.
      const steady = await startClient(b, ["keepalive", "127.0.0.1", "8171", "20", "200"], "FIRST");
      // A opens far more connections than the descriptors allow, and holds them.
      const flood = await startClient(a, ["hold", "127.0.0.1", "8171", "300", "2500", ""], "HOLDING");
      const cpu0 = cpuSeconds(d.proc.pid);
      await Bun.sleep(1500);
      const cpu = cpuSeconds(d.proc.pid) - cpu0;
      // A spinning event loop burns the whole 1.5 s on a core; an idle one almost nothing.
      expect(cpu).toBeLessThan(0.5);
      const flooded = await flood.result();
      expect(flooded.closedEarly).toBeGreaterThan(0); // some were refused at once
      const steadyResult = (await steady.result()) as { statuses: number[] };
      expect(steadyResult.statuses).toEqual(Array(20).fill(200));
      const lines = d.stderr().split("\n").filter((l) => l.includes("descriptor limit reached (400)"));
      expect(lines.length).toBe(1);
      // Service resumes by itself once the flood is gone.
      expect((await curlIn(a, "http://127.0.0.1:8171/after")).status).toBe(200);
      expect((await curlIn(b, "http://127.0.0.1:8171/after")).status).toBe(200);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  });
});
