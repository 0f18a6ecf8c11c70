// The command line as a user meets it: exit codes, and error messages that point at file:LINE and the key or flag.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { runNsproxy, startNsproxy, UNDER_DENO } from "./helpers/daemon.ts";

const dir = mkdtempSync(join(tmpdir(), "nsproxy-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A namespace name nobody has: check must warn about it, not fail. */
const MISSING = `nsproxy-cli-missing-${process.pid}`;

/** Writes a config file into the test's directory and returns its path. */
function write(name: string, lines: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}


interface BadConfig {
  what: string;
  lines: string[];
  /** The line the error must name, and the text on it (to keep the fixture honest). */
  line: number;
  onLine: string;
  /** What must follow "file:LINE: " on stderr: the key and the start of the message. */
  says: string;
  /** More words the message must carry. */
  also?: string[];
}

const BAD: BadConfig[] = [
  {
    what: "TOML syntax error",
    lines: [
      "# nsproxy test config",
      "[defaults]",
      'listen = "127.0.0.1:8080"',
      'upstream = "http://127.0.0.1:9000"',
      "",
      "[tenants.acme]",
      'netns = "acme"',
      'upstream_timeout = = "5s"',
    ],
    line: 8,
    onLine: "upstream_timeout = =",
    says: "invalid TOML:",
    // smol-toml's code block quotes the offending line, key included.
    also: ['8:  upstream_timeout = = "5s"'],
  },
  {
    what: "unknown key (a typo) with did-you-mean",
    lines: [
      "[defaults]",
      'listen = "127.0.0.1:8080"',
      "",
      "[tenants.acme]",
      'netns = "acme"',
      "# upstream below is misspelt",
      'upstrem = "http://127.0.0.1:9000"',
    ],
    line: 7,
    onLine: "upstrem",
    says: "tenants.acme.upstrem: unknown key 'upstrem' in [tenants.acme]; did you mean 'upstream'?",
  },
  {
    what: "wrong type",
    lines: [
      "[daemon]",
      "shutdown_grace = 5",
      'workers = "4"',
      "",
      "[tenants.acme]",
      'netns = "acme"',
      'listen = "127.0.0.1:8080"',
      'upstream = "http://127.0.0.1:9000"',
    ],
    line: 3,
    onLine: "workers",
    says: 'daemon.workers: workers must be an integer, not string "4"',
  },
  {
    what: "wrong type in a tenant",
    lines: ["[tenants.acme]", 'netns = "acme"', 'upstream = "http://127.0.0.1:9000"', "listen = 8080"],
    line: 4,
    onLine: "listen = 8080",
    says: "tenants.acme.listen: listen must be a string or a non-empty array of strings",
  },
  {
    what: "bad listen address",
    lines: [
      "[defaults]",
      'upstream = "http://127.0.0.1:9000"',
      "",
      "[tenants.acme]",
      'netns = "acme"',
      'listen = ["127.0.0.1:8080", "localhost:8081"]',
    ],
    line: 6,
    onLine: "localhost:8081",
    says: 'tenants.acme.listen: listen address "localhost:8081"',
    also: ["is not an IPv4 literal"],
  },
  {
    what: "bad listen port",
    lines: ["[defaults]", 'listen = "127.0.0.1:80800"', 'upstream = "http://127.0.0.1:9000"'],
    line: 2,
    onLine: "80800",
    says: 'defaults.listen: listen address "127.0.0.1:80800": port "80800" is not an integer from 1 to 65535',
  },
  {
    what: "bad upstream",
    lines: ["[defaults]", 'listen = "127.0.0.1:8080"', "", "[tenants.acme]", 'netns = "acme"', 'upstream = "ftp://127.0.0.1:21"'],
    line: 6,
    onLine: "ftp://",
    says: 'tenants.acme.upstream: upstream "ftp://127.0.0.1:21" is not an http://, https:// or unix: address',
  },
  {
    what: "upstream with a query string",
    lines: ["[defaults]", 'listen = "127.0.0.1:8080"', 'upstream = "http://127.0.0.1:9000/api?x=1"'],
    line: 3,
    onLine: "?x=1",
    says: 'defaults.upstream: upstream "http://127.0.0.1:9000/api?x=1" has a query string',
  },
  {
    what: "bad duration",
    lines: [
      "[defaults]",
      'listen = "127.0.0.1:8080"',
      'upstream = "http://127.0.0.1:9000"',
      'upstream_timeout = "30 seconds"',
      "",
      "[tenants.acme]",
      'netns = "acme"',
    ],
    line: 4,
    onLine: "30 seconds",
    says: 'defaults.upstream_timeout: duration "30 seconds" is not a number with a unit',
  },
  {
    what: "bad daemon duration",
    lines: ["[daemon]", "workers = 2", 'shutdown_grace = "-1s"'],
    line: 3,
    onLine: "shutdown_grace",
    says: 'daemon.shutdown_grace: duration "-1s"',
  },
  {
    what: "duplicate tenant within the file",
    lines: [
      "[defaults]",
      'listen = "127.0.0.1:8080"',
      'upstream = "http://127.0.0.1:9000"',
      "",
      "[tenants.acme]",
      'netns = "acme"',
      "",
      "[tenants.acme]",
      'netns = "other"',
    ],
    line: 8,
    onLine: "[tenants.acme]",
    says: "invalid TOML: trying to redefine an already defined table",
    also: ["8:  [tenants.acme]"],
  },
  {
    what: "two tenants on the same address in the same namespace",
    lines: [
      "[defaults]",
      'upstream = "http://127.0.0.1:9000"',
      "",
      "[tenants.acme]",
      'netns = "shared"',
      'listen = ["127.0.0.1:8080", "[::1]:8080"]',
      "",
      "[tenants.beta]",
      'netns = "/run/netns/shared"',
      'listen = ["127.0.0.1:9090", "[0:0::1]:8080"]',
    ],
    line: 10,
    onLine: "[0:0::1]:8080",
    says: "tenants.beta.listen: tenants 'acme' and 'beta' both listen on [0:0::1]:8080 in /run/netns/shared",
  },
  {
    what: "tenant without upstream",
    lines: [
      "[defaults]",
      'listen = "127.0.0.1:8080"',
      "",
      "[tenants.acme]",
      'netns = "acme"',
      'upstream = "http://127.0.0.1:9000"',
      "",
      "[tenants.globex]",
      'netns = "globex"',
    ],
    line: 8,
    onLine: "[tenants.globex]",
    says: "tenants.globex.upstream: tenant 'globex' has no upstream",
    also: ["--upstream"],
  },
  {
    what: "tenant without netns",
    lines: ["[defaults]", 'listen = "127.0.0.1:8080"', 'upstream = "http://127.0.0.1:9000"', "", "[tenants.acme]", 'tenant_header = "X-Tenant"'],
    line: 5,
    onLine: "[tenants.acme]",
    says: "tenants.acme.netns: tenant 'acme' has no netns",
  },
  {
    what: "bad static header name",
    lines: [
      "[tenants.acme]",
      'netns = "acme"',
      'listen = "127.0.0.1:8080"',
      'upstream = "http://127.0.0.1:9000"',
      'headers = { "X-Env" = "prod", "X Team" = "red" }',
    ],
    line: 5,
    onLine: "X Team",
    says: 'tenants.acme.headers."X Team": static header "X Team" is not a valid header name',
  },
  {
    what: "bad tenant_header name",
    lines: ["[defaults]", 'listen = "127.0.0.1:8080"', 'upstream = "http://127.0.0.1:9000"', 'tenant_header = "X:Tenant"'],
    line: 4,
    onLine: "tenant_header",
    says: 'defaults.tenant_header: tenant_header "X:Tenant" is not a valid header name',
  },
];

describe("bad configuration files exit 2 and name file:LINE and the key", () => {
  for (const [i, c] of BAD.entries()) {
    const path = write(`bad-${i}.toml`, c.lines);
    // Both commands load the configuration the same way; run must fail before it serves anything.
    for (const command of ["check", "run"]) {
      test(`${c.what} (${command})`, async () => {
        // Keeps the fixture honest: the line the test names really holds the mistake.
        expect(c.lines[c.line - 1]).toContain(c.onLine);
        const r = await runNsproxy([command, "--config", path]);
        expect(r.code).toBe(2);
        expect(r.stderr).toContain(`${path}:${c.line}: ${c.says}`);
        for (const word of c.also ?? []) expect(r.stderr).toContain(word);
        expect(r.stdout).not.toContain("configuration ok");
        // The user sees the message, not a stack trace.
        expect(r.stderr).not.toMatch(/\n\s+at .*\.ts:\d+/);
      });
    }
  }

  test("a tenant both in the file and in --netns names the flag and the table's line", async () => {
    const path = write("dup-flag.toml", ["[tenants.acme]", 'netns = "acme"', 'listen = "127.0.0.1:8080"', 'upstream = "http://127.0.0.1:9000"']);
    for (const ref of ["acme", "/var/run/netns/acme", "acme=/run/netns/other"]) {
      const r = await runNsproxy(["check", "--config", path, "--netns", ref]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`dup-flag.toml:1: tenants.acme: tenant 'acme' (from --netns ${ref}) is already defined in the config file as [tenants.acme]`);
    }
  });

  test("the same tenant twice on the command line names both REFs", async () => {
    const r = await runNsproxy(["check", "-l", "127.0.0.1:8080", "-u", "http://127.0.0.1:9", "-n", "acme", "-n", "acme=/proc/1/ns/net"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--netns: tenant 'acme' is given twice: --netns acme and --netns acme=/proc/1/ns/net");
  });

  test("a missing config file exits 2 naming the file", async () => {
    const path = join(dir, "does-not-exist.toml");
    for (const command of ["check", "run"]) {
      const r = await runNsproxy([command, "--config", path]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${path}: cannot read config file: no such file (ENOENT)`);
    }
  });

  test("a directory given as the config file exits 2 naming it", async () => {
    const r = await runNsproxy(["check", "-c", dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${dir}: cannot read config file:`);
    expect(r.stderr).toContain("EISDIR");
  });
});

describe("bad flags exit 2 and name the flag", () => {
  test("an unknown flag is named, never ignored", async () => {
    const r = await runNsproxy(["run", "--listn", "127.0.0.1:8080"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--listn: unknown option");
    const c = await runNsproxy(["check", "-l", "127.0.0.1:8080", "-u", "http://127.0.0.1:9", "-n", "x", "--upstrem-timeout", "5s"]);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain("--upstrem-timeout: unknown option");
  });

  test("an unknown command exits 2 and points at the usage", async () => {
    const r = await runNsproxy(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
    expect(r.stderr).toContain("see nsproxy --help");
  });

  test("no arguments at all exits 2 with the usage", async () => {
    const r = await runNsproxy([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("USAGE");
  });

  test("a flag given twice (other than --listen/--netns) and a stray argument exit 2", async () => {
    const twice = await runNsproxy(["check", "--config", "a.toml", "--config", "b.toml"]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain("--config: given more than once");
    const stray = await runNsproxy(["check", "nsproxy.toml"]);
    expect(stray.code).toBe(2);
    expect(stray.stderr).toContain("unexpected argument 'nsproxy.toml'; did you mean --config nsproxy.toml?");
    const root = await runNsproxy(["-V"]);
    expect(root.code).toBe(2);
    expect(root.stderr).toContain("-V: unknown option");
    const version = await runNsproxy(["version", "--bogus"]);
    expect(version.code).toBe(2);
    expect(version.stderr).toContain("--bogus: unknown option");
  });

  test("a flag without its value exits 2", async () => {
    const r = await runNsproxy(["run", "--netns", "acme", "--upstream"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--upstream: needs a value");
    const l = await runNsproxy(["check", "-u", "http://127.0.0.1:9", "-n", "acme", "--listen"]);
    expect(l.code).toBe(2);
    expect(l.stderr).toContain("--listen: needs a value");
  });

  test("bad flag values name the flag", async () => {
    const base = ["check", "-u", "http://127.0.0.1:9", "-n", "acme"];
    const cases: [string[], string, string[]?][] = [
      [["-l", "localhost:8080"], '--listen: listen address "localhost:8080"'],
      [["-l", "127.0.0.1:8080"], "", ["-u", "ftp://x"]],
      [["-l", "127.0.0.1:8080", "--upstream-timeout", "soon"], '--upstream-timeout: duration "soon"'],
      [["-l", "127.0.0.1:8080", "--upstream-timeout", "0"], "--upstream-timeout: the upstream timeout must be longer than 0"],
      [["-l", "127.0.0.1:8080", "--workers", "0"], '--workers: workers "0" is not an integer from 1 to 256'],
      [["-l", "127.0.0.1:8080", "--log-format", "xml"], '--log-format: log format "xml"'],
      [["-l", "127.0.0.1:8080", "--tenant-header", "Host"], '--tenant-header: tenant_header "Host" is a header the proxy manages itself'],
      [["-l", "127.0.0.1:8080", "-n", "./relative"], '--netns: netns "./relative" is a relative path'],
    ];
    for (const [extra, says] of cases) {
      if (!says) continue;
      const r = await runNsproxy([...base, ...extra]);
      expect([extra, r.code]).toEqual([extra, 2]);
      expect(r.stderr).toContain(says);
    }
    const bad = await runNsproxy(["check", "-u", "ftp://x", "-n", "acme", "-l", "127.0.0.1:8080"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--upstream: upstream "ftp://x"');
  });

  test("run with no tenants is a daemon waiting for tenants, and stops cleanly", async () => {
    const path = write("no-tenants.toml", ["[defaults]", 'listen = "127.0.0.1:8080"', 'upstream = "http://127.0.0.1:9000"']);
    const d = startNsproxy(["run", "--config", path]);
    try {
      await d.waitFor("waiting for tenants: nsproxy tenant add NAME --netns REF");
      expect(d.stderr()).toContain("attached 0/0 tenants");
      expect(await d.stop("SIGTERM")).toBe(0);
    } finally {
      await d.stop("SIGKILL");
    }
  });
});

describe("check", () => {
  test("check reads the tenants directory as run would: a bad file is named with its line, exit 2", async () => {
    const tdir = join(dir, "tenants-check.d");
    mkdirSync(tdir, { recursive: true });
    writeFileSync(join(tdir, "good.toml"), 'netns = "good"\n');
    const base = ["check", "-l", "127.0.0.1:8080", "-u", "http://127.0.0.1:9", "--tenants-dir", tdir];
    const ok = await runNsproxy(base);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`tenants dir ${tdir}: 1 tenant(s): good`);
    writeFileSync(join(tdir, "bad.toml"), 'netns = "bad"\nupstream_timeout = "soon"\n');
    const bad = await runNsproxy(base);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`${tdir}/bad.toml:2: upstream_timeout:`);
  });

  test("a good file prints the summary and 'configuration ok'; a missing namespace is only a warning", async () => {
    const path = write("good.toml", [
      "[daemon]",
      "workers = 3",
      'log_format = "json"',
      "",
      "[defaults]",
      'listen = "127.0.0.1:8080"',
      'upstream = "http://127.0.0.1:9000"',
      'upstream_timeout = "5s"',
      'headers = { "X-Env" = "prod" }',
      "",
      "[tenants.acme]",
      `netns = "${MISSING}-acme"`,
      "",
      "[tenants.globex]",
      `netns = "/run/netns/${MISSING}-globex"`,
      'listen = ["127.0.0.1:8080", "[::1]:8080"]',
      'upstream = "unix:/run/app.sock:/v1"',
    ]);
    const r = await runNsproxy(["check", "--config", path]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(`2 tenants, 3 listeners, 3 workers, log json, access log on (from ${path})`);
    expect(lines[1]).toMatch(new RegExp(`^acme +/run/netns/${MISSING}-acme +127\\.0\\.0\\.1:8080 -> http://127\\.0\\.0\\.1:9000$`));
    expect(lines[2]).toMatch(new RegExp(`^globex +/run/netns/${MISSING}-globex +127\\.0\\.0\\.1:8080, \\[::1\\]:8080 -> unix:/run/app\\.sock:/v1$`));
    expect(lines[3]).toBe(`configuration ok: ${path}; 0/2 namespaces open now`);
    expect(lines).toHaveLength(4);
    // Warnings go to stderr, one per tenant, naming the namespace file.
    expect(r.stderr).toContain(`tenant acme: open namespace /run/netns/${MISSING}-acme: No such file or directory`);
    expect(r.stderr).toContain(`tenant globex: open namespace /run/netns/${MISSING}-globex: No such file or directory`);
    expect(r.stderr).toContain("retried at run time");
  });

  test("flags only: exit 0 with the tenant named by NAME=REF", async () => {
    const r = await runNsproxy(["check", "-l", "127.0.0.1:8080", "-u", "http://127.0.0.1:9", "-n", `NAME=/run/netns/${MISSING}`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("1 tenant, 1 listener,");
    expect(r.stdout).toMatch(new RegExp(`^NAME +/run/netns/${MISSING} +127\\.0\\.0\\.1:8080 -> http://127\\.0\\.0\\.1:9$`, "m"));
    expect(r.stdout).toContain("configuration ok; 0/1 namespaces open now");
    expect(r.stderr).toContain(`tenant NAME: open namespace /run/netns/${MISSING}`);
  });

  test("flags override the file's [defaults]; a tenant table overrides the flags", async () => {
    const path = write("layers.toml", [
      "[defaults]",
      'listen = "127.0.0.1:8080"',
      'upstream = "http://127.0.0.1:9000"',
      "",
      "[tenants.acme]",
      `netns = "${MISSING}"`,
      "",
      "[tenants.beta]",
      `netns = "${MISSING}-b"`,
      'upstream = "http://127.0.0.1:7000"',
    ]);
    const r = await runNsproxy(["check", "-c", path, "-u", "http://127.0.0.1:9999", "-n", `gamma=${MISSING}-g`, "--no-access-log"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("3 tenants, 3 listeners,");
    expect(r.stdout).toContain("access log off");
    expect(r.stdout).toMatch(/^acme .* -> http:\/\/127\.0\.0\.1:9999$/m);
    expect(r.stdout).toMatch(/^beta .* -> http:\/\/127\.0\.0\.1:7000$/m);
    expect(r.stdout).toMatch(/^gamma .* -> http:\/\/127\.0\.0\.1:9999$/m);
  });
});

describe("help and version", () => {
  for (const args of [["--help"], ["-h"], ["run", "--help"], ["check", "--help"]]) {
    test(`${args.join(" ")} exits 0 with examples and exit codes`, async () => {
      const r = await runNsproxy(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("Examples:");
      expect(r.stdout).toContain("Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.");
      expect(r.stdout).toContain(args[0] === "run" || args[0] === "check" ? `nsproxy ${args[0]}` : "run|check|tenant|status|reload|upgrade|version");
    });
  }

  test("run --help documents every flag", async () => {
    const r = await runNsproxy(["run", "--help"]);
    for (const flag of ["--config", "--listen", "--upstream", "--netns", "--tenant-header", "--upstream-timeout", "--workers", "--shutdown-grace", "--log-format", "--access-log", "--verbose"]) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toContain("$ sudo nsproxy run");
  });

  test("--version prints nsproxy and the version, one line", async () => {
    const r = await runNsproxy(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^nsproxy \d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?\n$/);
    expect(r.stdout).toStartWith(`nsproxy ${pkg.version}`);
  });

  test("version prints the version, commit, runtime and target", async () => {
    const r = await runNsproxy(["version"]);
    expect(r.code).toBe(0);
    const runtime = UNDER_DENO ? "deno" : "bun";
    expect(r.stdout).toMatch(new RegExp(`^nsproxy \\d+\\.\\d+\\.\\d+(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?\\ncommit: +\\S+\\nruntime: +${runtime} \\d+\\.\\d+\\.\\d+\\ntarget: +.+\\n$`));
    expect(r.stdout).toStartWith(`nsproxy ${pkg.version}`);
  });
});
