// One listener owner per address in a namespace, on real namespaces: aliases of one namespace, wildcards, and a second daemon.
import { afterAll, describe, expect, test } from "bun:test";
import { statSync, writeFileSync } from "node:fs";
import { AdminClient } from "../src/admin/client.ts";
import { daemonDir, runNsproxy, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("owner");
afterAll(() => cleanupNetns(prefix));

/** A daemon's own admin socket and tenants dir, and a client for the socket. */
function place() {
  const dir = daemonDir();
  const socket = `${dir}/admin/admin.sock`;
  return { dir, flags: ["--admin-socket", socket, "--tenants-dir", `${dir}/tenants.d`], admin: new AdminClient(socket) };
}

/** `n` requests inside `ns`, one after another: the tenant stamp each one reached the upstream with. */
async function stamps(ns: string, url: string, n = 20): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await curlIn(ns, url);
    const who = r.status === 200 ? ((JSON.parse(r.body) as Echo).headers["x-nsproxy-tenant"] ?? "none") : `status ${r.status}`;
    out[who] = (out[who] ?? 0) + 1;
  }
  return out;
}

/** The refusal of an admin request (AdminRequestError: status, field, message). */
async function refusal(p: Promise<unknown>): Promise<{ status: number; field?: string; message: string }> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err as { status: number; field?: string; message: string },
  );
  if (!e) throw new Error("expected the request to be refused");
  return e;
}

