// Start each proxy under startup probes, read its RSS, check a request through it, and (nsproxy) time a live add.
import type { Subprocess } from "bun";
import { mkdirSync } from "node:fs";
import { haproxyArgv, proxyConfig, writeConfig } from "./haproxy.ts";
import { sample, startProbes } from "./probe.ts";
import { addNamespaces, collectLines, NSPROXY, rssKb, sh, spawn, TMP } from "./setup.ts";

export type ProxyName = "nsproxy" | "HAProxy";

export interface Running {
  name: ProxyName;
  proc: Subprocess<"ignore" | "pipe", "pipe", "pipe">;
  port: number;
  startupMs: number;
  rssKb: number;
  /** Anonymous memory only: RSS without the executable's file-backed (shared, reclaimable) pages. */
  anonKb: number;
  /** The proxy's own words about start-up (nsproxy's "attached …" line), or what went wrong. */
  notes: string[];
  /** Everything it wrote to stdout and stderr so far. */
  log: string[];
  adminSock?: string;
}

/** Nothing else may make a proxy run longer than this; the bench stops them well before. */
const PROXY_LIFETIME_MS = 30 * 60_000;

/** Spawn `argv` once probes sit in a sample of the namespaces; startup = latest first answer − spawn time. */
async function startUnderProbes(name: ProxyName, argv: string[], namespaces: string[], port: number, limitMs: number, env?: Record<string, string>): Promise<Running> {
  const probes = startProbes(sample(namespaces), port, limitMs);
  await probes.ready;
  const spawnedAt = Date.now();
  const proc = spawn(argv, PROXY_LIFETIME_MS, { env });
  const log: string[] = [];
  void collectLines(proc.stderr, log);
  void collectLines(proc.stdout, log);
  const exited = proc.exited.then(async (code) => {
    await Bun.sleep(100); // let the last of its output arrive
    throw new Error(`${name} exited (${code}) during start-up:\n${log.slice(-20).join("\n")}`);
  });
  const answered = await Promise.race([probes.answered, exited]).catch((e: unknown) => {
    probes.kill();
    proc.kill("SIGKILL");
    throw e;
  });
  const startupMs = Math.max(...answered) - spawnedAt;
  const notes: string[] = [];
  if (name === "nsproxy") notes.push(await attachedLine(log, namespaces.length, limitMs));
  await Bun.sleep(500); // let lazily touched pages settle before reading RSS
  return { name, proc, port, startupMs, rssKb: rssKb(proc.pid), anonKb: rssKb(proc.pid, "RssAnon"), notes, log };
}

/** nsproxy says how many tenants it attached; all of them must be, or the figures mean something else. */
async function attachedLine(log: string[], n: number, limitMs: number): Promise<string> {
  const until = Date.now() + limitMs;
  for (;;) {
    const line = log.find((l) => / attached \d+\/\d+ tenants/.test(l));
    if (line) {
      const m = / (attached (\d+)\/(\d+) tenants.*)$/.exec(line)!;
      if (Number(m[2]) !== n || Number(m[3]) !== n) throw new Error(`nsproxy: ${m[1]} (expected ${n}/${n})\n${log.join("\n")}`);
      return `nsproxy: ${m[1]}`;
    }
    if (Date.now() > until) throw new Error(`nsproxy never logged its attach line:\n${log.join("\n")}`);
    await Bun.sleep(20);
  }
}

function nsproxyArgv(glob: string, port: number, upstreamPort: number, dir: string, workers?: number): string[] {
  mkdirSync(dir, { recursive: true });
  const argv = [NSPROXY, "run", "-l", `127.0.0.1:${port}`, "-u", `http://127.0.0.1:${upstreamPort}`, "--discover", `/run/netns=${glob}`];
  argv.push("--no-access-log", "--admin-socket", `${dir}/admin/admin.sock`, "--tenants-dir", `${dir}/t.d`, "--shutdown-grace", "1s");
  return workers ? [...argv, "--workers", String(workers)] : argv;
}

