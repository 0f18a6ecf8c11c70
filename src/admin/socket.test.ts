// Tests for serveAdmin on real unix sockets in a temporary directory: modes, a second daemon, stale and foreign files.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NsproxyError } from "../errors.ts";
import { createAdminApp } from "./server.ts";
import { type AdminServer, serveAdmin, serveAdminBeside } from "./socket.ts";
import type { DaemonControl, StatusView } from "./types.ts";

const root = mkdtempSync(join(tmpdir(), "nsproxy-admin-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let dirs = 0;
/** A fresh directory under root for each test, so no test sees another's socket. */
const freshDir = () => join(root, `t${++dirs}`);

const status = (admin_socket: string): StatusView => ({
  version: "0.1.0",
  pid: process.pid,
  uptime_seconds: 0,
  workers: 1,
  config: null,
  tenants_dir: "/etc/nsproxy/tenants.d",
  admin_socket,
  tenants: { total: 0, serving: 0, waiting: 0, failed: 0 },
});

const app = (label = "test") =>
  createAdminApp({
    status: () => ({ ...status(label) }),
    tenants: () => [],
    putTenant: () => Promise.reject(new Error("unused")),
    deleteTenant: async () => false,
    reload: () => Promise.reject(new Error("unused")),
  } satisfies DaemonControl);

const running: AdminServer[] = [];
async function serve(path: string, label?: string): Promise<AdminServer> {
  const server = await serveAdmin(path, app(label));
  running.push(server);
  return server;
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

const perms = (path: string) => lstatSync(path).mode & 0o777;
const getStatus = async (unix: string) => (await (await fetch("http://localhost/v1/status", { unix })).json()) as StatusView;

/** A socket left behind by a process that died without cleaning up. */
async function staleSocket(path: string): Promise<void> {
  const script = `Bun.serve({ unix: ${JSON.stringify(path)}, fetch: () => new Response("") }); setInterval(() => {}, 1000);`;
  const child = Bun.spawn([process.execPath, "-e", script], { stdout: "ignore", stderr: "inherit" });
  while (!existsSync(path)) await Bun.sleep(5);
  child.kill("SIGKILL");
  await child.exited;
}

async function rejection(promise: Promise<unknown>): Promise<NsproxyError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(NsproxyError);
  return err as NsproxyError;
}

describe("serveAdmin", () => {
  test("creates the directory 0700 and the socket 0600, and answers on it", async () => {
    const dir = join(freshDir(), "nested");
    const path = join(dir, "admin.sock");
    const server = await serve(path, "first");
    expect(server.path).toBe(path);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "..")).mode & 0o777).toBe(0o700);
    expect(lstatSync(path).isSocket()).toBe(true);
    expect(perms(path)).toBe(0o600);
    expect(await getStatus(path)).toMatchObject({ admin_socket: "first", pid: process.pid });
  });

  test("restores the process umask", async () => {
    const before = process.umask();
    await serve(join(freshDir(), "admin.sock"));
    expect(process.umask()).toBe(before);
  });

  test("leaves only the socket in its directory", async () => {
    const dir = freshDir();
    await serve(join(dir, "admin.sock"));
    expect(readdirSync(dir)).toEqual(["admin.sock"]);
  });

  test("stop() removes the socket; a second stop() is harmless", async () => {
    const dir = freshDir();
    const path = join(dir, "admin.sock");
    const server = await serveAdmin(path, app());
    await getStatus(path); // a kept-alive client connection must not hold stop() up
    await server.stop();
    expect(existsSync(path)).toBe(false);
    await server.stop();
    expect(readdirSync(dir)).toEqual([]);
  });

  test("refuses to start when another daemon answers on the path", async () => {
    const path = join(freshDir(), "admin.sock");
    await serve(path, "first");
    const err = await rejection(serveAdmin(path, app("second")));
    expect(err.message).toBe(`another nsproxy is already running at ${path} (pid ${process.pid}); stop it first, replace it with \`nsproxy upgrade\`, or choose another admin socket`);
    expect(err.exitCode).toBe(1);
    expect(await getStatus(path)).toMatchObject({ admin_socket: "first" });
  });

  test("replaces a stale socket", async () => {
    const path = join(freshDir(), "admin.sock");
    mkdirSync(join(path, ".."), { mode: 0o700 });
    await staleSocket(path);
    expect(lstatSync(path).isSocket()).toBe(true);
    await serve(path, "new");
    expect(perms(path)).toBe(0o600);
    expect(await getStatus(path)).toMatchObject({ admin_socket: "new" });
  });

  test("refuses, and leaves alone, a live socket that does not answer HTTP", async () => {
    const path = join(freshDir(), "admin.sock");
    mkdirSync(join(path, ".."), { mode: 0o700 });
    const other = Bun.listen({ unix: path, socket: { open: (socket) => void socket.end(), data: () => {} } });
    try {
      const err = await rejection(serveAdmin(path, app()));
      expect(err.message).toStartWith(`${path}: `);
      expect(err.message).toEndWith(`; another nsproxy may be already running there (remove ${path} if it is not)`);
      expect(lstatSync(path).isSocket()).toBe(true);
    } finally {
      other.stop(true);
    }
  });

  test("refuses a regular file at the path and leaves it intact", async () => {
    const path = join(freshDir(), "admin.sock");
    mkdirSync(join(path, ".."), { mode: 0o700 });
    writeFileSync(path, "not a socket");
    const err = await rejection(serveAdmin(path, app()));
    expect(err.message).toBe(`${path} exists and is not a socket; refusing to replace it with the admin socket`);
    expect(readFileSync(path, "utf8")).toBe("not a socket");
  });

  test("refuses an existing directory that others can write", async () => {
    const dir = freshDir();
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const err = await rejection(serveAdmin(join(dir, "admin.sock"), app()));
    expect(err.message).toContain(`admin socket directory ${dir} is writable by others (mode 0777)`);
    expect(existsSync(join(dir, "admin.sock"))).toBe(false);
  });

  test("leaves an existing private directory's mode alone", async () => {
    const dir = freshDir();
    mkdirSync(dir);
    chmodSync(dir, 0o750);
    await serve(join(dir, "admin.sock"));
    expect(statSync(dir).mode & 0o777).toBe(0o750);
  });

  test("stop() leaves a socket that another server has put at the path since", async () => {
    const dir = freshDir();
    const path = join(dir, "admin.sock");
    const first = await serveAdmin(path, app("first"));
    renameSync(path, join(dir, "moved.sock")); // the path is free again: a second server may take it
    await serve(path, "second");
    await first.stop();
    expect(await getStatus(path)).toMatchObject({ admin_socket: "second" });
  });
});

