// The release as a user downloads it: `npm run release` once, then each binary's needs read with readelf, the x64
// one run alone from an empty directory, the arm64 one under qemu-user; and libnetns, which has no C library.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { libPath } from "../build.ts";
import { enterNetnsRaw, errorText, failNextEnter, NativeError, netnsIdentity, openNetns, openOwnNetns, probeBindRaw } from "../src/netns/native.ts";
import { BUN, runNsproxy, skipOnDeno, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, skipReason } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";

const ROOT = `${import.meta.dir}/..`;
const RELEASE = `${ROOT}/dist/release`;
const ARM64_SYSROOT = "/usr/aarch64-linux-gnu"; // Debian's arm64 glibc, which gcc-aarch64-linux-gnu brings

const missingTools = ["readelf", "aarch64-linux-gnu-gcc", "sha256sum"].filter((t) => !Bun.which(t));
const buildSkip =
  skipOnDeno("the release binaries embed the Bun runtime") ?? (missingTools.length > 0 ? `needs ${missingTools.join(", ")} (bash scripts/setup.sh test installs them)` : undefined);
const qemuSkip =
  buildSkip ??
  (!Bun.which("qemu-aarch64") ? "needs qemu-user (qemu-aarch64) to run the arm64 binary" : !existsSync(`${ARM64_SYSROOT}/lib/ld-linux-aarch64.so.1`) ? `needs arm64 glibc in ${ARM64_SYSROOT}` : undefined);
if (buildSkip && !buildSkip.startsWith("not under Deno")) console.warn(`release tests skipped: ${buildSkip}`);
else if (qemuSkip) console.warn(`arm64 run skipped: ${qemuSkip}`);

/** What each artifact asks of the system it lands on: what the README's Install section says. */
const GLIBC_LIBS = ["libc.so.6", "libdl.so.2", "libm.so.6", "libpthread.so.0"];
const ARTIFACTS = [
  { name: "linux-x64", machine: "X86-64", interpreter: "/lib64/ld-linux-x86-64.so.2", needed: [...GLIBC_LIBS, "ld-linux-x86-64.so.2"] },
  { name: "linux-x64-musl", machine: "X86-64", interpreter: "/lib/ld-musl-x86_64.so.1", needed: ["libc.musl-x86_64.so.1", "libstdc++.so.6"] },
  { name: "linux-arm64", machine: "AArch64", interpreter: "/lib/ld-linux-aarch64.so.1", needed: [...GLIBC_LIBS, "ld-linux-aarch64.so.1"] },
  { name: "linux-arm64-musl", machine: "AArch64", interpreter: "/lib/ld-musl-aarch64.so.1", needed: ["libc.musl-aarch64.so.1", "libstdc++.so.6"] },
];
const OLDEST_GLIBC = "2.17";

