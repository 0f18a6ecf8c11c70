// Files dropped where the daemon looks (tenants dir, discover dir, certificate and namespace paths) cannot hang it, bloat it or forge its log.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { AdminClient } from "../src/admin/client.ts";
import { daemonDir, type Running, runNsproxy, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("hostile");
afterAll(() => cleanupNetns(prefix));

const GB = 1 << 30;
const deepKey = (n: number) => Array.from({ length: n }, (_, i) => `k${i}`).join(".");
const mkfifo = (path: string) => expect(spawnSync("mkfifo", [path]).status).toBe(0);
const sparse = (path: string) => {
  writeFileSync(path, "");
  truncateSync(path, GB); // no disk used
};

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
}

/**
 * Run `act` while polling the admin API's status; it must be answered every time, each within a second, and `act`
 * plus the log line it must cause (`line`) must come within a second (`withinMs`) with the daemon's RSS up by less than 20 MB.
 */
async function harmless(d: Running, admin: AdminClient, act: () => unknown, line: string | RegExp, withinMs = 1000): Promise<void> {
  const rss0 = rssKb(d.proc.pid);
  let polling = true;
  const slowest: number[] = [];
  const poll = (async () => {
    while (polling) {
      const t = performance.now();
      await admin.status();
      slowest.push(performance.now() - t);
      await Bun.sleep(20);
    }
  })();
  const t0 = performance.now();
  try {
    await act();
    await d.waitFor(line, 5000);
  } finally {
    polling = false;
  }
  const elapsed = performance.now() - t0;
  await poll;
  expect(elapsed).toBeLessThan(withinMs);
  expect(rssKb(d.proc.pid) - rss0).toBeLessThan(20 * 1024);
  expect(slowest.length).toBeGreaterThan(0);
  expect(Math.max(...slowest)).toBeLessThan(1000);
}

describe.skipIf(Boolean(skipReason))("hostile files", () => {
  test("a FIFO, a /dev/zero symlink, a 1 GB sparse file and a 30,000-part key in the tenants dir are skipped at reload, each in one named line; the daemon keeps answering and serving", async () => {
    const upstream = startUpstream();
    const dir = daemonDir();
    const tenantsDir = `${dir}/tenants.d`;
    mkdirSync(tenantsDir, { recursive: true });
    const admin = new AdminClient(`${dir}/admin/admin.sock`);
    const ns = addNetns(`${prefix}ok`);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8700", "-u", `http://127.0.0.1:${upstream.port}`, "-n", ns, "--no-access-log", "--admin-socket", `${dir}/admin/admin.sock`, "--tenants-dir", tenantsDir]);
    try {
      await d.waitFor("attached 1/1");
      const cases: [string, (file: string) => void, string][] = [
        ["fifo", mkfifo, "a FIFO, not a regular file"],
        ["zero", (f) => symlinkSync("/dev/zero", f), "a character device, not a regular file"],
        ["sparse", sparse, "larger than 1048576 bytes"],
        ["deep", (f) => writeFileSync(f, `netns = "${ns}"\n${deepKey(30_000)} = 1\n`), "a key nested deeper than 16 levels"],
      ];
      for (const [name, make, why] of cases) {
        const file = `${tenantsDir}/${name}.toml`;
        make(file);
        const esc = file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
        await harmless(d, admin, () => admin.reload(), new RegExp(`tenants dir: skipping ${esc}: .*${why}`));
      }
      // One line per file and reload: the last reload named each file once.
      const lines = d.stderr().split("\n");
      for (const [name] of cases) expect(lines.filter((l) => l.includes(`skipping ${tenantsDir}/${name}.toml`)).length).toBe(4 - cases.findIndex((c) => c[0] === name));
      expect((await curlIn(ns, "http://127.0.0.1:8700/")).status).toBe(200);

      // `check` over the same directory: refused at once, naming the files.
      const t0 = performance.now();
      const check = await runNsproxy(["check", "-l", "127.0.0.1:8700", "-u", "http://127.0.0.1:9", "--tenants-dir", tenantsDir]);
      expect(performance.now() - t0).toBeLessThan(10_000); // a process start under a loaded 2-core box, not the file
      expect(check.code).toBe(2);
      for (const [name] of cases) expect(check.stderr).toContain(`${tenantsDir}/${name}.toml`);
    } finally {
      await d.stop();
      upstream.stop(true);
    }
  }, 60_000);

  test("a FIFO or a 1 GB file where a namespace or a certificate is expected fails that tenant alone, at once", async () => {
    const upstream = startUpstream();
    const dir = daemonDir();
    const admin = new AdminClient(`${dir}/admin/admin.sock`);
    const ns = addNetns(`${prefix}ok2`);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8701", "-u", `http://127.0.0.1:${upstream.port}`, "-n", ns, "--no-access-log", "--admin-socket", `${dir}/admin/admin.sock`, "--tenants-dir", `${dir}/tenants.d`]);
    try {
      await d.waitFor("attached 1/1");
      const fifo = `${dir}/ns-fifo`;
      mkfifo(fifo);
      let put: Awaited<ReturnType<AdminClient["putTenant"]>> | undefined;
      await harmless(d, admin, async () => (put = await admin.putTenant("fifo", { netns: fifo, listen: "127.0.0.1:8702" })), "tenant fifo:");
      expect(put!.tenant.state).not.toBe("serving");
      expect(d.stderr()).toContain(`open namespace ${fifo}: a FIFO, not a regular file`);

      const big = `${dir}/big.pem`;
      sparse(big);
      await harmless(d, admin, () => admin.putTenant("bigcert", { netns: ns, listen: "https://127.0.0.1:8703", tls_cert: big, tls_key: big }), `tls_cert ${big}: larger than 1048576 bytes`);
      expect((await admin.tenants()).find((t) => t.name === "bigcert")?.state).toBe("failed");
      expect((await curlIn(ns, "http://127.0.0.1:8701/")).status).toBe(200);
    } finally {
      await d.stop();
      upstream.stop(true);
    }
  }, 60_000);

  test("a FIFO in a discover directory is skipped with one line, and a file name holding a newline cannot forge a log line", async () => {
    const upstream = startUpstream();
    const dir = daemonDir();
    const admin = new AdminClient(`${dir}/admin/admin.sock`);
    const found = `${dir}/found`;
    mkdirSync(found);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8704", "-u", `http://127.0.0.1:${upstream.port}`, "--discover", `${found}=*`, "--no-access-log", "--admin-socket", `${dir}/admin/admin.sock`, "--tenants-dir", `${dir}/tenants.d`]);
    try {
      await d.waitFor("attached 0/0");
      // Discovery looks at least once a second (sooner on a file-system event, which Deno does not watch for).
      await harmless(d, admin, () => mkfifo(`${found}/pipe`), `discover: skipping ${found}/pipe: a FIFO, not a namespace file`, 2000);
      const forged = "2030-01-01T00:00:00.000Z error  forged";
      await harmless(d, admin, () => writeFileSync(`${found}/evil\n${forged}`, ""), `discover: skipping ${found}/evil\\n${forged}`, 2000);
      await Bun.sleep(2500); // two more discovery passes: still one line each
      const lines = d.stderr().split("\n");
      expect(lines.filter((l) => l.startsWith(forged))).toEqual([]);
      expect(lines.filter((l) => l.includes(`${found}/pipe`)).length).toBe(1);
      expect(lines.filter((l) => l.includes(`${found}/evil`)).length).toBe(1);
      expect((await admin.status()).tenants).toMatchObject({ total: 0 });
    } finally {
      await d.stop();
      upstream.stop(true);
    }
  }, 60_000);
});
