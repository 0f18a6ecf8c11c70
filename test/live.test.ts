// Live tenants on real namespaces: add, replace and remove at runtime under load, durable across restarts, reload.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, statSync, writeFileSync } from "node:fs";
import { AdminClient } from "../src/admin/client.ts";
import { daemonDir, runNsproxy, startNsproxy } from "./helpers/daemon.ts";
import { loadIn } from "./helpers/load.ts";
import { addNetns, cleanupNetns, curlIn, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("live");
afterAll(() => cleanupNetns(prefix));

/** The daemon's flags for its own admin socket and tenants dir, and a client for the socket. */
function place() {
  const dir = daemonDir();
  const socket = `${dir}/admin/admin.sock`;
  const tenantsDir = `${dir}/tenants.d`;
  return { dir, socket, tenantsDir, flags: ["--admin-socket", socket, "--tenants-dir", tenantsDir], admin: new AdminClient(socket) };
}


describe.skipIf(Boolean(skipReason))("live tenants", () => {
  test("add, replace and remove tenants under load: zero failures on the steady tenant, even in its own namespace", async () => {
    const upstream = startUpstream();
    const p = place();
    const steady = addNetns(`${prefix}steady`);
    const churn = Array.from({ length: 8 }, (_, i) => addNetns(`${prefix}c${i}`));
    const d = startNsproxy(["run", "-l", "127.0.0.1:8100", "-u", `http://127.0.0.1:${upstream.port}`, "-n", steady, "--no-access-log", ...p.flags]);
    try {
      await d.waitFor("attached 1/1");
      const load = loadIn(steady, "http://127.0.0.1:8100/steady", { concurrency: 4, maxMs: 6000, maxRequests: 200_000 });
      await Bun.sleep(300);
      for (let round = 0; round < 3; round++) {
        for (const [i, ns] of churn.entries()) {
          const add = await p.admin.putTenant(`churn${i}`, { netns: `/run/netns/${ns}`, listen: "127.0.0.1:8101" });
          expect(add.result).toBe("created");
          expect(add.tenant.state).toBe("serving");
          // A tenant in the steady tenant's own namespace, on another port: new listeners beside the loaded one.
          await p.admin.putTenant(`neighbour${i}`, { netns: `/run/netns/${steady}`, listen: `127.0.0.1:${8110 + i}` });
          const moved = await p.admin.putTenant(`churn${i}`, { netns: `/run/netns/${ns}`, listen: "127.0.0.1:8102" });
          expect(moved.result).toBe("replaced");
        }
        if (round === 0) {
          // A replaced tenant answers on its new address only.
          expect((await curlIn(churn[0]!, "http://127.0.0.1:8102/")).status).toBe(200);
          expect((await curlIn(churn[0]!, "http://127.0.0.1:8101/")).code).not.toBe(0);
        }
        await p.admin.reload();
        for (const i of churn.keys()) {
          expect(await p.admin.deleteTenant(`churn${i}`)).toBe(true);
          expect(await p.admin.deleteTenant(`neighbour${i}`)).toBe(true);
        }
      }
      const r = await load;
      console.log(`steady tenant under churn: ${r.requests} requests, ${r.ok} ok, bad ${JSON.stringify(r.bad)}, errors ${JSON.stringify(r.errors)}`);
      expect(r.errors).toEqual({});
      expect(r.bad).toEqual({});
      expect(r.tenants).toEqual({ [steady]: r.requests });
      expect(r.requests).toBeGreaterThan(500);
      expect(d.stderr()).not.toContain("bug in nsproxy");
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);

  test("replacing a tenant's spec lets its request in flight finish; the next request gets the new spec", async () => {
    const upstream = startUpstream();
    const p = place();
    const ns = addNetns(`${prefix}rep`);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8125", "-u", `http://127.0.0.1:${upstream.port}`, "--no-access-log", ...p.flags]);
    try {
      await d.waitFor("waiting for tenants");
      await p.admin.putTenant("rep", { netns: `/run/netns/${ns}` });
      const inflight = curlIn(ns, "http://127.0.0.1:8125/slow?ms=1500");
      await Bun.sleep(300);
      const replaced = await p.admin.putTenant("rep", { netns: `/run/netns/${ns}`, headers: { "X-Plan": "gold" } });
      expect(replaced.result).toBe("replaced");
      const after = JSON.parse((await curlIn(ns, "http://127.0.0.1:8125/")).body) as Echo;
      expect(after.headers["x-plan"]).toBe("gold");
      const slow = await inflight;
      expect([slow.status, slow.body]).toEqual([200, "slow done\n"]);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 30_000);

  test("two tenants on one address in one namespace are refused (409, field listen), IPv6 spellings included", async () => {
    const p = place();
    const ns = addNetns(`${prefix}clash`);
    const d = startNsproxy(["run", "-l", "[::1]:8126", "-u", "http://127.0.0.1:9", "--no-access-log", ...p.flags]);
    try {
      await d.waitFor("waiting for tenants");
      expect((await p.admin.putTenant("first", { netns: `/run/netns/${ns}` })).tenant.state).toBe("serving");
      const clash = await p.admin.putTenant("second", { netns: `/run/netns/${ns}`, listen: "[0:0::1]:8126" }).catch((e) => e);
      expect([clash.status, clash.field]).toEqual([409, "listen"]);
      expect(clash.message).toContain("tenant 'first' already listens on");
      expect((await p.admin.tenants()).map((t) => t.name)).toEqual(["first"]);
    } finally {
      await d.stop("SIGKILL");
    }
  }, 30_000);

  test("the CLI is idempotent; a restart restores every tenant; a corrupt tenant file is skipped, the rest load", async () => {
    const upstream = startUpstream();
    const p = place();
    const [a, b] = [addNetns(`${prefix}ra`), addNetns(`${prefix}rb`)];
    const base = ["run", "-l", "127.0.0.1:8120", "-u", `http://127.0.0.1:${upstream.port}`, ...p.flags];
    const first = startNsproxy(base);
    try {
      await first.waitFor("waiting for tenants");
      // The admin socket: its directory 0700, the socket 0600, never a TCP port.
      expect(statSync(`${p.dir}/admin`).mode & 0o777).toBe(0o700);
      expect(statSync(p.socket).mode & 0o777).toBe(0o600);
      const add = ["tenant", "add", "ta", "--netns", a, "--header", "X-Plan=gold", ...p.flags];
      const r1 = await runNsproxy(add);
      expect([r1.code, r1.stdout]).toEqual([0, "tenant ta: created\n"]);
      const r2 = await runNsproxy(add);
      expect([r2.code, r2.stdout]).toEqual([0, "tenant ta: unchanged\n"]);
      expect((await runNsproxy(["tenant", "add", "tb", "--netns", b, ...p.flags])).code).toBe(0);
      const echo = JSON.parse((await curlIn(a, "http://127.0.0.1:8120/")).body) as Echo;
      expect(echo.headers["x-nsproxy-tenant"]).toBe("ta");
      expect(echo.headers["x-plan"]).toBe("gold");
      const ls = await runNsproxy(["tenant", "ls", "--json", ...p.flags]);
      expect(JSON.parse(ls.stdout).map((t: { name: string; state: string }) => [t.name, t.state])).toEqual([["ta", "serving"], ["tb", "serving"]]);
      const rm1 = await runNsproxy(["tenant", "rm", "tb", ...p.flags]);
      const rm2 = await runNsproxy(["tenant", "rm", "tb", ...p.flags]);
      expect([rm1.code, rm1.stdout, rm2.code, rm2.stdout]).toEqual([0, "tenant tb: removed\n", 0, "tenant tb: absent (nothing to remove)\n"]);
      expect(await first.stop("SIGTERM")).toBe(0);
    } finally {
      await first.stop("SIGKILL");
    }
    // While the daemon is down: add through the files, and a corrupt file beside them.
    const offline = await runNsproxy(["tenant", "add", "tb", "--netns", b, ...p.flags]);
    expect(offline.code).toBe(0);
    expect(offline.stdout).toContain(`daemon not running at ${p.socket}; saved ${p.tenantsDir}/tb.toml`);
    const status = await runNsproxy(["status", ...p.flags]);
    expect([status.code, status.stderr]).toEqual([1, expect.stringContaining(`daemon not running at ${p.socket}`)]);
    writeFileSync(`${p.tenantsDir}/broken.toml`, 'netns = "x"\nlisten = [\n');
    const second = startNsproxy(base);
    try {
      await second.waitFor("attached 2/2 tenants");
      expect(second.stderr()).toContain(`tenants dir: skipping ${p.tenantsDir}/broken.toml:`);
      for (const [ns, name] of [[a, "ta"], [b, "tb"]] as const) {
        expect((JSON.parse((await curlIn(ns, "http://127.0.0.1:8120/")).body) as Echo).headers["x-nsproxy-tenant"]).toBe(name);
      }
    } finally {
      await second.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);

  test("a tenant declared in the config file or by a flag: PUT and DELETE are 409 (admin API and CLI); it keeps serving as declared", async () => {
    const upstream = startUpstream();
    const p = place();
    const [c, f] = [addNetns(`${prefix}cfg`), addNetns(`${prefix}flag`)];
    const file = `${p.dir}/nsproxy.toml`;
    writeFileSync(file, ["[defaults]", 'listen = "127.0.0.1:8135"', `upstream = "http://127.0.0.1:${upstream.port}"`, "[tenants.cfg]", `netns = "${c}"`].join("\n"));
    const d = startNsproxy(["run", "--config", file, "-n", `flagged=/run/netns/${f}`, "--no-access-log", ...p.flags]);
    try {
      await d.waitFor("attached 2/2");
      const where = { cfg: `declared in ${file}`, flagged: "declared by --netns" };
      for (const [name, ns] of [["cfg", c], ["flagged", f]] as const) {
        const put = await p.admin.putTenant(name, { netns: `/run/netns/${ns}`, listen: "127.0.0.1:8136" }).catch((e) => e);
        expect([put.status, put.message]).toEqual([409, expect.stringContaining(where[name])]);
        const del = await p.admin.deleteTenant(name).catch((e) => e);
        expect([del.status, del.message]).toEqual([409, expect.stringContaining(`tenant '${name}' is declared`)]);
        const add = await runNsproxy(["tenant", "add", name, "--netns", ns, ...p.flags]);
        expect([add.code, add.stderr]).toEqual([2, expect.stringContaining(where[name])]);
        const rm = await runNsproxy(["tenant", "rm", name, ...p.flags]);
        expect([rm.code, rm.stderr]).toEqual([2, expect.stringContaining(`tenant '${name}' is declared`)]);
        expect(existsSync(`${p.tenantsDir}/${name}.toml`)).toBe(false);
        // Still served as declared: on the configured address, not the one the refused PUT asked for.
        expect((JSON.parse((await curlIn(ns, "http://127.0.0.1:8135/")).body) as Echo).headers["x-nsproxy-tenant"]).toBe(name);
        expect((await curlIn(ns, "http://127.0.0.1:8136/")).code).not.toBe(0);
      }
      expect((await p.admin.tenants()).map((t) => [t.name, t.source, t.state])).toEqual([
        ["cfg", "config", "serving"],
        ["flagged", "flag", "serving"],
      ]);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);

  test("an invalid reload (SIGHUP or nsproxy reload) keeps the old config; a valid one applies only the difference", async () => {
    const upstream = startUpstream();
    const p = place();
    const [a, b] = [addNetns(`${prefix}ha`), addNetns(`${prefix}hb`)];
    const file = `${p.dir}/nsproxy.toml`;
    const good = (tenants: string[]) =>
      [
        "[defaults]",
        'listen = "127.0.0.1:8130"',
        `upstream = "http://127.0.0.1:${upstream.port}"`,
        ...tenants.flatMap((t) => [`[tenants.${t.slice(prefix.length)}]`, `netns = "${t}"`]),
      ].join("\n");
    writeFileSync(file, good([a]));
    const d = startNsproxy(["run", "--config", file, ...p.flags]);
    try {
      await d.waitFor("attached 1/1");
      writeFileSync(file, `${good([a])}\nupstrem = "typo"\n`);
      const bad = await runNsproxy(["reload", ...p.flags]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain("reload rejected, the running configuration stays");
      expect(bad.stderr).toContain("nsproxy.toml:6");
      d.proc.kill("SIGHUP");
      await d.waitFor(/reload rejected.*\n(.|\n)*reload rejected/);
      expect((await curlIn(a, "http://127.0.0.1:8130/")).status).toBe(200);
      // Valid: one tenant more; the first is unchanged and keeps its listeners.
      writeFileSync(file, good([a, b]));
      const ok = await runNsproxy(["reload", "--json", ...p.flags]);
      expect(ok.code).toBe(0);
      expect(JSON.parse(ok.stdout)).toMatchObject({ result: "reloaded", added: ["hb"], removed: [], replaced: [], unchanged: 1 });
      expect((JSON.parse((await curlIn(b, "http://127.0.0.1:8130/")).body) as Echo).headers["x-nsproxy-tenant"]).toBe("hb");
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);
});
