// Least privilege on real namespaces: started as root with --user, or as a user with ambient capabilities (setpriv),
// every thread ends up with the user's ids, only the capabilities needed, the same bounding set and no_new_privs.
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { AdminClient } from "../src/admin/client.ts";
import type { TenantView } from "../src/admin/types.ts";
import { daemonDir, ensureBuilt, type Running, runNsproxy, SOURCE_CLI, skipOnDeno, startNsproxy } from "./helpers/daemon.ts";
import { haveOpenssl, makeCa, makeLeaf } from "./helpers/certs.ts";
import { addNetns, cleanupNetns, curlIn, delNetns, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";
import { until } from "./helpers/wait.ts";

const prefix = uniquePrefix("lp");
afterAll(() => cleanupNetns(prefix));

const NOBODY = 65534;
const SYS_ADMIN = 1n << 21n;
const NET_BIND_SERVICE = 1n << 10n;
const haveSetpriv = spawnSync("setpriv", ["--version"]).status === 0;
const skip = skipReason ?? (haveSetpriv ? undefined : "setpriv (util-linux) is not installed") ?? (haveOpenssl ? undefined : "openssl is not installed");

interface TaskCreds {
  tid: string;
  uid: string;
  gid: string;
  eff: bigint;
  prm: bigint;
  bnd: bigint;
  amb: bigint;
  nnp: string;
}

/** Every thread's credentials, from /proc/PID/task/TID/status. */
function tasks(pid: number): TaskCreds[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const s = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
    const f = (k: string) => s.match(new RegExp(`^${k}:\\s*(.*)$`, "m"))![1]!.trim();
    return { tid, uid: f("Uid"), gid: f("Gid"), eff: BigInt(`0x${f("CapEff")}`), prm: BigInt(`0x${f("CapPrm")}`), bnd: BigInt(`0x${f("CapBnd")}`), amb: BigInt(`0x${f("CapAmb")}`), nnp: f("NoNewPrivs") };
  });
}

function expectEveryThread(pid: number, caps: bigint): void {
  const all = tasks(pid);
  expect(all.length).toBeGreaterThan(2); // the main thread and the workers at least
  for (const t of all) {
    expect({ tid: t.tid, uid: t.uid, gid: t.gid, eff: t.eff, prm: t.prm, bnd: t.bnd, amb: t.amb, nnp: t.nnp }).toEqual({
      tid: t.tid,
      uid: `${NOBODY}\t${NOBODY}\t${NOBODY}\t${NOBODY}`,
      gid: `${NOBODY}\t${NOBODY}\t${NOBODY}\t${NOBODY}`,
      eff: caps,
      prm: caps,
      bnd: caps,
      amb: caps,
      nnp: "1",
    });
  }
}

/** A directory nobody can traverse (the test's own are root's 0700). */
function openDir(): string {
  const dir = daemonDir();
  chmodSync(dir, 0o755);
  return dir;
}

const state = async (admin: AdminClient, name: string) => (await admin.tenants()).find((t: TenantView) => t.name === name)?.state;

/** Two tenants serve; a third is added live; a deleted namespace is followed and re-attached; HTTPS serves with the user's own key. */
async function exercise(d: Running, admin: AdminClient, ns: { a: string; b: string; c: string }, plainPort: number, caps: bigint): Promise<void> {
  await d.waitFor("attached 2/2");
  expectEveryThread(d.proc.pid, caps);
  for (const n of [ns.a, ns.b]) {
    const r = await curlIn(n, `http://127.0.0.1:${plainPort}/`);
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as Echo).headers["x-nsproxy-tenant"]).toBe(n);
  }
  const tls = await curlIn(ns.a, "https://127.0.0.1:8443/", ["-k"]);
  expect(tls.status).toBe(200);
  expect((JSON.parse(tls.body) as Echo).headers["x-nsproxy-tenant"]).toBe(ns.a);

  const added = await admin.putTenant("live", { netns: `/run/netns/${ns.c}`, listen: "127.0.0.1:8150" });
  expect(added.tenant.state).toBe("serving");
  expect((await curlIn(ns.c, "http://127.0.0.1:8150/")).status).toBe(200);

  delNetns(ns.b);
  await until("the deleted namespace's tenant to wait", async () => (await state(admin, ns.b)) === "waiting");
  addNetns(ns.b);
  await until("the re-created namespace to be served", async () => (await state(admin, ns.b)) === "serving", 10_000);
  expect((await curlIn(ns.b, `http://127.0.0.1:${plainPort}/`)).status).toBe(200);
  // Threads started since (connections, the follower) have the same credentials.
  expectEveryThread(d.proc.pid, caps);
  expect(d.stderr()).not.toContain("bug in nsproxy");
}

