// wrk inside a tenant namespace (or on the host): one bounded run, its output parsed into figures.
import { cpuSeconds } from "./proc.ts";
import { existsSync, writeFileSync } from "node:fs";
import { spawn, TMP } from "./setup.ts";

export interface WrkResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Socket errors (connect/read/write/timeout) plus non-2xx/3xx responses: any is worth a look. */
  errors: number;
  /** The same errors one by one, as wrk counts them. */
  socket: { connect: number; read: number; write: number; timeout: number };
  non2xx: number;
  /** The slowest answer. */
  maxMs: number;
  /** With `quiesce`: requests wrk began to send (see STARTED_LUA). */
  started?: number;
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
  /** End the run before `durationS` once this settles (SIGINT: wrk stops and prints its figures as at the end). */
  until?: Promise<unknown>;
  /**
   * With `until`: count the requests wrk starts (`started`), and end cleanly: once `until` settles wrk starts no
   * new counted request, and gets SIGINT this many ms later (see STARTED_LUA).
   */
  quiesceMs?: number;
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
  const max = /^\s+Latency\s+\S+\s+\S+\s+(\S+)/m.exec(out);
  if (!rps || !p50 || !p99 || !requests || !max) throw new Error(`unexpected wrk output:\n${out}`);
  const [connect, read, write, timeout] = (/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)?.slice(1) ?? [0, 0, 0, 0]).map(Number) as [number, number, number, number];
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = connect + read + write + timeout + non2xx;
  const started = /^started (\d+)$/m.exec(out);
  return { rps: Number(rps[1]), p50Ms: ms(p50[1]!), p99Ms: ms(p99[1]!), maxMs: ms(max[1]!), requests: Number(requests[1]), errors, socket: { connect, read, write, timeout }, non2xx, started: started ? Number(started[1]) : undefined };
}

/**
 * wrk's error counts are not lost requests: a connection the server closes cleanly (FIN) under a request is no
 * error to it (it reconnects and sends the next one), and a reset of an idle connection, which loses nothing, is a
 * read error. This script counts the requests wrk starts; once the file named by its argument exists (checked every
 * 64 requests) each connection gets a request head that never ends instead, not counted, which the server waits
 * for. Stopped a little later, no counted request is in flight, and started − answered is exactly the requests
 * that never got an answer. wrk's pacing is its own (no delay() hook, which would idle every connection a little).
 */
const STARTED_LUA = `local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  started = 0; flag = args[1]; parked = false
  req = wrk.format()
  unfinished = string.sub(req, 1, #req - 2) -- without the blank line that ends the head
end
function request()
  if not parked and (started + 1) % 64 == 0 then
    local f = io.open(flag, "r")
    if f then f:close(); parked = true end
  end
  if parked then return unfinished end
  started = started + 1
  return req
end
function done(summary, latency, requests)
  local n = -1 -- wrk calls request() once in the first thread before the run, to check what it returns
  for _, t in ipairs(threads) do n = n + t:get("started") end
  io.write(string.format("started %d\\n", n))
end
`;

let runs = 0;

function startedScript(): string {
  const path = `${TMP}/wrk-started.lua`;
  if (!existsSync(path)) writeFileSync(path, STARTED_LUA);
  return path;
}

/** One keep-alive run of `durationS` seconds from inside `ns` (undefined: the host); killed 20 s after it should have ended. */
export async function wrk(ns: string | undefined, url: string, opts: WrkOpts): Promise<WrkResult> {
  const flag = `${TMP}/wrk-stop-${++runs}`;
  const argv = [...(ns === undefined ? [] : ["ip", "netns", "exec", ns]), "wrk", "-t1", `-c${opts.conns}`, `-d${opts.durationS}s`, "--latency", ...(opts.quiesceMs ? ["-s", startedScript()] : []), ...(opts.args ?? []), url, ...(opts.quiesceMs ? ["--", flag] : [])];
  const p = spawn(argv, opts.durationS * 1000 + 20_000, { env: opts.env });
  void opts.until?.finally(async () => {
    if (opts.quiesceMs) {
      writeFileSync(flag, "");
      await Bun.sleep(opts.quiesceMs);
    }
    p.kill("SIGINT");
  });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`wrk in ${ns ?? "the host"} exited ${code}: ${err}${out}`);
  // `ip netns exec` execs wrk in its own process: this usage is wrk's.
  const cpu = p.resourceUsage()?.cpuTime;
  return { ...parseWrk(out), stderr: err, clientCpuS: cpu ? Number(cpu.total) / 1e6 : undefined };
}

const sum = (runs: WrkResult[], f: (r: WrkResult) => number) => runs.reduce((a, r) => a + f(r), 0);

/** K wrk processes at once, each in its own namespace: requests/s summed, the worst p99, errors summed. */
export async function wrkSpread(namespaces: string[], url: string, opts: { conns: number; durationS: number }): Promise<WrkResult> {
  const runs = await Promise.all(namespaces.map((ns) => wrk(ns, url, opts)));
  return {
    rps: sum(runs, (r) => r.rps),
    p50Ms: Math.max(...runs.map((r) => r.p50Ms)),
    p99Ms: Math.max(...runs.map((r) => r.p99Ms)),
    maxMs: Math.max(...runs.map((r) => r.maxMs)),
    requests: sum(runs, (r) => r.requests),
    errors: sum(runs, (r) => r.errors),
    socket: { connect: sum(runs, (r) => r.socket.connect), read: sum(runs, (r) => r.socket.read), write: sum(runs, (r) => r.socket.write), timeout: sum(runs, (r) => r.socket.timeout) },
    non2xx: sum(runs, (r) => r.non2xx),
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
