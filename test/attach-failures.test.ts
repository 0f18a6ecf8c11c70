// Tenants that cannot attach (address absent, port taken) are reported precisely, retried, and never stop the others.
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("fail");
afterAll(() => cleanupNetns(prefix));

describe.skipIf(Boolean(skipReason))("attach failures", () => {
  test("an absent address is EADDRNOTAVAIL for that tenant only, and attaches once the address appears", async () => {
    const upstream = startUpstream();
    const ok = addNetns(`${prefix}ok`, ["10.77.0.1/32"]);
    const late = addNetns(`${prefix}late`); // 10.77.0.1 is not there yet
    const d = startNsproxy(["run", "-l", "10.77.0.1:8096", "-u", `http://127.0.0.1:${upstream.port}`, "-n", ok, "-n", late, "-w", "2"]);
    try {
      await d.waitFor("attached 1/2 tenants");
      expect(d.stderr()).toContain(`tenant ${late} (netns /run/netns/${late}): listen 10.77.0.1:8096: Cannot assign requested address [EADDRNOTAVAIL]; retrying in 1 s`);
      expect((await curlIn(ok, "http://10.77.0.1:8096/")).status).toBe(200);
      // The operator fixes the namespace; the retry picks it up without a restart.
      spawnSync("ip", ["-n", late, "addr", "add", "10.77.0.1/32", "dev", "lo"]);
      await d.waitFor(`tenant ${late}: serving after`, 10_000);
      const r = await curlIn(late, "http://10.77.0.1:8096/");
      expect((JSON.parse(r.body) as Echo).headers["x-nsproxy-tenant"]).toBe(late);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  });

  test("a port taken inside one namespace is EADDRINUSE for that tenant; the squatter keeps its port", async () => {
    const upstream = startUpstream();
    const ok = addNetns(`${prefix}free`);
    const taken = addNetns(`${prefix}taken`);
    const squatter = Bun.spawn(
      ["ip", "netns", "exec", taken, process.execPath, "-e", `Bun.serve({ hostname: "127.0.0.1", port: 8097, fetch: () => new Response("squatter") }); console.log("up"); await Bun.sleep(60000);`],
      { stdout: "pipe", stderr: "inherit" },
    );
    const d = (async () => {
      for await (const chunk of squatter.stdout) if (new TextDecoder().decode(chunk).includes("up")) break;
      return startNsproxy(["run", "-l", "127.0.0.1:8097", "-u", `http://127.0.0.1:${upstream.port}`, "-n", ok, "-n", taken, "-w", "2"]);
    })();
    const daemon = await d;
    try {
      await daemon.waitFor("attached 1/2 tenants");
      // Refused before binding (never shared through SO_REUSEPORT), naming the squatter's process.
      expect(daemon.stderr()).toContain(
        `tenant ${taken} (netns /run/netns/${taken}): listen 127.0.0.1:8097: Address already in use in /run/netns/${taken}, by a listener that is not this tenant's: pid ${squatter.pid} (`,
      );
      expect((await curlIn(taken, "http://127.0.0.1:8097/")).body).toBe("squatter");
      expect((await curlIn(ok, "http://127.0.0.1:8097/")).status).toBe(200);
    } finally {
      await daemon.stop("SIGKILL");
      squatter.kill("SIGKILL");
      upstream.stop(true);
    }
  });
});
