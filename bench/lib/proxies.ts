// Start each proxy under startup probes, read its RSS, check a request through it, and (nsproxy) time a live add.
import type { BunFile, Subprocess } from "bun";
import { subjectOf } from "../../test/helpers/certs.ts";
import { fmt } from "./format.ts";
import { haproxyArgv, haproxyLayout, proxyConfig, writeConfig } from "./haproxy.ts";
import { sample, startProbes } from "./probe.ts";
import { groupRssKb, rssKb } from "./proc.ts";
import { addNamespaces, collectLines, NSPROXY, nsproxyRunFlags, sh, spawn, spawnToFile, TMP } from "./setup.ts";

export type ProxyName = "nsproxy" | "HAProxy";

export interface Running {
  name: ProxyName;
  /** The process (the first one when the proxy is split over several). */
  proc: Subprocess<"ignore" | "pipe", "pipe" | BunFile, "pipe">;
  /** Every process of the proxy: CPU and memory are theirs together. */
  procs: Subprocess<"ignore" | "pipe", "pipe" | BunFile, "pipe">[];
  /** How the proxy was laid out when not as at other N (HAProxy split over processes), for the notes and figures. */
  layout?: string;
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

/**
/**
 * Spawn a proxy (a bench-long lifetime at most) and keep what it writes to stderr and stdout in `log`; with
 * `stdoutFile`, its stdout (nsproxy's access log) goes to that file instead.
 */
export function launch(argv: string[], env?: Record<string, string>, stdoutFile?: string, log: string[] = []): { proc: Running["proc"]; log: string[] } {
  const proc = stdoutFile ? spawnToFile(argv, PROXY_LIFETIME_MS, stdoutFile, { env }) : spawn(argv, PROXY_LIFETIME_MS, { env });
  void collectLines(proc.stderr, log);
  if (proc.stdout instanceof ReadableStream) void collectLines(proc.stdout, log);
  return { proc, log };
}

/**
 * Spawn `argvs` (one process, or HAProxy split over several) once probes sit in a sample of the namespaces; startup =
 * latest first answer − spawn time. With `stdoutFile`, stdout (nsproxy's access log) goes to that file, not into `log`.
 */
export async function startUnderProbes(name: ProxyName, argvs: string[][], namespaces: string[], port: number, limitMs: number, env?: Record<string, string>, stdoutFile?: string): Promise<Running> {
  const probes = startProbes(sample(namespaces), port, limitMs);
  await probes.ready;
  const spawnedAt = Date.now();
  const log: string[] = [];
  const procs = argvs.map((argv) => launch(argv, env, stdoutFile, log).proc);
  // One process of several exiting is the proxy failing.
  const exited = Promise.race(procs.map((p) => p.exited)).then(async (code) => {
    await Bun.sleep(100); // let the last of its output arrive
    throw new Error(`${name} exited (${code}) during start-up:\n${log.slice(-20).join("\n")}`);
  });
  const answered = await Promise.race([probes.answered, exited]).catch((e: unknown) => {
    probes.kill();
    for (const p of procs) p.kill("SIGKILL");
    throw e;
  });
  const startupMs = Math.max(...answered) - spawnedAt;
  const notes: string[] = [];
  if (name === "nsproxy") notes.push(`nsproxy: ${await waitAttached(log, namespaces.length, limitMs)}`);
  await Bun.sleep(500); // let lazily touched pages settle before reading RSS
  const mem = groupRssKb(procs.map((p) => p.pid));
  if (procs.length > 1) notes.push(`${name}: ${procs.length} processes, VmRSS ${procs.map((p) => `${(rssKb(p.pid) / 1024).toFixed(1)}`).join(" + ")} MB (${(mem.sumKb / 1024).toFixed(1)} MB summed; the table counts their shared file pages once: ${(mem.rssKb / 1024).toFixed(1)} MB)`);
  return { name, proc: procs[0]!, procs, port, startupMs, rssKb: mem.rssKb, anonKb: mem.anonKb, notes, log };
}

/**
 * nsproxy says how many tenants it attached; all of them must be, or the figures mean something else. Returns its
 * words from "attached N/N tenants" on; throws when the count is short, `proc` exited, or `limitMs` passed.
 */
export async function waitAttached(log: string[], n: number, limitMs: number, proc?: Subprocess): Promise<string> {
  const until = Date.now() + limitMs;
  for (;;) {
    const line = log.find((l) => / attached \d+\/\d+ tenants/.test(l));
    if (line) {
      const m = / (attached (\d+)\/(\d+) tenants.*)$/.exec(line)!;
      if (Number(m[2]) !== n || Number(m[3]) !== n) throw new Error(`nsproxy: ${m[1]} (expected ${n}/${n})\n${log.join("\n")}`);
      return m[1]!;
    }
    if (proc && proc.exitCode !== null) throw new Error(`nsproxy exited (${proc.exitCode}) before attaching:\n${log.join("\n")}`);
    if (Date.now() > until) throw new Error(`nsproxy never logged its attach line:\n${log.join("\n")}`);
    await Bun.sleep(20);
  }
}

function nsproxyArgv(glob: string, port: number, upstreamPort: number, dir: string, workers?: number): string[] {
  const argv = [NSPROXY, "run", "-l", `127.0.0.1:${port}`, "-u", `http://127.0.0.1:${upstreamPort}`, "--discover", `/run/netns=${glob}`, ...nsproxyRunFlags(dir)];
  return workers ? [...argv, "--workers", String(workers)] : argv;
}

/**
 * `variant`: extra flags and environment for a second nsproxy beside the first (its own port and directory);
 * `accessLog`: the access log on (its default text format) and its stdout written to that file.
 */
export function startNsproxy(
  namespaces: string[],
  glob: string,
  port: number,
  upstreamPort: number,
  limitMs: number,
  workers?: number,
  variant: { tag?: string; args?: string[]; env?: Record<string, string>; accessLog?: string } = {},
): Promise<Running> {
  const dir = `${TMP}/nsproxy-${namespaces.length}-${workers ?? "default"}${variant.tag ? `-${variant.tag}` : ""}`;
  let argv = [...nsproxyArgv(glob, port, upstreamPort, dir, workers), ...(variant.args ?? [])];
  if (variant.accessLog) argv = argv.filter((a) => a !== "--no-access-log");
  return startUnderProbes("nsproxy", [argv], namespaces, port, limitMs, variant.env, variant.accessLog).then((r) => ({ ...r, adminSock: `${dir}/admin/admin.sock` }));
}

/**
 * What a proxy said besides its normal start-up: counts of warnings and errors, and the first distinct kinds (each cut
 * to `width`). Lines containing `expected.text` are left out and the summary says so (`expected.why`).
 */
export function logSummary(name: ProxyName, log: string[], opts: { width?: number; expected?: { text: string; why: string } } = {}): string {
  const { width = 200, expected } = opts;
  const bad = log.filter((l) => (name === "nsproxy" ? / (warn|error) /.test(l) : /\[(WARNING|ALERT)\]/.test(l)) && !(expected && l.includes(expected.text)));
  if (bad.length === 0) return `${name} logged no warning or error${expected && name === "nsproxy" ? ` (besides ${expected.why})` : ""}`;
  // Same message for different tenants or threads counts once: strip names and numbers.
  const kinds = new Map<string, string>();
  for (const l of bad) {
    const key = l.replace(/^\S+Z /, "").replace(/[\w.-]*\d[\w.:[\]-]*/g, "#");
    if (!kinds.has(key)) kinds.set(key, l.replace(/^\S+Z /, "").slice(0, width));
  }
  return `${name} logged ${bad.length} warning/error lines, e.g. ${[...kinds.values()].slice(0, 3).map((k) => `\`${k}\``).join("; ")}`;
}

/**
 * `logSocket`: with `option httplog`, its lines sent to that unix datagram socket (see proxyConfig). When the tenants
 * do not fit one process under `fdLimit` (haproxyLayout), several processes of one thread, each with its share
 * (without `fdLimit`: one process, as bench/deno.ts wants).
 */
export async function startHaproxy(namespaces: string[], port: number, upstreamPort: number, limitMs: number, logSocket?: string, fdLimit = Infinity): Promise<Running> {
  const { groups, nbthread } = haproxyLayout(namespaces, fdLimit);
  const argvs = groups.map((g, i) => haproxyArgv(writeConfig(`${TMP}/haproxy-${namespaces.length}${logSocket ? "-log" : ""}${groups.length > 1 ? `-${i + 1}` : ""}.cfg`, proxyConfig(g, port, upstreamPort, logSocket, nbthread))));
  const r = await startUnderProbes("HAProxy", argvs, namespaces, port, limitMs);
  if (groups.length === 1) return r;
  const sizes = [...new Set(groups.map((g) => fmt(g.length)))].join(" or ");
  return { ...r, layout: `${groups.length} processes × ${sizes} tenants, ${nbthread} thread each` };
}

/** checkUrl over plain HTTP to 127.0.0.1:port, where the tenant is named after its namespace (--discover). */
export function check(ns: string, port: number): string {
  return checkUrl(ns, `http://127.0.0.1:${port}`, ns);
}

