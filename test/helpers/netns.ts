// Throwaway network namespaces for tests: a unique prefix per test file, removed whatever happens.
import { afterAll } from "bun:test";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export const isRoot = process.getuid?.() === 0;
/** Reason to skip, shown by bun test, when the tests cannot make namespaces here. */
export const skipReason = isRoot ? undefined : "needs root to create network namespaces";

const made = new Set<string>();

function ip(...args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

/** A prefix no other run or test file uses: nspt-<pid>-<random>-. */
export function uniquePrefix(tag: string): string {
  return `nspt-${tag}-${process.pid}-${Math.random().toString(36).slice(2, 6)}-`;
}

/** Create a namespace with loopback up (and extra addresses on lo, if given). */
export function addNetns(name: string, loAddrs: string[] = []): string {
  ip("netns", "add", name);
  made.add(name);
  ip("-n", name, "link", "set", "lo", "up");
  for (const a of loAddrs) ip("-n", name, "addr", "add", a, "dev", "lo");
  return name;
}

/** Create many namespaces in one `ip -batch` (loopback left down: enough to bind, not to connect). */
export function addNetnsMany(names: string[]): void {
  for (const n of names) made.add(n);
  const r = spawnSync("ip", ["-batch", "-"], { input: names.map((n) => `netns add ${n}\n`).join(""), encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip -batch netns add: ${r.stderr.trim()}`);
}

export function delNetns(name: string): void {
  spawnSync("ip", ["netns", "del", name]);
  made.delete(name);
}

/** Remove every namespace this process made, and any left with the prefix (and this run's pid, when given). */
export function cleanupNetns(prefix?: string, pid?: number): void {
  if (made.size > 0) {
    spawnSync("ip", ["-batch", "-", "-force"], { input: [...made].map((n) => `netns del ${n}\n`).join("") });
    made.clear();
  }
  if (prefix) {
    let left: string[] = [];
    try {
      left = readdirSync("/run/netns").filter((n) => n.startsWith(prefix) && (pid === undefined || n.includes(`-${pid}-`)));
    } catch {}
    for (const n of left) delNetns(n);
  }
}

afterAll(() => cleanupNetns());
process.on("exit", () => cleanupNetns());

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command inside a namespace, asynchronously (the upstream may live in this very process). */
export async function nsExec(ns: string, argv: string[], timeoutMs = 20_000): Promise<ExecResult> {
  const proc = Bun.spawn(["ip", "netns", "exec", ns, ...argv], { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** curl inside a namespace; returns status, body and the exit code. `-w` appends the status on its own line. */
export async function curlIn(ns: string, url: string, extra: string[] = []): Promise<{ status: number; body: string; code: number; stderr: string }> {
  const r = await nsExec(ns, ["curl", "-sS", "--max-time", "20", "-w", "\n%{http_code}", ...extra, url]);
  const cut = r.stdout.lastIndexOf("\n");
  return { status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut), code: r.code, stderr: r.stderr };
}

/** Threads of process `pid` whose network namespace is not the process's own: none, when the window rule held. */
export function strayThreadsOf(pid: number): { tid: string; comm: string; netns: string }[] {
  const own = readlinkSync(`/proc/${pid}/ns/net`);
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
    try {
      const netns = readlinkSync(`/proc/${pid}/task/${tid}/ns/net`);
      return netns === own ? [] : [{ tid, comm: readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim(), netns }];
    } catch {
      return []; // exited while we looked
    }
  });
}