describe.skipIf(Boolean(skip))("least privilege", () => {
  const upstream = startUpstream();
  afterAll(() => upstream.stop(true));
  const certDir = `${openDir()}/certs`;
  let leaf: { cert: string; key: string };
  const certs = () => {
    if (!leaf) {
      leaf = makeLeaf(makeCa(certDir), `${certDir}/leaf`, "nsproxy");
      // Readable by the daemon's user only: what a real deployment does with a key.
      for (const f of [leaf.cert, leaf.key]) {
        chownSync(f, NOBODY, NOBODY);
        chmodSync(f, 0o600);
      }
      chmodSync(certDir, 0o755);
    }
    return ["--tls-cert", leaf.cert, "--tls-key", leaf.key];
  };

  const asUser = (label: string, command: () => string[] | undefined, why?: string, extra: () => string[] = () => []) =>
    test.skipIf(Boolean(why))(`${label}: --user nobody from root, a port below 1024 (CAP_NET_BIND_SERVICE kept)`, async () => {
      const dir = openDir();
      const admin = new AdminClient(`${dir}/admin/admin.sock`);
      const ns = { a: addNetns(`${prefix}a`), b: addNetns(`${prefix}b`), c: addNetns(`${prefix}c`) };
      const d = startNsproxy(
        ["run", "--user", "nobody", "-l", "127.0.0.1:80", "-l", "https://127.0.0.1:8443", ...certs(), "-u", `http://127.0.0.1:${upstream.port}`, "-n", ns.a, "-n", ns.b, "-w", "2", "--admin-socket", `${dir}/admin/admin.sock`, "--tenants-dir", `${dir}/tenants.d`, ...extra()],
        { command: command() },
      );
      try {
        await d.waitFor("attached 2/2", 30_000);
        expect(d.stderr()).toMatch(/running as nobody \(uid 65534, gid 65534\) with CAP_SYS_ADMIN \(to enter tenant namespaces \(setns\)\), CAP_NET_BIND_SERVICE \(tenant \S+ listens on port 80 \(127\.0\.0\.1:80\), below 1024\); no_new_privs set; bounding set reduced to the same/);
        await exercise(d, admin, ns, 80, SYS_ADMIN | NET_BIND_SERVICE);
        // The directories it writes were made its own before the drop; the tenant added live was stored there.
        expect(readFileSync(`${dir}/tenants.d/live.toml`, "utf8")).toContain("127.0.0.1:8150");
      } finally {
        await d.stop("SIGKILL");
        for (const n of Object.values(ns)) delNetns(n);
      }
    }, 90_000);

  asUser("source", () => undefined);
  // The binary with --lib-dir: the library is written there as root and opened there as nobody, by every thread.
  asUser("binary", () => [ensureBuilt()], skipOnDeno("the compiled binary is Bun's"), () => ["--lib-dir", openDir()]);

  test("setpriv as nobody with ambient SYS_ADMIN, NET_BIND_SERVICE, SETPCAP and no port below 1024: keeps CAP_SYS_ADMIN only, bounding set too", async () => {
    const dir = openDir();
    for (const sub of ["admin", "tenants.d"]) {
      mkdirSync(`${dir}/${sub}`, { mode: 0o700 });
      chownSync(`${dir}/${sub}`, NOBODY, NOBODY);
    }
    const admin = new AdminClient(`${dir}/admin/admin.sock`);
    const ns = { a: addNetns(`${prefix}pa`), b: addNetns(`${prefix}pb`), c: addNetns(`${prefix}pc`) };
    const caps = "+sys_admin,+net_bind_service,+setpcap";
    const setpriv = ["setpriv", "--reuid", String(NOBODY), "--regid", String(NOBODY), "--clear-groups", "--inh-caps", caps, "--ambient-caps", caps, "--"];
    const d = startNsproxy(
      ["run", "-l", "127.0.0.1:8140", "-l", "https://127.0.0.1:8443", ...certs(), "-u", `http://127.0.0.1:${upstream.port}`, "-n", ns.a, "-n", ns.b, "-w", "2", "--admin-socket", `${dir}/admin/admin.sock`, "--tenants-dir", `${dir}/tenants.d`],
      { command: [...setpriv, ...SOURCE_CLI] },
    );
    try {
      await d.waitFor("attached 2/2", 30_000);
      expect(d.stderr()).toContain("running as nobody (uid 65534, gid 65534) with CAP_SYS_ADMIN (to enter tenant namespaces (setns)); no_new_privs set; bounding set reduced to the same");
      expect(d.stderr()).not.toContain("not running as root");
      await exercise(d, admin, ns, 8140, SYS_ADMIN);
    } finally {
      await d.stop("SIGKILL");
      for (const n of Object.values(ns)) delNetns(n);
    }
  }, 90_000);
});

