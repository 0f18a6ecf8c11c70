// The product as shipped: dist/nsproxy copied alone into an empty directory, no bun, no node_modules, no PATH to them.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { ensureBuilt, runNsproxy, skipOnDeno, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, nsExec, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("bin");
const dir = mkdtempSync(`${tmpdir()}/nsproxy-bin-`);
const lonely = `${dir}/nsproxy`;
/** A bare environment: the binary must need nothing from this checkout or its tools. */
const bare = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", lonely];
const denoSkip = skipOnDeno("dist/nsproxy is a Bun executable (bun build --compile)");

beforeAll(async () => {
  if (denoSkip) return;
  copyFileSync(ensureBuilt(), lonely);
  expect(statSync(lonely).mode & 0o111).not.toBe(0);
});

afterAll(() => {
  cleanupNetns(prefix);
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(Boolean(denoSkip))("compiled binary", () => {
  test("--version works alone", async () => {
    const r = await runNsproxy(["--version"], { command: bare });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^nsproxy \d+\.\d+\.\d+/);
  });

  test("a bad flag is a usage error (exit 2)", async () => {
    const r = await runNsproxy(["run", "--no-such-flag"], { command: bare });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--no-such-flag");
  });

  test.skipIf(Boolean(skipReason))("serves two tenants from an empty directory", async () => {
    const upstream = startUpstream();
    const a = addNetns(`${prefix}a`);
    const b = addNetns(`${prefix}b`);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8085", "-u", `http://127.0.0.1:${upstream.port}`, "-n", a, "-n", `blue=/run/netns/${b}`], { command: bare, cwd: dir });
    try {
      await d.waitFor("attached 2/2");
      const ra = await curlIn(a, "http://127.0.0.1:8085/x");
      const rb = await curlIn(b, "http://127.0.0.1:8085/x");
      expect((JSON.parse(ra.body) as Echo).headers["x-nsproxy-tenant"]).toBe(a);
      expect((JSON.parse(rb.body) as Echo).headers["x-nsproxy-tenant"]).toBe("blue");
      expect(await d.stop("SIGTERM")).toBe(0);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  });

  test.skipIf(Boolean(skipReason))("ignores every fault-injection switch (they exist for tests of a source run)", async () => {
    const upstream = startUpstream();
    const a = addNetns(`${prefix}f`);
    const faults = [`NSPROXY_FAULT_STRAND_TENANT=${a}`, `NSPROXY_FAULT_WORKER_THROW=${a}`, `NSPROXY_FAULT_WORKER_EXIT=${a}`, "NSPROXY_FAULT_TENANT_WRITE=torn"];
    const armed = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", ...faults, lonely];
    const run = ["--admin-socket", `${dir}/f/admin.sock`, "--tenants-dir", `${dir}/f/tenants.d`];
    // A tenant stored with no daemon running: the torn-write switch would kill this process.
    const add = await runNsproxy(["tenant", "add", "stored", "--netns", a, "--listen", "127.0.0.1:8087", ...run], { command: armed });
    expect(add.code).toBe(0);
    expect(existsSync(`${dir}/f/tenants.d/stored.toml`)).toBe(true);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8086", "-u", `http://127.0.0.1:${upstream.port}`, "-n", a, "-w", "2", ...run], { command: armed, cwd: dir });
    try {
      await d.waitFor("attached 2/2");
      for (const port of [8086, 8087]) {
        expect((await curlIn(a, `http://127.0.0.1:${port}/x`)).status).toBe(200);
        expect((await nsExec(a, ["ss", "-Hltn", `sport = :${port}`])).stdout.trim().split("\n").length).toBe(2);
      }
      expect(d.stderr()).not.toContain("fault injection");
      expect(d.stderr()).not.toContain("terminated");
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  });
});
