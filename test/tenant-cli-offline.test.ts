// tenant add/rm/ls, status and reload run in-process: with no daemon (the tenants directory is written directly) and against a fake admin socket.
import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ArgsDef, type CommandDef, runCommand } from "citty";
import { DaemonNotRunning } from "../src/admin/client.ts";
import type { PutResult, ReloadResult, StatusView, TenantView } from "../src/admin/types.ts";
import reload from "../src/commands/reload.ts";
import status from "../src/commands/status.ts";
import tenant from "../src/commands/tenant.ts";
import { parseTenantFile } from "../src/config/tenant-table.ts";
import { ConfigError, NsproxyError } from "../src/errors.ts";

let dir: string;
let sock: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "nsproxy-tenant-cli-"));
  sock = join(dir, "admin.sock"); // never created: no daemon
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Run a command in-process; stdout is captured, a thrown error is returned instead of thrown. */
async function cli<T extends ArgsDef>(cmd: CommandDef<T>, rawArgs: string[]): Promise<{ out: string; err?: NsproxyError }> {
  let out = "";
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    await runCommand(cmd, { rawArgs });
    return { out };
  } catch (e) {
    if (!(e instanceof NsproxyError)) throw e;
    return { out, err: e };
  } finally {
    process.stdout.write = write;
  }
}

const where = () => ["--admin-socket", sock, "--tenants-dir", join(dir, "tenants.d")];
const fileOf = (name: string) => join(dir, "tenants.d", `${name}.toml`);
const readBack = (name: string) => parseTenantFile(fileOf(name), name, readFileSync(fileOf(name), "utf8"));

