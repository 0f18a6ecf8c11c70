// What a new operator reads when something is wrong: typos get a "did you mean", --help fits a terminal and a pipe,
// file system errors at start say what failed and what to do, TOML errors say what is wrong.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { daemonDir, runNsproxy, SOURCE_CLI, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, addNetnsMany, cleanupNetns, skipReason, uniquePrefix } from "./helpers/netns.ts";

const dir = mkdtempSync(join(tmpdir(), "nsproxy-messages-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ANSI = /\x1b\[/;
const isRoot = process.getuid?.() === 0;
const haveSetpriv = Bun.spawnSync(["sh", "-c", "command -v setpriv"]).exitCode === 0;
const haveScript = Bun.spawnSync(["sh", "-c", "command -v script"]).exitCode === 0;

/** stderr without the log prefix (time and level), one message per line. */
const said = (stderr: string) => stderr.replace(/^\S+ (error|warn|info) +/gm, "");

describe("a typo gets the nearest right word, and exit 2", () => {
  const cases: [string[], string][] = [
    [["run", "--listn", "127.0.0.1:8080"], "--listn: unknown option; did you mean --listen? (see --help)"],
    [["check", "--upstrem-timeout", "5s"], "--upstrem-timeout: unknown option; did you mean --upstream-timeout? (see --help)"],
    [["run", "--no-acess-log"], "--no-acess-log: unknown option; did you mean --no-access-log? (see --help)"],
    [["tenant", "ls", "--jsn"], "--jsn: unknown option; did you mean --json? (see --help)"],
    [["tenant", "add", "acme", "--netsn", "acme"], "--netsn: unknown option; did you mean --netns? (see --help)"],
    [["status", "--admin-sockt", "/x"], "--admin-sockt: unknown option; did you mean --admin-socket? (see --help)"],
    [["top", "--sotr", "errors"], "--sotr: unknown option; did you mean --sort? (see --help)"],
    [["reload", "--conifg", "x.toml"], "--conifg: unknown option; did you mean --config? (see --help)"],
    [["version", "--jsno"], "--jsno: unknown option (see --help)"],
    [["--verison"], "--verison: unknown option; did you mean --version?"],
    [["chek", "-c", "x.toml"], "unknown command 'chek'; did you mean 'check'? (nsproxy commands: run, check, tenant, status, reload, upgrade, version, top, cni; see nsproxy --help)"],
    [["tenant", "ad", "acme"], "unknown command 'tenant ad'; did you mean 'tenant add'? (nsproxy tenant commands: add, rm, ls; see nsproxy tenant --help)"],
    [["frobnicate"], "unknown command 'frobnicate' (nsproxy commands: run, check, tenant, status, reload, upgrade, version, top, cni; see nsproxy --help)"],
    [["tenant"], "nsproxy tenant needs a command: add, rm, ls (see nsproxy tenant --help)"],
  ];
  for (const [args, message] of cases) {
    test(`nsproxy ${args.join(" ")}`, async () => {
      const r = await runNsproxy(args);
      expect(said(r.stderr).trim()).toBe(message);
      expect(r.code).toBe(2);
    });
  }
});

describe("--help", () => {
  const help = (args: string[], env: Record<string, string | undefined>) => {
    const clean = { ...process.env, ...env };
    for (const [k, v] of Object.entries(clean)) if (v === undefined) delete clean[k];
    const r = Bun.spawnSync([...SOURCE_CLI, ...args], { stdout: "pipe", stderr: "pipe", env: clean as Record<string, string> });
    return { code: r.exitCode, out: r.stdout.toString() };
  };

  for (const args of [["--help"], ["run", "--help"], ["tenant", "add", "--help"], ["top", "--help"]]) {
    test(`${args.join(" ")} into a pipe: no colour codes, no line over 100 columns, no trailing padding`, () => {
      const { code, out } = help(args, { NO_COLOR: undefined, TERM: "xterm-256color", COLUMNS: "300" });
      expect(code).toBe(0);
      expect(out).not.toMatch(ANSI);
      const lines = out.split("\n");
      expect(lines.filter((l) => l.length > 100)).toEqual([]);
      expect(lines.filter((l) => l !== l.trimEnd())).toEqual([]);
      expect(out).toContain(args.length === 1 ? "COMMANDS" : "OPTIONS");
    });
  }

  test("long examples continue with ' \\' and stay whole when joined", () => {
    const { out } = help(["run", "--help"], { NO_COLOR: undefined });
    const joined = out.replace(/ \\\n +/g, " ");
    expect(joined).toContain("$ sudo nsproxy run -l https://169.254.169.254 -u http://127.0.0.1:9000 --tls-cert '/etc/nsproxy/certs/{tenant}.crt' --tls-key '/etc/nsproxy/certs/{tenant}.key' --discover /run/netns\n");
    // A flag and its value are never split across lines.
    expect(out).not.toMatch(/--tls-cert \\\n/);
  });

  test.skipIf(!haveScript)("on a 70-column terminal: coloured, and wrapped to 70 columns (NO_COLOR turns colour off)", () => {
    const onTty = (noColor: boolean) => {
      const cmd = [...SOURCE_CLI, "run", "--help"].map((a) => `'${a}'`).join(" ");
      const env = { ...process.env, TERM: "xterm" } as Record<string, string>;
      delete env.NO_COLOR;
      if (noColor) env.NO_COLOR = "1";
      const r = Bun.spawnSync(["script", "-qec", `stty cols 70; ${cmd}`, "/dev/null"], { stdout: "pipe", stderr: "pipe", env });
      return r.stdout.toString().replaceAll("\r\n", "\n");
    };
    const coloured = onTty(false);
    expect(coloured).toMatch(ANSI);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI codes are what is stripped
    const lines = coloured.replace(/\x1b\[[0-9;]*m/g, "").split("\n");
    expect(lines.filter((l) => l.length > 70)).toEqual([]);
    expect(lines.some((l) => l.includes("--upstream-timeout"))).toBe(true);
    expect(onTty(true)).not.toMatch(ANSI);
  });
});

describe("TOML errors say what is wrong, at file:line", () => {
  test("an unterminated string is called that, with its line", async () => {
    const file = join(dir, "open-string.toml");
    writeFileSync(file, ['[tenants.acme]', 'netns = "acme', 'listen = "127.0.0.1:8080"', 'upstream = "http://127.0.0.1:9000"', ""].join("\n"));
    const r = await runNsproxy(["check", "--config", file]);
    expect(r.code).toBe(2);
    expect(said(r.stderr)).toStartWith(`${file}:2: invalid TOML: unterminated string: a quoted value must end on the line it starts (""" or ''' for several lines)`);
    expect(r.stderr).not.toContain("control characters");
  });
});

describe.skipIf(!isRoot)("the admin socket's directory", () => {
  test("a shared directory such as /tmp is refused with the risk named and a directory of its own advised, never chmod of /tmp", async () => {
    const r = await runNsproxy(["run", "--admin-socket", `/tmp/nsproxy-messages-${process.pid}.sock`]);
    expect(r.code).toBe(2);
    const message = said(r.stderr);
    expect(message).toContain("admin socket directory /tmp is writable by others (mode 01777): any of them could put their own socket at its path");
    expect(message).toContain("give the socket a directory of its own (like --admin-socket /run/nsproxy/admin.sock; nsproxy creates it 0700)");
    expect(message).not.toContain("chmod");
  });

  test("a directory of nsproxy's own that others can write: chmod 700 of that directory is the fix", async () => {
    const own = join(daemonDir(), "open");
    mkdirSync(own);
    chmodSync(own, 0o777);
    const r = await runNsproxy(["run", "--admin-socket", join(own, "admin.sock")]);
    expect(r.code).toBe(2);
    expect(said(r.stderr)).toContain(`make it 0700 (chmod 700 ${own}) or choose another --admin-socket`);
  });

  // With CAP_SYS_ADMIN (ambient), as a daemon run by systemd's User= would have it: without it, run stops earlier,
  // at the capability check, before it looks at the admin socket's directory.
  const nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps", "+sys_admin", "--ambient-caps", "+sys_admin", "env", "HOME=/tmp", ...SOURCE_CLI];
  // uid 65534 must be able to read the sources (not so in a copy under a 0700 directory, as scripts/mutate.ts makes).
  const nobodyRuns = haveSetpriv && Bun.spawnSync([...nobody, "version"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
  if (isRoot && !nobodyRuns) console.warn("skip: uid 65534 cannot run nsproxy from this tree (setpriv missing, or the tree is not readable by others)");

  test.skipIf(!nobodyRuns)("as a user who cannot write it: what failed and what to do, not a raw EACCES", async () => {
    const closed = join(daemonDir(), "root-only");
    mkdirSync(closed, { mode: 0o700 });
    const path = join(closed, "sub", "admin.sock");
    const r = await runNsproxy(["run", "--admin-socket", path], { command: nobody });
    expect(r.code, r.stderr).toBe(2);
    const message = said(r.stderr);
    expect(message).toContain(`cannot create the admin socket ${path}: ${closed} is not writable by this user (uid 65534) (EACCES); run as root or pass --admin-socket in a directory it can write`);
    expect(message).not.toMatch(/EACCES: permission denied/);
  });

  test.skipIf(!haveSetpriv)("as root without CAP_DAC_OVERRIDE in another user's 0700 directory: the same, without 'run as root'", async () => {
    const theirs = join(daemonDir(), "theirs");
    mkdirSync(theirs, { mode: 0o700 });
    chownSync(theirs, 65534, 65534);
    const path = join(theirs, "sub", "admin.sock");
    const noDac = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", ...SOURCE_CLI];
    const r = await runNsproxy(["run", "--admin-socket", path], { command: noDac });
    expect(r.code).toBe(2);
    const message = said(r.stderr);
    expect(message).toContain(`cannot create the admin socket ${path}: ${theirs} is not writable by root here (EACCES); pass --admin-socket in a directory it can write`);
    expect(message).not.toMatch(/EACCES: permission denied/);
  });
});

describe.skipIf(Boolean(skipReason))("a listen address on a down interface (a new ip netns namespace has lo down)", () => {
  const prefix = uniquePrefix("lodown");
  afterAll(() => cleanupNetns(prefix));

  test("check and tenant ls warn about that tenant only, with the command that fixes it; once lo is up the warning is gone", async () => {
    const up = addNetns(`${prefix}up`);
    const down = `${prefix}down`;
    addNetnsMany([down]); // as `ip netns add` leaves it: lo down
    const base = ["-l", "127.0.0.1:8080", "-u", "http://127.0.0.1:9", "-n", up, "-n", down];
    const fix = `ip -n ${down} link set lo up`;
    const warning = `listen 127.0.0.1:8080: no route to it inside /run/netns/${down} (ENETUNREACH): its interface is down, so every client there fails to connect; a new ip netns namespace has lo down: ${fix}`;

    const c = await runNsproxy(["check", ...base, "--tenants-dir", join(dir, "no-tenants.d")]);
    expect(c.code).toBe(0);
    expect(said(c.stderr).trim()).toBe(`tenant ${down}: ${warning}`);
    expect(c.stdout).toContain("configuration ok; 2/2 namespaces open now");

    const run = daemonDir();
    const admin = join(run, "admin.sock");
    const d = startNsproxy(["run", ...base, "--admin-socket", admin, "--tenants-dir", join(run, "tenants.d"), "-w", "1"]);
    try {
      await d.waitFor("attached 2/2");
      const ls = async () => JSON.parse((await runNsproxy(["tenant", "ls", "--json", "--admin-socket", admin])).stdout) as { name: string; state: string; warning?: string }[];
      const before = await ls();
      expect(before.map((t) => [t.name, t.state, t.warning])).toEqual([
        [down, "serving", warning],
        [up, "serving", undefined],
      ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))) as never);
      const table = await runNsproxy(["tenant", "ls", "--admin-socket", admin]);
      expect(table.stdout).toContain(`warning: ${warning}`);
      expect(Bun.spawnSync(["ip", "-n", down, "link", "set", "lo", "up"]).exitCode).toBe(0);
      expect((await ls()).filter((t) => t.warning)).toEqual([]);
    } finally {
      await d.stop("SIGKILL");
    }
  });
});
