// Bench plumbing: tools, the binary, a temp dir, throwaway namespaces and child processes, all removed on exit or signal.
import type { BunFile, Subprocess } from "bun";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";

export const ROOT = `${import.meta.dir}/../..`;
export const BUN = process.execPath;
export const NSPROXY = `${ROOT}/dist/nsproxy`;
/** Every namespace of this run starts with it, so a crashed run's leftovers are easy to spot and remove. */
export const PREFIX = `nsb-${process.pid}-${Math.random().toString(36).slice(2, 6)}-`;
export const TMP = mkdtempSync(`${tmpdir()}/nsbench-`);

/** Run a command to completion; throws with its stderr when it fails. */
export function sh(argv: string[], input?: string): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { input, encoding: "utf8", timeout: 600_000 });
  // Ctrl-C reached the child first (this process's handler waits for the event loop): stop here, write nothing.
  if (r.signal === "SIGINT" || r.signal === "SIGHUP") interrupted(r.signal);
  if (r.status !== 0) throw new Error(`${argv.join(" ")} failed (${r.status ?? r.signal}): ${r.stderr?.trim() ?? r.error}`);
  return r.stdout;
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error("the bench creates network namespaces: run it as root");
}

/** dist/nsproxy built when missing (never rebuilt: src/ may be mid-edit). */
export function ensureBinary(): void {
  if (existsSync(NSPROXY)) return;
  console.error("building dist/nsproxy …");
  sh([BUN, `${ROOT}/build.ts`]);
}

/** Root, haproxy (with namespace support), wrk and curl from Debian when missing, and the binary unless `binary` is false. */
export function ensureTools(opts: { binary?: boolean } = {}): void {
  requireRoot();
  const missing = ["haproxy", "wrk", "curl"].filter((t) => !Bun.which(t));
  if (missing.length > 0) {
    console.error(`installing ${missing.join(", ")} …`);
    sh(["apt-get", "update"]);
    sh(["apt-get", "install", "-y", ...missing]);
  }
  if (!sh(["haproxy", "-vv"]).includes("network namespace support")) throw new Error("this haproxy lacks namespace support (USE_NS)");
  if (opts.binary !== false) ensureBinary();
}

/** A private executable copy of `src` in TMP: others may rebuild dist/nsproxy while a bench runs, and every N must run the same binary. */
export function copyBinary(src: string): string {
  const to = `${TMP}/nsproxy`;
  copyFileSync(src, to);
  chmodSync(to, 0o755);
  return to;
}

/** The flags every bench's nsproxy gets besides its listeners and tenants: its own admin socket and tenants dir under `dir`, no access log, a short grace. */
export function nsproxyRunFlags(dir: string): string[] {
  mkdirSync(`${dir}/admin`, { recursive: true });
  return ["--no-access-log", "--admin-socket", `${dir}/admin/admin.sock`, "--tenants-dir", `${dir}/t.d`, "--shutdown-grace", "1s"];
}

/**
 * Both proxies hold a descriptor per listener (nsproxy one per tenant per worker; HAProxy a listener and a namespace
 * fd per frontend). Raise this process's RLIMIT_NOFILE to `need` if the kernel lets us (children inherit it); either
 * way return the limit the proxies will get, and what happened.
 */
export function raiseNofile(need: number): { limit: number; note?: string } {
  const cur = Number(sh(["sh", "-c", "ulimit -n"]).trim());
  if (cur >= need) return { limit: cur };
  const r = spawnSync("prlimit", [`--pid=${process.pid}`, `--nofile=${need}:${need}`], { encoding: "utf8" });
  if (r.status === 0) return { limit: need, note: `RLIMIT_NOFILE raised from ${cur} to ${need} for both proxies (prlimit on the bench process)` };
  return { limit: cur, note: `RLIMIT_NOFILE is ${cur} and could not be raised to ${need} (${r.stderr.trim().replace(/^prlimit: /, "")}; no CAP_SYS_RESOURCE here?)` };
}

/** Namespaces left by an earlier bench that was killed outright (its pid is gone): remove them before starting. */
export function removeStale(): number {
  let stale: string[] = [];
  try {
    stale = readdirSync("/run/netns").filter((n) => {
      const pid = /^nsb-(\d+)-/.exec(n)?.[1];
      return pid !== undefined && !existsSync(`/proc/${pid}`);
    });
  } catch {}
  if (stale.length > 0) spawnSync("ip", ["-batch", "-", "-force"], { input: stale.map((n) => `netns del ${n}\n`).join("") });
  return stale.length;
}

const madeNs: string[] = [];

/**
 * Create namespaces in one `ip -batch`, then bring `lo` up in all of them from one helper process; returns the ms
 * each step took. (Four `ip -batch` at once were no faster: the kernel makes namespaces one at a time.)
 */
export function addNamespaces(names: string[]): { addMs: number; loMs: number } {
  if (names.length === 0) return { addMs: 0, loMs: 0 };
  madeNs.push(...names);
  const t0 = performance.now();
  sh(["ip", "-batch", "-"], names.map((n) => `netns add ${n}\n`).join(""));
  const t1 = performance.now();
  const r = JSON.parse(sh([BUN, `${import.meta.dir}/lo-up.ts`], names.join("\n"))) as { done: number; failed: string[] };
  if (r.failed.length > 0) sh(["ip", "-batch", "-"], r.failed.map((n) => `netns exec ${n} ip link set lo up\n`).join(""));
  return { addMs: t1 - t0, loMs: performance.now() - t1 };
}