describe.skipIf(Boolean(skipReason))("one listener owner per address", () => {
  test("another path of the same namespace (/var/run/netns/B for B, /proc/PID/ns/net of a process inside) is refused with 409 naming the owner; every request keeps its stamp", async () => {
    const upstream = startUpstream();
    const p = place();
    const ns = addNetns(`${prefix}alias`);
    // A process inside the namespace: its /proc/PID/ns/net is a third name of it (ip netns exec execs the command).
    const sleeper = Bun.spawn(["ip", "netns", "exec", ns, "sleep", "60"], { stdout: "ignore", stderr: "ignore" });
    const d = startNsproxy(["run", "-l", "127.0.0.1:8080", "-u", `http://127.0.0.1:${upstream.port}`, "--no-access-log", ...p.flags]);
    try {
      await d.waitFor("waiting for tenants");
      expect((await p.admin.putTenant("b", { netns: ns })).tenant.state).toBe("serving");
      const viaVar = await refusal(p.admin.putTenant("alias", { netns: `/var/run/netns/${ns}` }));
      expect([viaVar.status, viaVar.field]).toEqual([409, "listen"]);
      expect(viaVar.message).toContain(`tenant 'b' already listens on 127.0.0.1:8080 in /run/netns/${ns} (the namespace /var/run/netns/${ns} names too)`);

      const proc = `/proc/${sleeper.pid}/ns/net`;
      for (let i = 0; i < 50 && statSync(proc).ino !== statSync(`/run/netns/${ns}`).ino; i++) await Bun.sleep(20);
      const viaProc = await refusal(p.admin.putTenant("alias", { netns: proc }));
      expect([viaProc.status, viaProc.field]).toEqual([409, "listen"]);
      expect(viaProc.message).toContain(`tenant 'b' already listens on 127.0.0.1:8080 in /run/netns/${ns} (the namespace ${proc} names too)`);

      // The same namespace on another port is no clash.
      expect((await p.admin.putTenant("other", { netns: proc, listen: "127.0.0.1:8081" })).tenant.state).toBe("serving");
      expect((await p.admin.tenants()).map((t) => t.name)).toEqual(["b", "other"]);
      expect(await stamps(ns, "http://127.0.0.1:8080/")).toEqual({ b: 20 });
    } finally {
      sleeper.kill("SIGKILL");
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);

  test("a wildcard covers its family: 0.0.0.0:8300 then 127.0.0.1:8300 in one namespace is refused at tenant add (409 naming the owner), at check and at start", async () => {
    const upstream = startUpstream();
    const p = place();
    const ns = addNetns(`${prefix}wild`);
    const d = startNsproxy(["run", "-l", "0.0.0.0:8300", "-u", `http://127.0.0.1:${upstream.port}`, "--no-access-log", ...p.flags]);
    try {
      await d.waitFor("waiting for tenants");
      expect((await p.admin.putTenant("w1", { netns: ns })).tenant.state).toBe("serving");
      const e = await refusal(p.admin.putTenant("w2", { netns: ns, listen: "127.0.0.1:8300" }));
      expect([e.status, e.field]).toEqual([409, "listen"]);
      expect(e.message).toContain(`tenant 'w1' already listens on 0.0.0.0:8300 in /run/netns/${ns}, which covers 127.0.0.1:8300`);
      // [::] is dual-stack as nsproxy listens: it covers IPv4 too.
      expect((await refusal(p.admin.putTenant("w3", { netns: ns, listen: "[::]:8300" }))).status).toBe(409);
      expect(await stamps(ns, "http://127.0.0.1:8300/")).toEqual({ w1: 20 });
    } finally {
      await d.stop("SIGKILL");
    }

    // The same pair in a config file, and two names of one namespace: refused whole, exit 2, naming file:line.
    const file = `${p.dir}/wild.toml`;
    const config = (second: string, listen: string) =>
      `[defaults]\nupstream = "http://127.0.0.1:${upstream.port}"\n\n[tenants.w1]\nnetns = "${ns}"\nlisten = "0.0.0.0:8300"\n\n[tenants.w2]\nnetns = "${second}"\nlisten = "${listen}"\n`;
    writeFileSync(file, config(ns, "127.0.0.1:8300"));
    for (const command of ["check", "run"]) {
      const r = await runNsproxy([command, "-c", file, ...p.flags]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`wild.toml:10: tenants.w2.listen: tenants 'w1' and 'w2' both listen on 127.0.0.1:8300 (0.0.0.0:8300 covers it) in /run/netns/${ns}`);
    }
    writeFileSync(file, config(`/var/run/netns/${ns}`, "0.0.0.0:8300"));
    const alias = await runNsproxy(["check", "-c", file, ...p.flags]);
    expect(alias.code).toBe(2);
    expect(alias.stderr).toContain(`tenants 'w1' and 'w2' both listen on 0.0.0.0:8300 in /var/run/netns/${ns}, the namespace 'w1' names /run/netns/${ns}`);
    upstream.stop(true);
  }, 60_000);

  test("a second daemon on a taken address: its tenant fails naming the address and the first daemon's pid; the first keeps every request (20/20)", async () => {
    const upstream = startUpstream();
    const [p1, p2] = [place(), place()];
    const ns = addNetns(`${prefix}second`);
    const base = ["run", "-l", "127.0.0.1:8080", "-u", `http://127.0.0.1:${upstream.port}`, "--no-access-log"];
    const d1 = startNsproxy([...base, "-n", `first=${ns}`, ...p1.flags]);
    let d2: ReturnType<typeof startNsproxy> | undefined;
    try {
      await d1.waitFor("attached 1/1");
      d2 = startNsproxy([...base, "-n", `second=${ns}`, ...p2.flags]);
      await d2.waitFor(/attached|second/);
      let second = (await p2.admin.tenants())[0];
      for (let i = 0; i < 100 && second?.state !== "failed"; i++) {
        await Bun.sleep(50);
        second = (await p2.admin.tenants())[0];
      }
      expect(second?.state).toBe("failed");
      expect(second?.error).toContain(`listen 127.0.0.1:8080: Address already in use in /run/netns/${ns}, by a listener that is not this tenant's: pid ${d1.proc.pid} (`);
      expect(second?.error).toEndWith("; not shared [EADDRINUSE]");
      expect(d2.stderr()).toContain(`pid ${d1.proc.pid}`);
      // `tenant ls` shows the same.
      const ls = await runNsproxy(["tenant", "ls", "--admin-socket", p2.flags[1]!]);
      expect(ls.stdout).toContain("failed");
      expect(ls.stdout).toContain(`pid ${d1.proc.pid}`);
      expect(await stamps(ns, "http://127.0.0.1:8080/")).toEqual({ first: 20 });
      // The first daemon's own tenant is untouched.
      expect((await p1.admin.tenants()).map((t) => [t.name, t.state])).toEqual([["first", "serving"]]);
    } finally {
      await d2?.stop("SIGKILL");
      await d1.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);
});
