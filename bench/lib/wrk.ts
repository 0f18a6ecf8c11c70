// wrk inside a tenant namespace (or on the host): one bounded run, its output parsed into figures.
import { cpuSeconds } from "./proc.ts";
import { spawn } from "./setup.ts";

export interface WrkResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Socket errors (connect/read/write/timeout) plus non-2xx/3xx responses: any is worth a look. */
  errors: number;
  /** The proxy's CPU (utime + stime, all threads) over the run, per request: the steadiest figure on a shared box. */
  cpuUsPerReq?: number;
  /** wrk's own CPU over the run in seconds (user + system, from its resource usage): is the client the limit? */
  clientCpuS?: number;
  /** What wrk wrote to stderr (an LD_PRELOAD helper may report there). */
  stderr?: string;
}

export interface WrkOpts {
  conns: number;
  durationS: number;
  /** Extra wrk arguments before the URL, e.g. ["-H", "Connection: close"]. */
  args?: string[];
  /** Extra environment for wrk, e.g. LD_PRELOAD. */
  env?: Record<string, string>;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) throw new Error(`wrk latency '${text}'`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

export function parseWrk(out: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const p50 = /^\s+50%\s+(\S+)/m.exec(out);
  const p99 = /^\s+99%\s+(\S+)/m.exec(out);
  const requests = /(\d+) requests in/.exec(out);
  if (!rps || !p50 || !p99 || !requests) throw new Error(`unexpected wrk output:\n${out}`);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errors = (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + Number(non2xx?.[1] ?? 0);
  return { rps: Number(rps[1]), p50Ms: ms(p50[1]!), p99Ms: ms(p99[1]!), requests: Number(requests[1]), errors };
}

/** One keep-alive run of `durationS` seconds from inside `ns` (undefined: the host); killed 20 s after it should have ended. */
export async function wrk(ns: string | undefined, url: string, opts: WrkOpts): Promise<WrkResult> {
  const argv = [...(ns === undefined ? [] : ["ip", "netns", "exec", ns]), "wrk", "-t1", `-c${opts.conns}`, `-d${opts.durationS}s`, "--latency", ...(opts.args ?? []), url];
  const p = spawn(argv, opts.durationS * 1000 + 20_000, { env: opts.env });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`wrk in ${ns ?? "the host"} exited ${code}: ${err}${out}`);
  // `ip netns exec` execs wrk in its own process: this usage is wrk's.
  const cpu = p.resourceUsage()?.cpuTime;
  return { ...parseWrk(out), stderr: err, clientCpuS: cpu ? Number(cpu.total) / 1e6 : undefined };
}

/** K wrk processes at once, each in its own namespace: requests/s summed, the worst p99, errors summed. */
export async function wrkSpread(namespaces: string[], url: string, opts: { conns: number; durationS: number }): Promise<WrkResult> {
  const runs = await Promise.all(namespaces.map((ns) => wrk(ns, url, opts)));
  return {
    rps: runs.reduce((a, r) => a + r.rps, 0),
    p50Ms: Math.max(...runs.map((r) => r.p50Ms)),
    p99Ms: Math.max(...runs.map((r) => r.p99Ms)),
    requests: runs.reduce((a, r) => a + r.requests, 0),
    errors: runs.reduce((a, r) => a + r.errors, 0),
  };
}

/** Run `load` and charge the CPU the processes `pids` (one proxy, maybe split over several) used meanwhile to its requests. */
export async function withCpu(pids: number | number[], load: () => Promise<WrkResult>): Promise<WrkResult> {
  const all = typeof pids === "number" ? [pids] : pids;
  const cpu = () => all.reduce((a, p) => a + cpuSeconds(p), 0);
  const c0 = cpu();
  const r = await load();
  r.cpuUsPerReq = ((cpu() - c0) * 1e6) / Math.max(1, r.requests);
  return r;
}