/** Run a command in a mount namespace of its own with `propagation`, after mounting a noexec tmpfs on each of `noexec`. */
function inMountNs(propagation: "private" | "slave", noexec: string[], env = ""): string[] {
  const mounts = noexec.map((d) => `mount -t tmpfs -o noexec none ${d} && `).join("");
  return ["unshare", "--mount", "--propagation", propagation, "sh", "-c", `${mounts}${env} exec "$@"`, "sh"];
}

describe.skipIf(Boolean(skipReason))("where the C library goes, and mount propagation", () => {
  const tenant = () => ["-l", "127.0.0.1:8080", "-u", "http://127.0.0.1:9", "-n", addNetns(`${prefix}m${Math.random().toString(36).slice(2, 6)}`)];

  test.skipIf(Boolean(skipOnDeno("the embedded library and its TMPDIR copy are the compiled binary's")))("binary: a noexec TMPDIR is named with the way out; --lib-dir elsewhere works", async () => {
    const bin = ensureBuilt();
    const tmp = daemonDir();
    const lib = daemonDir();
    const bad = await runNsproxy(["check", ...tenant()], { command: [...inMountNs("private", [tmp], `TMPDIR=${tmp}`), bin] });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`cannot load the C library embedded in the binary`);
    expect(bad.stderr).toContain(`${tmp} is on the mount ${tmp}, mounted noexec`);
    expect(bad.stderr).toContain("pass --lib-dir DIR");
    const good = await runNsproxy(["check", ...tenant(), "--lib-dir", lib], { command: [...inMountNs("private", [tmp], `TMPDIR=${tmp}`), bin] });
    expect(good.stdout).toContain("1/1 namespaces open now");
    expect(good.code).toBe(0);
    // run: the workers (threads of their own) load the same copy.
    const d = startNsproxy(["run", ...tenant(), "--lib-dir", lib, "-w", "2"], { command: [...inMountNs("slave", [tmp], `TMPDIR=${tmp}`), bin] });
    try {
      await d.waitFor("attached 1/1", 30_000);
      expect(d.stderr()).not.toContain("cannot load");
    } finally {
      await d.stop("SIGKILL");
    }
    expect(readdirSync(lib).filter((f) => /^libnetns-[0-9a-f]{16}\.so$/.test(f))).toHaveLength(1);
  }, 60_000);

  test("--lib-dir on a noexec mount: an error naming the directory", async () => {
    const lib = daemonDir();
    const r = await runNsproxy(["run", ...tenant(), "--lib-dir", lib], { command: [...inMountNs("slave", [lib]), ...SOURCE_CLI] });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`lib_dir: ${lib} is on the mount ${lib}, mounted noexec`);
  }, 60_000);

  test("private propagation is a warning with what to change; slave propagation is not", async () => {
    const priv = await runNsproxy(["check", ...tenant()], { command: [...inMountNs("private", []), ...SOURCE_CLI] });
    expect(priv.code).toBe(0);
    expect(priv.stderr).toContain("mount namespace: /run/netns is on the mount");
    expect(priv.stderr).toContain("private propagation");
    expect(priv.stderr).toContain("MountFlags=slave");
    const slave = await runNsproxy(["check", ...tenant()], { command: [...inMountNs("slave", []), ...SOURCE_CLI] });
    expect(slave.code).toBe(0);
    expect(slave.stderr).not.toContain("private propagation");
  }, 60_000);
});