describe("serveAdminBeside (an upgrade's successor)", () => {
  // A new connection each time: a kept one stays with the server it reached (the daemon answers with
  // Connection: close during an upgrade for that reason).
  const getStatus = async (unix: string) => (await (await fetch("http://localhost/v1/status", { unix, headers: { connection: "close" } })).json()) as StatusView;

  test("at the same path: served at a private name until publish() replaces the old socket in one rename", async () => {
    const path = join(freshDir(), "admin.sock");
    await serve(path, "old");
    const next = await serveAdminBeside(path, app("new"), path);
    running.push(next);
    expect(next.moved).toBe(false);
    expect(await getStatus(path)).toMatchObject({ admin_socket: "old" });
    next.publish();
    expect(await getStatus(path)).toMatchObject({ admin_socket: "new" });
    expect(next.owned()).toBe(true);
  });

  test("at a new path (admin_socket changed): a live server there is refused, as at a first start", async () => {
    const old = join(freshDir(), "admin.sock");
    const path = join(freshDir(), "admin.sock");
    await serve(old, "old");
    await serve(path, "someone");
    const err = await rejection(serveAdminBeside(path, app("new"), old));
    expect(err.message).toStartWith(`another nsproxy is already running at ${path} (pid ${process.pid})`);
    expect(await getStatus(path)).toMatchObject({ admin_socket: "someone" });
  });

  test("at a new path: a stale socket is removed, publish() links it there, and fails if someone got there first", async () => {
    const old = join(freshDir(), "admin.sock");
    await serve(old, "old");
    const path = join(freshDir(), "admin.sock");
    mkdirSync(join(path, ".."), { mode: 0o700 });
    await staleSocket(path);
    const next = await serveAdminBeside(path, app("new"), old);
    running.push(next);
    expect(next.moved).toBe(true);
    expect(existsSync(path)).toBe(false);
    next.publish();
    expect(await getStatus(path)).toMatchObject({ admin_socket: "new" });
    expect(await getStatus(old)).toMatchObject({ admin_socket: "old" });

    const late = join(freshDir(), "admin.sock");
    const other = await serveAdminBeside(late, app("late"), old);
    running.push(other);
    writeFileSync(late, "someone got there first");
    expect(() => other.publish()).toThrow("EEXIST");
    expect(readFileSync(late, "utf8")).toBe("someone got there first");
  });
});