function readelf(...args: string[]): string {
  const r = Bun.spawnSync(["readelf", "-W", ...args], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`readelf ${args.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

const needed = (file: string) => [...readelf("-d", file).matchAll(/\(NEEDED\)\s+Shared library: \[(.+?)\]/g)].map((m) => m[1]!).sort();
const machine = (file: string) => /Machine:\s+(.+)/.exec(readelf("-h", file))?.[1]?.trim();
/** The newest GLIBC_x.y the file's symbols need ("" for none). */
function newestGlibc(file: string): string {
  const versions = [...readelf("-V", file).matchAll(/Name: GLIBC_([\d.]+)/g)].map((m) => m[1]!);
  return versions.sort((a, b) => (newer(a, b) ? -1 : newer(b, a) ? 1 : 0))[0] ?? "";
}
function newer(a: string, b: string): boolean {
  const [x, y] = [a.split(".").map(Number), b.split(".").map(Number)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
  return false;
}

beforeAll(() => {
  if (buildSkip) return;
  const build = Bun.spawnSync([BUN, `${ROOT}/build.ts`, "--release"], { stdout: "pipe", stderr: "pipe" });
  if (build.exitCode !== 0) throw new Error(`npm run release failed:\n${build.stdout.toString()}${build.stderr.toString()}`);
}, 180_000);

describe.skipIf(Boolean(buildSkip))("libnetns.so, one per architecture", () => {
  for (const [arch, file, expected] of [
    ["x64", libPath("x64"), "X86-64"],
    ["arm64", libPath("arm64"), "AArch64"],
  ] as const) {
    test(`${arch}: no NEEDED entry, no symbol version, nothing from the process but environ`, () => {
      expect(machine(file)).toContain(expected);
      expect(needed(file)).toEqual([]);
      expect(readelf("-V", file)).toContain("No version information found");
      // Undefined dynamic symbols: only `environ`, weak (nsx_exec's inheritance), which glibc and musl both define.
      const undefinedSyms = readelf("--dyn-syms", file)
        .split("\n")
        .filter((l) => /\sUND\s+\S+$/.test(l) && !/\s0\s+NOTYPE\s+LOCAL/.test(l))
        .map((l) => l.trim().split(/\s+/).slice(4).join(" "));
      expect(undefinedSyms).toEqual(["WEAK DEFAULT UND environ"]);
    });
  }
});

describe.skipIf(Boolean(buildSkip))("release artifacts", () => {
  test("four binaries and SHA256SUMS that sha256sum -c accepts", () => {
    const sums = readFileSync(`${RELEASE}/SHA256SUMS`, "utf8");
    expect(sums.trim().split("\n").map((l) => l.split(/\s+/)[1])).toEqual(ARTIFACTS.map((a) => `nsproxy-${a.name}`));
    const check = Bun.spawnSync(["sha256sum", "-c", "SHA256SUMS"], { cwd: RELEASE, stdout: "pipe", stderr: "pipe" });
    expect(check.exitCode).toBe(0);
    for (const a of ARTIFACTS) expect(statSync(`${RELEASE}/nsproxy-${a.name}`).mode & 0o111).not.toBe(0);
  });

  for (const a of ARTIFACTS) {
    test(`${a.name}: interpreter ${a.interpreter}, needs ${a.needed.length} libraries${a.name.endsWith("musl") ? " (libstdc++ among them)" : `, glibc ${OLDEST_GLIBC}`}`, () => {
      const file = `${RELEASE}/nsproxy-${a.name}`;
      expect(machine(file)).toContain(a.machine);
      expect(readelf("-l", file)).toContain(`[Requesting program interpreter: ${a.interpreter}]`);
      expect(needed(file)).toEqual([...a.needed].sort());
      const newest = newestGlibc(file);
      if (a.name.endsWith("musl")) {
        expect(newest).toBe("");
      } else {
        expect(newest).not.toBe("");
        expect([newest, newer(newest, OLDEST_GLIBC) ? `newer than ${OLDEST_GLIBC}` : "ok"]).toEqual([newest, "ok"]);
      }
    });
  }
});

describe.skipIf(Boolean(buildSkip))("the x64 binary alone in an empty directory", () => {
  const dir = mkdtempSync(`${tmpdir()}/nsproxy-release-`);
  const lonely = `${dir}/nsproxy-linux-x64`;
  const bare = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", lonely];
  const prefix = `nspt-rel-${process.pid}-${Math.random().toString(36).slice(2, 6)}-`;
  afterAll(() => {
    cleanupNetns(prefix);
    rmSync(dir, { recursive: true, force: true });
  });

  test("`version` names the commit, the embedded runtime and the target", async () => {
    copyFileSync(`${RELEASE}/nsproxy-linux-x64`, lonely);
    const r = await runNsproxy(["version"], { command: bare });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^nsproxy \d+\.\d+\.\d+/);
    expect(r.stdout).toContain(`runtime: bun ${Bun.version}\n`);
    expect(r.stdout).toContain("target:  linux-x64\n");
    expect(r.stdout).toMatch(/commit: {2}\S+\n/);
  });

  test.skipIf(Boolean(skipReason))("proxies a tenant's request to a host upstream with the tenant's stamp", async () => {
    const upstream = startUpstream();
    const ns = addNetns(`${prefix}a`);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8080", "-u", `http://127.0.0.1:${upstream.port}`, "-n", ns], { command: bare, cwd: dir });
    try {
      await d.waitFor("attached 1/1");
      const r = await curlIn(ns, "http://127.0.0.1:8080/hello", ["-H", "X-Nsproxy-Tenant: forged"]);
      expect(r.status).toBe(200);
      const echo = JSON.parse(r.body) as Echo;
      expect(echo.url).toEndWith("/hello");
      expect(echo.rawTenantHeaders).toEqual([ns]);
      expect(await d.stop("SIGTERM")).toBe(0);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  });
});