/** `variant`: extra flags and environment for a second nsproxy beside the first (its own port and directory). */
export function startNsproxy(
  namespaces: string[],
  glob: string,
  port: number,
  upstreamPort: number,
  limitMs: number,
  workers?: number,
  variant: { tag?: string; args?: string[]; env?: Record<string, string> } = {},
): Promise<Running> {
  const dir = `${TMP}/nsproxy-${namespaces.length}-${workers ?? "default"}${variant.tag ? `-${variant.tag}` : ""}`;
  const argv = [...nsproxyArgv(glob, port, upstreamPort, dir, workers), ...(variant.args ?? [])];
  return startUnderProbes("nsproxy", argv, namespaces, port, limitMs, variant.env).then((r) => ({ ...r, adminSock: `${dir}/admin/admin.sock` }));
}

/** What a proxy said besides its normal start-up: counts of warnings and errors, and the first distinct kinds. */
export function logSummary(name: ProxyName, log: string[]): string {
  const bad = log.filter((l) => (name === "nsproxy" ? / (warn|error) /.test(l) : /\[(WARNING|ALERT)\]/.test(l)));
  if (bad.length === 0) return `${name} logged no warning or error`;
  // Same message for different tenants or threads counts once: strip names and numbers.
  const kinds = new Map<string, string>();
  for (const l of bad) {
    const key = l.replace(/^\S+Z /, "").replace(/[\w.-]*\d[\w.:[\]-]*/g, "#");
    if (!kinds.has(key)) kinds.set(key, l.replace(/^\S+Z /, "").slice(0, 200));
  }
  return `${name} logged ${bad.length} warning/error lines, e.g. ${[...kinds.values()].slice(0, 3).map((k) => `\`${k}\``).join("; ")}`;
}

export function startHaproxy(namespaces: string[], port: number, upstreamPort: number, limitMs: number): Promise<Running> {
  const cfg = writeConfig(`${TMP}/haproxy-${namespaces.length}.cfg`, proxyConfig(namespaces, port, upstreamPort));
  return startUnderProbes("HAProxy", haproxyArgv(cfg), namespaces, port, limitMs);
}

/**
 * `curl -sv` from inside `ns` with a forged tenant header and X-Forwarded-For: the answer must be a 200 from the
 * upstream's /echo showing exactly one tenant header, the right one, and the proxy's own X-Forwarded-For.
 */
export function check(ns: string, port: number): string {
  const r = Bun.spawnSync(["ip", "netns", "exec", ns, "curl", "-sv", "--max-time", "10", "-H", "X-Nsproxy-Tenant: forged", "-H", "X-Forwarded-For: 6.6.6.6", `http://127.0.0.1:${port}/echo`], { stdout: "pipe", stderr: "pipe" });
  const status = /^< HTTP\/1\.1 (\d+)/m.exec(r.stderr.toString())?.[1];
  const body = r.stdout.toString().trim();
  const want = `tenant=${ns} copies=1 xff=127.0.0.1`;
  if (status !== "200" || body !== want) throw new Error(`check through ${ns}:${port}: got ${status} '${body}', want 200 '${want}'`);
  return `${status} ${body}`;
}

/** One live tenant add: a new namespace (outside the discovery glob), then PUT on the admin socket, timed. */
export async function liveAdd(r: Running, name: string): Promise<{ ms: number; state: string; check: string }> {
  addNamespaces([name]);
  const t0 = performance.now();
  const res = await fetch(`http://nsproxy/v1/tenants/${name}`, { method: "PUT", body: JSON.stringify({ netns: name }), unix: r.adminSock, signal: AbortSignal.timeout(30_000) });
  const ms = performance.now() - t0;
  const body = (await res.json()) as { tenant?: { state?: string } };
  if (res.status !== 201) throw new Error(`PUT /v1/tenants/${name}: ${res.status} ${JSON.stringify(body)}`);
  return { ms, state: body.tenant?.state ?? "?", check: check(name, r.port) };
}

/** The version line of each tool, for the report. */
export function versions(): Record<string, string> {
  const first = (argv: string[]) => sh(argv).split("\n")[0]!.trim();
  return {
    nsproxy: first([NSPROXY, "--version"]),
    haproxy: first(["haproxy", "-v"]),
    wrk: (Bun.spawnSync(["wrk", "-v"]).stdout.toString() || "wrk").split("\n")[0]!.trim(),
    bun: Bun.version,
  };
}