/**
 * `curl -sv` from inside `ns` through the proxy to the upstream's /echo with a forged tenant header and
 * X-Forwarded-For: a 200 showing exactly one tenant header, the right one, and the proxy's own X-Forwarded-For. Over
 * TLS (`ca` given) verified against that CA; with `tlsCn`, the certificate's CN and ALPN http/1.1 are checked too.
 */
export function checkUrl(ns: string, url: string, tenant: string, ca?: string, tlsCn?: string): string {
  const argv = ["ip", "netns", "exec", ns, "curl", "-sv", "--max-time", "10", "-H", "X-Nsproxy-Tenant: forged", "-H", "X-Forwarded-For: 6.6.6.6", ...(ca ? ["--cacert", ca] : []), `${url}/echo`];
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  const err = r.stderr.toString();
  const status = /^< HTTP\/1\.1 (\d+)/m.exec(err)?.[1];
  const body = r.stdout.toString().trim();
  const want = `tenant=${tenant} copies=1 xff=127.0.0.1`;
  if (status !== "200" || body !== want) throw new Error(`check ${url} in ${ns}: got ${status} '${body}', want 200 '${want}'\n${err.slice(-600)}`);
  if (tlsCn) {
    const cn = subjectOf(err);
    const alpn = /ALPN: server accepted (\S+)/.exec(err)?.[1] ?? /ALPN, server accepted to use (\S+)/.exec(err)?.[1];
    if (cn !== tlsCn) throw new Error(`check ${url} in ${ns}: certificate CN '${cn}', want '${tlsCn}'`);
    if (alpn !== "http/1.1") throw new Error(`check ${url} in ${ns}: ALPN '${alpn}', want http/1.1`);
    return `${status} ${body}, CN=${cn}, ALPN ${alpn}`;
  }
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