describe.skipIf(Boolean(qemuSkip))("the arm64 binary under qemu-user", () => {
  const qemu = ["qemu-aarch64", "-L", ARM64_SYSROOT, `${RELEASE}/nsproxy-linux-arm64`];

  test("answers --version and version", async () => {
    const r = await runNsproxy(["--version"], { command: qemu });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^nsproxy \d+\.\d+\.\d+/);
    const v = await runNsproxy(["version"], { command: qemu });
    expect(v.stdout).toContain("target:  linux-arm64\n");
  });

  test("loads its own embedded libnetns (the open of a missing namespace says why it failed)", async () => {
    // qemu-user does not emulate the nsfs ioctls, so only a path that fails before them says the library works.
    const r = await runNsproxy(["check", "-l", "127.0.0.1:8080", "-u", "http://127.0.0.1:9000", "-n", "/nonexistent-netns"], { command: qemu });
    expect(r.stderr).toContain("open namespace /nonexistent-netns: No such file or directory");
  });
});

describe("libnetns without a C library, through src/netns/native.ts", () => {
  test("identity is the namespace file's device and inode (fstat's layout)", () => {
    const fd = openNetns("/proc/self/ns/net");
    const st = statSync("/proc/self/ns/net");
    expect(netnsIdentity(fd, "/proc/self/ns/net")).toBe(`${st.dev}:${st.ino}`);
  });

  test("a file that is not a network namespace, or not there, fails with errno and reason", () => {
    expect(() => openNetns("/proc/self/ns/mnt")).toThrow(new NativeError(124, "open namespace", "/proc/self/ns/mnt"));
    expect(() => openNetns("/proc/self/ns/mnt")).toThrow("open namespace /proc/self/ns/mnt: not a network namespace");
    expect(() => openNetns("/nonexistent")).toThrow("open namespace /nonexistent: No such file or directory");
    expect(errorText(98)).toBe("Address already in use");
    expect(errorText(99)).toBe("Cannot assign requested address");
    expect(errorText(4095)).toBe("Unknown error 4095");
  });

  test("the bind probe parses addresses as inet_pton does", () => {
    expect(probeBindRaw("127.0.0.1", 0)).toBe(0);
    expect(probeBindRaw("192.0.2.1", 0)).toBe(-99); // EADDRNOTAVAIL: a valid address that is not here
    for (const bad of ["1.2.3", "01.2.3.4", "256.0.0.1", "fe80::1%lo", "[::1]", "1::2::3", "localhost", ""]) expect([bad, probeBindRaw(bad, 0)]).toEqual([bad, -22]);
    // Valid IPv6 forms reach bind (EADDRNOTAVAIL here: documentation addresses), not the parser's EINVAL.
    for (const good of ["2001:db8::1", "2001:DB8:0:0:0:0:0:2", "2001:db8::192.0.2.3"]) expect([good, probeBindRaw(good, 0)]).toEqual([good, -99]);
    expect(probeBindRaw("127.0.0.1", 65536)).toBe(-22);
  });

  test.skipIf(Boolean(skipReason))("a fault armed on this thread fails the next enter once, with EINVAL", () => {
    const home = openOwnNetns();
    failNextEnter(home);
    expect(enterNetnsRaw(home)).toBe(-22);
    expect(enterNetnsRaw(home)).toBe(0);
  });

  test("exec keeps the environment and sets variables as setenv would", () => {
    const script = `import { execWithEnv } from "${ROOT}/src/netns/native.ts"; execWithEnv("/usr/bin/env", ["env"], { NSX_OLD: "replaced", NSX_NEW: "new" });`;
    const r = Bun.spawnSync([BUN, "-e", script], { env: { PATH: "/usr/bin:/bin", NSX_KEEP: "kept", NSX_OLD: "orig" }, stdout: "pipe", stderr: "pipe" });
    const lines = r.stdout.toString().trim().split("\n");
    expect(r.exitCode).toBe(0);
    expect(lines.filter((l) => l.startsWith("NSX_"))).toEqual(["NSX_KEEP=kept", "NSX_OLD=replaced", "NSX_NEW=new"]);
  });
});
