// Start nsproxy as a child process (from source, or the built binary) and watch its output.
import type { Subprocess } from "bun";
import { afterAll } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";

const ROOT = `${import.meta.dir}/../..`;
export const BUN = process.execPath;

/**
 * NSPROXY_TEST_RUNTIME=deno (npm run test:deno): the daemon and the CLI run from source under Deno; the test
 * runner stays bun test. The binary of the Deno npm package, not its node shim (signals must reach Deno itself).
 */
export const UNDER_DENO = process.env.NSPROXY_TEST_RUNTIME === "deno";
export const DENO = [`${ROOT}/node_modules/@deno/linux-${process.arch}-glibc/deno`, `${ROOT}/node_modules/deno/deno`].find((p) => existsSync(p)) ?? "deno";
export const SOURCE_CLI = UNDER_DENO ? [DENO, "run", "-A", "--unstable-net", `${ROOT}/src/cli.ts`] : [BUN, `${ROOT}/src/cli.ts`];
export const BINARY = `${ROOT}/dist/nsproxy`;

/**
 * In the Deno leg, the reason to skip a test of something Deno does not run (the compiled binary is Bun's) or
 * cannot do (README, Deno): printed once, so the skip is visible in the run's output. Undefined under Bun.
 */
export function skipOnDeno(why: string): string | undefined {
  if (!UNDER_DENO) return undefined;
  const reason = `not under Deno (NSPROXY_TEST_RUNTIME=deno): ${why}`;
  console.warn(`skip: ${reason}`);
  return reason;
}

let built = false;
/** Build dist/nsproxy once per test process (under a second): a stale binary would test old code. */
export function ensureBuilt(): string {
  if (!built) {
    const build = Bun.spawnSync([BUN, `${ROOT}/build.ts`], { stdout: "pipe", stderr: "pipe" });
    if (build.exitCode !== 0) throw new Error(`build failed:\n${build.stderr.toString()}`);
    built = true;
  }
  return BINARY;
}

export interface Running {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** stdout (access log) and stderr (logs) so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves once `text` appears in stderr or stdout, rejects after timeoutMs with the output so far. */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

const running = new Set<Subprocess>();
afterAll(() => {
  for (const p of running) p.kill("SIGKILL");
});
process.on("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

/** Every test directory of this run lives here; test/preload.ts removes it after the last test file. */
export const RUN_DIR = `${tmpdir()}/nsproxy-test-${process.pid}`;

/** A fresh directory for one daemon's admin socket and tenants dir. */
export function daemonDir(): string {
  mkdirSync(RUN_DIR, { recursive: true });
  return mkdtempSync(`${RUN_DIR}/d-`);
}

/**
 * `run` gets its own admin socket and tenants dir unless the test names them: daemons of one test file
 * run side by side, and none may touch the machine's /run/nsproxy or /etc/nsproxy.
 */
function isolate(args: string[]): string[] {
  if (args[0] !== "run") return args;
  const dir = daemonDir();
  const extra: string[] = [];
  if (!args.includes("--admin-socket")) extra.push("--admin-socket", `${dir}/admin/admin.sock`);
  if (!args.includes("--tenants-dir")) extra.push("--tenants-dir", `${dir}/tenants.d`);
  return [...args, ...extra];
}

/** `own`: the test gives the admin socket and tenants dir itself (in the config file): no flags are added. */
export function startNsproxy(args: string[], opts: { command?: string[]; cwd?: string; env?: Record<string, string>; own?: boolean } = {}): Running {
  const command = opts.command ?? SOURCE_CLI;
  if (!opts.own) args = isolate(args);
  const proc = Bun.spawn([...command, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", cwd: opts.cwd, env: { ...process.env, NO_COLOR: "1", ...opts.env } });
  running.add(proc);
  void proc.exited.then(() => running.delete(proc));
  let out = "";
  let err = "";
  const waiters: (() => void)[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>, onText: (t: string) => void) => {
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      onText(dec.decode(chunk, { stream: true }));
      for (const w of waiters) w();
    }
  };
  void pump(proc.stdout, (t) => (out += t));
  void pump(proc.stderr, (t) => (err += t));
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    waitFor(text, timeoutMs = 15_000) {
      const seen = () => (typeof text === "string" ? (out + err).includes(text) : text.test(out + err));
      return new Promise((resolve, reject) => {
        if (seen()) return resolve();
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${text}; output:\n${err}\n${out}`)), timeoutMs);
        const check = () => {
          if (seen()) {
            clearTimeout(timer);
            resolve();
          }
        };
        waiters.push(check);
        void proc.exited.then(() => {
          setTimeout(() => {
            if (!seen()) {
              clearTimeout(timer);
              reject(new Error(`nsproxy exited (${proc.exitCode}) before ${text}; output:\n${err}\n${out}`));
            }
          }, 50);
        });
      });
    },
    async stop(signal = "SIGTERM") {
      proc.kill(signal);
      return proc.exited;
    },
  };
}

/** Run nsproxy to completion (for check, version, bad configs): exit code and output. */
export async function runNsproxy(args: string[], opts: { command?: string[] } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  args = isolate(args);
  const proc = Bun.spawn([...(opts.command ?? SOURCE_CLI), ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}