describe("no daemon: tenant add / rm write the tenants directory", () => {
  test("add writes the file; the same add again is unchanged and leaves the mtime alone; a different add replaces", async () => {
    const args = ["add", "acme", "--netns", "acme", "-l", "127.0.0.1:8080", "--upstream", "http://127.0.0.1:9000", ...where()];
    const first = await cli(tenant, args);
    expect(first.err).toBeUndefined();
    expect(first.out).toBe(`daemon not running at ${sock}; saved ${fileOf("acme")} (applies at the next start)\n`);
    expect(readBack("acme").table).toEqual({ netns: "acme", listen: ["127.0.0.1:8080"], upstream: "http://127.0.0.1:9000" });
    expect(readBack("acme").tenant.netns).toBe("/run/netns/acme");
    const mtime = statSync(fileOf("acme")).mtimeMs;

    const again = await cli(tenant, args);
    expect(again.err).toBeUndefined();
    expect(again.out).toBe(`daemon not running at ${sock}; unchanged ${fileOf("acme")}\n`);
    expect(statSync(fileOf("acme")).mtimeMs).toBe(mtime);

    const other = await cli(tenant, ["add", "acme", "--netns", "/proc/42/ns/net", "--upstream-timeout", "5", ...where()]);
    expect(other.out).toContain(`saved ${fileOf("acme")}`);
    expect(readBack("acme").table).toEqual({ netns: "/proc/42/ns/net", upstream_timeout: 5 });
    expect(readdirSync(join(dir, "tenants.d"))).toEqual(["acme.toml"]);
  });

  test("--header twice, --listen twice, flags after or before NAME", async () => {
    const { err } = await cli(tenant, ["add", "--header", "X-Plan=gold", "globex", "-n", "globex", "-H", "X-Env=a=b", "--listen", "127.0.0.1:80", "--listen=[::1]:80", ...where()]);
    expect(err).toBeUndefined();
    expect(readBack("globex").table).toEqual({ netns: "globex", listen: ["127.0.0.1:80", "[::1]:80"], headers: { "X-Plan": "gold", "X-Env": "a=b" } });
  });

  test("invalid input fails with a ConfigError naming the flag, and writes nothing", async () => {
    const cases: [string[], string][] = [
      [["--netns", "acme", "--listen", "localhost:80"], "--listen: "],
      [["--netns", "acme", "--upstream", "ftp://x"], "--upstream: "],
      [["--netns", "acme", "--header", "Bad Name=1"], "--header: "],
      [["--netns", "acme", "--header", "novalue"], "--header: "],
      [["--netns", "acme", "--header", "A=1", "--header", "A=2"], "--header: "],
      [["--netns", "acme", "--tenant-header", "Connection"], "--tenant-header: "],
      [["--netns", "acme", "--upstream-timeout", "0"], "--upstream-timeout: "],
      [["--netns", "relative/path"], "--netns: "],
      [["--netns", "web=/proc/1/ns/net"], "--netns: "],
      [["--netns", "a", "--netns", "b"], "--netns: "],
      [[], "--netns: "],
      [["--netns", "acme", "--lisen", "127.0.0.1:80"], "--lisen: unknown option"],
      [["--netns", "acme", "--upstream", "http://a:1", "--upstream", "http://b:1"], "--upstream: given more than once"],
      [["--netns", "acme", "extra"], "unexpected argument 'extra'"],
    ];
    for (const [flags, prefix] of cases) {
      const { err } = await cli(tenant, ["add", "acme", ...flags, ...where()]);
      expect(err, flags.join(" ")).toBeInstanceOf(ConfigError);
      expect(err!.message).toStartWith(prefix);
      expect(err!.exitCode).toBe(2);
    }
    const { err } = await cli(tenant, ["add", "../x", "--netns", "acme", ...where()]);
    expect(err?.message).toContain('tenant name "../x" (the NAME argument) is not valid');
    expect(existsSync(join(dir, "tenants.d"))).toBe(false);
  });

  test("rm removes the file; rm again says there is none", async () => {
    await cli(tenant, ["add", "acme", "--netns", "acme", ...where()]);
    const first = await cli(tenant, ["rm", "acme", ...where()]);
    expect(first).toEqual({ out: `daemon not running at ${sock}; removed ${fileOf("acme")}\n` });
    expect(existsSync(fileOf("acme"))).toBe(false);
    const again = await cli(tenant, ["rm", "acme", ...where()]);
    expect(again).toEqual({ out: `daemon not running at ${sock}; no file for acme in ${join(dir, "tenants.d")}\n` });
  });

  test("--config: the file's [daemon] admin_socket and tenants_dir are used when the flags do not say", async () => {
    const cfg = join(dir, "nsproxy.toml");
    const other = join(dir, "srv-tenants.d");
    await Bun.write(cfg, `[daemon]\nadmin_socket = "${sock}"\ntenants_dir = "${other}"\n`);
    const r = await cli(tenant, ["add", "acme", "--netns", "acme", "--config", cfg]);
    expect(r).toEqual({ out: `daemon not running at ${sock}; saved ${join(other, "acme.toml")} (applies at the next start)\n` });
    expect(existsSync(join(other, "acme.toml"))).toBe(true);
    // A flag still wins over the file.
    const flagged = await cli(tenant, ["rm", "acme", "--config", cfg, "--tenants-dir", join(dir, "tenants.d")]);
    expect(flagged.out).toContain(`no file for acme in ${join(dir, "tenants.d")}`);
    expect(existsSync(join(other, "acme.toml"))).toBe(true);
  });

  test("ls, status and reload need the daemon: DaemonNotRunning, exit 1", async () => {
    const noDaemon = ["--admin-socket", sock];
    const runs = [["ls"], ["ls", "--json"]].map((a) => () => cli(tenant, [...a, ...noDaemon]));
    runs.push(() => cli(status, noDaemon), () => cli(status, ["--json", ...noDaemon]), () => cli(reload, noDaemon));
    for (const run of runs) {
      const { out, err } = await run();
      expect(err).toBeInstanceOf(DaemonNotRunning);
      expect(err!.message).toBe(`daemon not running at ${sock}`);
      expect(err!.exitCode).toBe(1);
      expect(out).toBe("");
    }
  });
});

