// Without CAP_SYS_ADMIN no tenant can ever attach: run and check exit 2 naming it (as uid 65534, and as root with the
// capability dropped); with it alone (uid 65534, ambient) the daemon serves and says what it holds and why.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync } from "node:fs";
import { type Echo, startUpstream } from "./helpers/upstream.ts";
import { daemonDir, runNsproxy, SOURCE_CLI, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, skipReason, uniquePrefix } from "./helpers/netns.ts";

const prefix = uniquePrefix("caps");
const haveSetpriv = Bun.spawnSync(["sh", "-c", "command -v setpriv"]).exitCode === 0;
const NOBODY = 65534;
/** util-linux setpriv: another user with no capabilities, or root with CAP_SYS_ADMIN out of the bounding set (so out of every set). */
const AS_NOBODY = ["setpriv", "--reuid", String(NOBODY), "--regid", String(NOBODY), "--clear-groups", "--"];
const ROOT_WITHOUT = ["setpriv", "--bounding-set", "-sys_admin", "--"];
const NOBODY_WITH = ["setpriv", "--reuid", String(NOBODY), "--regid", String(NOBODY), "--clear-groups", "--inh-caps", "+sys_admin", "--ambient-caps", "+sys_admin", "--"];

/**
 * Another user must be able to read the sources and this directory (not so in a copy under a 0700 temp
 * directory, as scripts/mutate.ts makes): else only the cases that keep uid 0 run.
 */
const nobodyReads =
  haveSetpriv && Bun.spawnSync([...AS_NOBODY, "sh", "-c", `test -r '${SOURCE_CLI.at(-1)}' && ls . >/dev/null`], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
const asNobody = nobodyReads ? undefined : "uid 65534 cannot read the sources or the current directory here";
if (asNobody) console.warn(`skip: the uid 65534 cases of capabilities: ${asNobody}`);

/** An admin socket and tenants dir the other user may create (the test's own directories are root's, 0700). */
function placeFor(uid: number): string[] {
  const parent = daemonDir();
  chmodSync(parent, 0o711);
  const dir = `${parent}/u`;
  mkdirSync(dir);
  chownSync(dir, uid, uid);
  return ["--admin-socket", `${dir}/admin/admin.sock`, "--tenants-dir", `${dir}/tenants.d`];
}

const REFUSAL = /error +this process lacks CAP_SYS_ADMIN \(running as uid (\d+) with [^)]*\): setns into a tenant's network namespace needs it, so no tenant could ever attach; /;

describe.skipIf(Boolean(skipReason) || !haveSetpriv)("capabilities", () => {
  afterAll(() => cleanupNetns(prefix));

  test("without CAP_SYS_ADMIN, run exits 2 naming it, with a tenant or none; check says the same and exits 2", async () => {
    const ns = addNetns(`${prefix}a`);
    const tenant = ["-l", "127.0.0.1:8150", "-u", "http://127.0.0.1:9", "-n", ns];
    const who: [string, string[], number][] = [["root without CAP_SYS_ADMIN", ROOT_WITHOUT, 0]];
    if (nobodyReads) who.push(["uid 65534", AS_NOBODY, NOBODY]);
    for (const [user, prefixArgv, uid] of who) {
      for (const args of [["run", ...tenant], ["run", "-l", "127.0.0.1:8150", "-u", "http://127.0.0.1:9"], ["check", ...tenant]]) {
        const r = await runNsproxy([...args, ...placeFor(uid)], { command: [...prefixArgv, ...SOURCE_CLI] });
        const what = `${user}: nsproxy ${args.join(" ")}`;
        expect(r.code, `${what}\n${r.stderr}`).toBe(2);
        expect(r.stderr, what).toMatch(REFUSAL);
        expect(r.stderr.match(REFUSAL)![1], what).toBe(String(uid));
        // Advice that fits: root is told to grant the capability, not to become root.
        expect(r.stderr.includes("run as root (with --user NAME to run as a user after start), or grant it"), what).toBe(uid !== 0);
        expect(r.stderr, what).toContain("(systemd: AmbientCapabilities=CAP_SYS_ADMIN; a container: --cap-add SYS_ADMIN)");
        expect(r.stderr, what).not.toContain("attached");
        expect(r.stdout, what).not.toContain("configuration ok");
        if (args[0] === "check") expect(r.stderr, what).toContain("the configuration itself is valid, but run would exit here");
      }
    }
  }, 90_000);

  test.skipIf(Boolean(asNobody))("with CAP_SYS_ADMIN alone (uid 65534, ambient): run serves and says what it holds and why, with no warning", async () => {
    const upstream = startUpstream();
    const ns = addNetns(`${prefix}b`);
    const d = startNsproxy(["run", "-w", "1", "-l", "127.0.0.1:8151", "-u", `http://127.0.0.1:${upstream.port}`, "-n", ns, ...placeFor(NOBODY)], {
      command: [...NOBODY_WITH, ...SOURCE_CLI],
    });
    try {
      await d.waitFor("attached 1/1");
      const r = await curlIn(ns, "http://127.0.0.1:8151/");
      expect(r.status).toBe(200);
      expect((JSON.parse(r.body) as Echo).headers["x-nsproxy-tenant"]).toBe(ns);
      // What it holds and why, from the capabilities the configuration needs (none but CAP_SYS_ADMIN here): nothing is missing.
      expect(d.stderr()).toContain("running as nobody (uid 65534, gid 65534) with CAP_SYS_ADMIN (to enter tenant namespaces (setns)); no_new_privs set");
      expect(d.stderr()).not.toContain("is needed but not held");
      expect(d.stderr()).not.toContain("not running as root");
      const check = await runNsproxy(["check", "-l", "127.0.0.1:8151", "-u", "http://127.0.0.1:9", "-n", ns, ...placeFor(NOBODY)], { command: [...NOBODY_WITH, ...SOURCE_CLI] });
      expect(check.code, check.stderr).toBe(0);
      expect(check.stdout).toContain("configuration ok; 1/1 namespaces open now");
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);
});