/** Remove namespaces this run made, at once (the kernel frees them in the background); returns how long `ip` took. */
export function removeNamespaces(names: string[]): number {
  const t = performance.now();
  if (names.length > 0) spawnSync("ip", ["-batch", "-", "-force"], { input: names.map((n) => `netns del ${n}\n`).join("") });
  const gone = new Set(names);
  const keep = madeNs.filter((n) => !gone.has(n));
  madeNs.length = 0;
  madeNs.push(...keep);
  return performance.now() - t;
}

/** Remove this run's namespaces (and anything else with its prefix), the processes, the temp dir. Idempotent. */
export function cleanup(): void {
  for (const p of procs) p.kill("SIGKILL");
  procs.clear();
  for (const pid of strays()) kill(pid, "SIGKILL");
  let names: string[] = [];
  try {
    names = readdirSync("/run/netns").filter((n) => n.startsWith(PREFIX));
  } catch {}
  const all = [...new Set([...madeNs, ...names])];
  if (all.length > 0) spawnSync("ip", ["-batch", "-", "-force"], { input: all.map((n) => `netns del ${n}\n`).join("") });
  madeNs.length = 0;
  rmSync(TMP, { recursive: true, force: true });
}

const procs = new Set<Subprocess>();

/** Spawn a tracked child, killed with SIGKILL after `limitMs` at the latest (every load is bounded). */
export function spawn(argv: string[], limitMs: number, opts: { stdin?: "ignore" | "pipe"; env?: Record<string, string> } = {}): Subprocess<"ignore" | "pipe", "pipe", "pipe"> {
  return track(Bun.spawn(argv, { stdin: opts.stdin ?? "ignore", stdout: "pipe", stderr: "pipe", env: opts.env ? { ...process.env, ...opts.env } : undefined }), limitMs);
}

/** spawn, with the child's stdout written straight to the file `stdoutPath` (as a service's `StandardOutput=file:`). */
export function spawnToFile(argv: string[], limitMs: number, stdoutPath: string, opts: { env?: Record<string, string> } = {}): Subprocess<"ignore", BunFile, "pipe"> {
  return track(Bun.spawn(argv, { stdin: "ignore", stdout: Bun.file(stdoutPath), stderr: "pipe", env: opts.env ? { ...process.env, ...opts.env } : undefined }), limitMs);
}

function track<P extends Subprocess>(p: P, limitMs: number): P {
  procs.add(p);
  const timer = setTimeout(() => p.kill("SIGKILL"), limitMs);
  void p.exited.then(() => {
    clearTimeout(timer);
    procs.delete(p);
    // The bench never sends these: a child that got one was in the terminal's Ctrl-C (or hangup) with this process.
    if (p.signalCode === "SIGINT" || p.signalCode === "SIGHUP") interrupted(p.signalCode);
  });
  return p;
}

/**
 * Processes of this run that are no child of it: an upgraded nsproxy's successor is started by the daemon it
 * replaces and outlives it. Found by this run's own temp dir in their command line (no other process names it).
 */
export function strays(): number[] {
  const found: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, "utf8").includes(TMP) && alive(Number(d))) found.push(Number(d));
    } catch {}
  }
  return found;
}

/** Whether `pid` runs (a zombie, exited but not yet reaped by its parent, does not). */
export function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

function kill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {}
}

/** stop() for a process that is not our child (a successor): SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
export async function stopPid(pid: number, graceMs = 5000): Promise<void> {
  kill(pid, "SIGTERM");
  const until = Date.now() + graceMs;
  while (alive(pid)) {
    if (Date.now() > until) kill(pid, "SIGKILL");
    await Bun.sleep(10);
  }
}

/** Ask a child to stop, then kill it if it has not within `graceMs`. */
export async function stop(p: Subprocess, graceMs = 5000): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill("SIGTERM");
  const timer = setTimeout(() => p.kill("SIGKILL"), graceMs);
  await p.exited;
  clearTimeout(timer);
}

/** Lines of a child's stream as they arrive, kept in `into`; `onLine` sees each one. */
export async function collectLines(stream: ReadableStream<Uint8Array>, into: string[], onLine?: (l: string) => void): Promise<void> {
  let rest = "";
  const dec = new TextDecoder();
  for await (const chunk of stream) {
    const lines = (rest + dec.decode(chunk, { stream: true })).split("\n");
    rest = lines.pop()!;
    for (const l of lines) {
      into.push(l);
      onLine?.(l);
    }
  }
  if (rest) into.push(rest);
}

/** A free TCP port on the host's loopback. */
export function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** An error in one line: its name, message and code (a timeout or a refused socket can have an empty message). */
export function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const code = (e as { code?: unknown }).code;
  return `${e.name}: ${e.message || "(no message)"}${code === undefined ? "" : ` (${String(code)})`}`;
}

/** Run a bench's main part: a failure is printed and exits 1; the namespaces, children and TMP are removed either way. */
export async function runBench(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    console.error(`bench failed: ${describe(e)}\n${(e as Error).stack ?? ""}`);
    process.exitCode = 1;
  } finally {
    cleanup();
  }
}

const EXIT_CODE = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
let cleaning = false;

/**
 * Interrupted: remove everything and exit at once with the signal's code, before a half-done run can write its
 * report over the last one. Called from the signal handlers, and synchronously when a child died of the same signal.
 */
function interrupted(sig: keyof typeof EXIT_CODE): never {
  if (!cleaning) {
    cleaning = true;
    console.error(`\n${sig}: removing the bench's processes, namespaces and ${TMP}`);
    cleanup();
  }
  process.exit(EXIT_CODE[sig]);
}
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => interrupted(sig));
process.on("exit", cleanup);