describe("a fake daemon on the admin socket", () => {
  const served = mkdtempSync(join(tmpdir(), "nsproxy-tenant-cli-admin-"));
  const socket = join(served, "admin.sock");
  const view = (name: string, state: TenantView["state"] = "serving", error?: string): TenantView => ({
    name,
    netns: `/run/netns/${name}`,
    listen: ["127.0.0.1:8080"],
    upstream: "http://127.0.0.1:9000",
    state,
    ...(error ? { error } : {}),
    source: "tenants-dir",
    mode: "http",
    max_connections: 1000,
    headers: {},
    tenant_header: "X-Nsproxy-Tenant",
    upstream_timeout_ms: 30_000,
  });
  const seen: { method: string; path: string; body: unknown }[] = [];
  const json = (body: unknown, status = 200) => Response.json(body, { status });
  const server = Bun.serve({
    unix: socket,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      const body = req.method === "PUT" ? await req.json() : undefined;
      seen.push({ method: req.method, path, body });
      if (path === "/v1/tenants/new") return json({ result: "created", tenant: view("new", "waiting", "/run/netns/new: ENOENT") } satisfies PutResult, 201);
      if (path === "/v1/tenants/same") return json({ result: "unchanged", tenant: view("same") } satisfies PutResult);
      if (path === "/v1/tenants/taken") return json({ error: "listen 127.0.0.1:8080 is taken in /run/netns/x by tenant 'y'", field: "listen" }, 400);
      if (path === "/v1/tenants/gone") return json({ error: "no tenant 'gone'" }, 404);
      if (path === "/v1/tenants/cfg") return json({ error: "tenant 'cfg' comes from the config file; edit it there" }, 409);
      if (path === "/v1/tenants") return json([view("acme"), view("globex-long-name", "failed", "EADDRINUSE")]);
      if (path === "/v1/status") {
        const s: StatusView = { version: "0.1.0", pid: 42, uptime_seconds: 3_725, workers: 2, config: null, tenants_dir: "/d", admin_socket: socket, tenants: { total: 2, serving: 1, waiting: 0, failed: 1 } };
        return json(s);
      }
      if (path === "/v1/reload") {
        const r: ReloadResult = { result: "reloaded", added: ["a"], removed: [], replaced: ["b"], unchanged: 3, skipped: [{ file: "/d/x.toml", error: "/d/x.toml:2: listen: bad" }] };
        return json(r);
      }
      return new Response(null, { status: 204 });
    },
  });
  afterAll(() => {
    server.stop(true);
    rmSync(served, { recursive: true, force: true });
  });
  const at = ["--admin-socket", socket, "--tenants-dir", join(served, "never")];

  test("add: the daemon's result and a tenant's state; the request body is the tenant table", async () => {
    expect(await cli(tenant, ["add", "new", "--netns", "new", "-H", "X-A=1", ...at])).toEqual({ out: "tenant new: created (waiting: /run/netns/new: ENOENT)\n" });
    expect(seen.at(-1)).toEqual({ method: "PUT", path: "/v1/tenants/new", body: { netns: "new", headers: { "X-A": "1" } } });
    expect(await cli(tenant, ["add", "same", "--netns", "same", ...at])).toEqual({ out: "tenant same: unchanged\n" });
    const bad = await cli(tenant, ["add", "taken", "--netns", "x", ...at]);
    expect(bad.err).toMatchObject({ message: "listen 127.0.0.1:8080 is taken in /run/netns/x by tenant 'y'", exitCode: 2, status: 400, field: "listen" });
    expect(existsSync(join(served, "never"))).toBe(false);
  });

  test("rm: removed, absent, or the daemon's refusal", async () => {
    expect(await cli(tenant, ["rm", "acme", ...at])).toEqual({ out: "tenant acme: removed\n" });
    expect(await cli(tenant, ["rm", "gone", ...at])).toEqual({ out: "tenant gone: absent (nothing to remove)\n" });
    const refused = await cli(tenant, ["rm", "cfg", ...at]);
    expect(refused.err).toMatchObject({ exitCode: 2, status: 409, message: "tenant 'cfg' comes from the config file; edit it there" });
  });

  test("ls as a table and as JSON, status, reload", async () => {
    expect((await cli(tenant, ["ls", ...at])).out).toBe(
      [
        "NAME              STATE    NETNS                        LISTEN          UPSTREAM               ERROR",
        "acme              serving  /run/netns/acme              127.0.0.1:8080  http://127.0.0.1:9000",
        "globex-long-name  failed   /run/netns/globex-long-name  127.0.0.1:8080  http://127.0.0.1:9000  EADDRINUSE",
        "",
      ].join("\n"),
    );
    const listed = JSON.parse((await cli(tenant, ["ls", "--json", ...at])).out);
    expect(listed.map((t: TenantView) => [t.name, t.state, t.error])).toEqual([["acme", "serving", undefined], ["globex-long-name", "failed", "EADDRINUSE"]]);
    expect((await cli(status, at)).out).toStartWith("nsproxy 0.1.0, pid 42, up 1h 2m 5s\n");
    expect((await cli(status, at)).out).toContain("tenants:      2 (1 serving, 0 waiting, 1 failed)\n");
    expect(JSON.parse((await cli(status, ["--json", ...at])).out).pid).toBe(42);
    expect((await cli(reload, at)).out).toBe("reloaded: 1 added (a), 0 removed, 1 replaced (b), 3 unchanged\n1 tenants-dir file(s) skipped:\n  /d/x.toml:2: listen: bad\n");
  });
});
