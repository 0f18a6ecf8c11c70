// Ingress: one listener on host loopback routing HTTP by Host to each tenant's own service at 127.0.0.1:3000 inside
// its namespace. nsproxy (`[daemon] ingress_listen`, ingress-only tenants) against HAProxy (one frontend, `use_backend`
// through a Host map, one backend per tenant with `server … namespace NS`), at 1 and 1000 tenants: req/s, latency, CPU
// per request of the proxy, backend connections each opened and kept, and RSS per extra ingress tenant.
//
// Usage (root; host loopback and the bench's own namespaces only):
//   bun bench/ingress.ts [--tenants 1,1000] [--duration 10] [--rounds 3] [--conns 20] [--nsproxy dist|source|PATH]
//                        [--quiet-wait 15]   (minutes, in all, it may wait for other work on the machine to stop)
//                        [--soak 0]          (seconds of extra load on nsproxy alone after the rounds, memory and fds sampled)
//                        [--out bench/RESULTS-ingress.md]
// Writes bench/RESULTS-ingress.md and prints it.
import type { Subprocess } from "bun";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { elapsedS, fmt, log, median, spread as range } from "./lib/format.ts";
import { HTTP_DEFAULTS, writeConfig } from "./lib/haproxy.ts";
import { logSummary, waitAttached, type ProxyName } from "./lib/proxies.ts";
import { cpuSeconds, loadavg, machine, machineBusySeconds, statusKb as status } from "./lib/proc.ts";
import { addNamespaces, BUN, collectLines, copyBinary, ensureTools, freePort, nsproxyRunFlags, PREFIX, removeStale, ROOT, runBench, sh, spawn, stop, TMP } from "./lib/setup.ts";
import { wrk as wrkRun, type WrkResult } from "./lib/wrk.ts";

/** The tenants' service inside every namespace: nsproxy's on :3000, HAProxy's on :3001 (two identical processes, so each proxy's backend connections are counted apart). */
const BACKEND_PORT: Record<"nsproxy" | "HAProxy", number> = { nsproxy: 3000, HAProxy: 3001 };
const backendAddr = (p: "nsproxy" | "HAProxy") => `127.0.0.1:${BACKEND_PORT[p]}`;
const WARMUP_S = 3;
/** Nothing the bench starts may outlive this, whatever happens to the bench. */
const CHILD_LIFETIME_MS = 30 * 60_000;

const { values: args } = parseArgs({
  options: {
    tenants: { type: "string", default: "1,1000" },
    duration: { type: "string", default: "10" },
    rounds: { type: "string", default: "3" },
    conns: { type: "string", default: "20" },
    nsproxy: { type: "string", default: "dist" },
    "quiet-wait": { type: "string", default: "15" },
    soak: { type: "string", default: "0" },
    out: { type: "string", default: `${import.meta.dir}/RESULTS-ingress.md` },
  },
});
const counts = [...new Set(args.tenants.split(",").map(Number))].sort((a, b) => a - b);
const durationS = Number(args.duration);
const rounds = Number(args.rounds);
const conns = Number(args.conns);
const soakS = Number(args.soak);
if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 5000) || !(durationS >= 1 && durationS <= 60) || !(rounds >= 1 && rounds <= 10) || !(conns >= 1 && conns <= 1000) || !(Number(args["quiet-wait"]) >= 0 && Number(args["quiet-wait"]) <= 60) || !(soakS >= 0 && soakS <= 1800)) {
  console.error("usage: bun bench/ingress.ts [--tenants 1,1000] [--duration 1..60] [--rounds 1..10] [--conns 1..1000] [--nsproxy dist|source|PATH] [--quiet-wait 0..60 min] [--soak 0..1800 s] [--out FILE]");
  process.exit(2);
}

const notes: string[] = [];

// ------------------------------------------------------------------ the machine's load

/** Longest the bench waits, in all, for the machine to be quiet before its runs (then it runs anyway and says so). */
const QUIET_BUDGET_MS = Number(args["quiet-wait"]) * 60_000;
/** Quiet: the machine's busy time, with our proxies idle, under this many cores. */
const QUIET_CORES = 0.15;
/** A run during which other work used more than this many cores is run again (at most twice, within the budget). */
const DIRTY_CORES = 0.25;
let quietBudgetMs = QUIET_BUDGET_MS;

/** Wait (within the bench's budget) until other work on the machine uses less than QUIET_CORES; returns the last reading. */
async function waitQuiet(what: string): Promise<{ cores: number; waitedMs: number }> {
  const t0 = Date.now();
  let announced = false;
  for (;;) {
    const b0 = machineBusySeconds();
    await Bun.sleep(1000);
    const cores = machineBusySeconds() - b0;
    if (cores < QUIET_CORES || quietBudgetMs - (Date.now() - t0) <= 0) {
      quietBudgetMs -= Date.now() - t0;
      if (announced) log(`${what}: machine quiet enough (${cores.toFixed(2)} cores busy) after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      return { cores, waitedMs: Date.now() - t0 };
    }
    if (!announced) {
      log(`${what}: machine busy (${cores.toFixed(2)} cores used by others); waiting up to ${(quietBudgetMs / 60_000).toFixed(1)} min more in all`);
      announced = true;
    }
  }
}

/** How many of `pid`'s descriptors are open on a network namespace (nsfs "net:[…]"). */
function netnsFds(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const l = readlinkSync(`/proc/${pid}/fd/${fd}`);
      // An fd opened on /run/netns/NAME reads back as that path; one on /proc/…/ns/net as net:[inode].
      if (l.startsWith("net:[") || l.startsWith("/run/netns/")) n++;
    } catch {}
  }
  return n;
}

// ------------------------------------------------------------------ the tenants' service: one HAProxy, N namespaces

/**
 * One single-threaded HAProxy listening on 127.0.0.1:3000 inside every namespace (`bind … namespace NS`, one frontend
 * per tenant), answering from memory: `ok\n` for the load, and on /echo the tenant it is and what the proxy sent.
 * Its stats socket counts the connections the proxies open to it and the requests each tenant received.
 */
function backendConfig(namespaces: string[], port: number, sock: string): string {
  const fronts = namespaces.map(
    (ns, i) => `frontend t${i}
  bind 127.0.0.1:${port} namespace ${ns}
  http-request return status 200 content-type text/plain lf-string "tenant=t${i} host=%[req.hdr(host)] xff=%[req.hdr(x-forwarded-for)] xfh=%[req.hdr(x-forwarded-host)] xfp=%[req.hdr(x-forwarded-proto)] fwd=%[req.hdr_cnt(forwarded)]\\n" if { path /echo }
  http-request return status 200 content-type text/plain string "ok\\n"
`,
  );
  return `global
  nbthread 1
  maxconn 6000
  stats socket ${sock} mode 600 level admin
${HTTP_DEFAULTS}
${fronts.join("\n")}`;
}

/** The reference proxy: one frontend on host loopback, the backend picked by Host through a map; one backend a tenant. */
function haproxyIngressConfig(namespaces: string[], port: number, mapFile: string): string {
  writeFileSync(mapFile, namespaces.map((_, i) => `t${i}.example b-t${i}\n`).join(""));
  const backs = namespaces.map(
    (ns, i) => `backend b-t${i}
  server s ${backendAddr("HAProxy")} namespace ${ns}
`,
  );
  return `global
  nbthread 2
  maxconn 6000
${HTTP_DEFAULTS}  http-reuse always

frontend ingress
  bind 127.0.0.1:${port}
  http-request del-header forwarded
  http-request del-header x-forwarded-for
  http-request set-header x-forwarded-proto http
  http-request set-header x-forwarded-host %[req.hdr(host)]
  option forwardfor
  use_backend %[req.hdr(host),field(1,:),lower,map(${mapFile})]
  default_backend no-tenant

backend no-tenant
  http-request return status 404 content-type text/plain string "no tenant\\n"

${backs.join("\n")}`;
}

/** One command on a HAProxy stats socket (it answers and closes). */
async function hapCmd(sock: string, cmd: string): Promise<string> {
  let out = "";
  const dec = new TextDecoder();
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`stats socket ${sock}: no answer to '${cmd}'`)), 10_000);
    void Bun.connect({
      unix: sock,
      socket: {
        open(s) {
          s.write(`${cmd}\n`);
        },
        data(_s, d) {
          out += dec.decode(d, { stream: true });
        },
        close() {
          clearTimeout(t);
          resolve();
        },
        error(_s, e) {
          clearTimeout(t);
          reject(e);
        },
      },
    }).catch(reject);
  });
  return out;
}

interface BackendCounters {
  cumConns: number;
  currConns: number;
  cumReq: number;
  /** Requests each tenant's frontend received so far. */
  perTenant: Map<string, number>;
}

async function backendCounters(sock: string): Promise<BackendCounters> {
  const info = await hapCmd(sock, "show info");
  const num = (k: string) => Number(new RegExp(`^${k}: (\\d+)`, "m").exec(info)?.[1] ?? NaN);
  const csv = (await hapCmd(sock, "show stat")).split("\n").filter(Boolean);
  const head = csv[0]!.replace(/^# /, "").split(",");
  const [px, sv, req] = ["pxname", "svname", "req_tot"].map((k) => head.indexOf(k));
  const perTenant = new Map<string, number>();
  for (const line of csv.slice(1)) {
    const f = line.split(",");
    if (f[sv!] === "FRONTEND") perTenant.set(f[px!]!, Number(f[req!]));
  }
  return { cumConns: num("CumConns"), currConns: num("CurrConns"), cumReq: num("CumReq"), perTenant };
}

interface Backend {
  pid: number;
  sock: string;
  port: number;
  proc: Subprocess<"ignore" | "pipe", "pipe", "pipe">;
  log: string[];
}

async function startBackend(all: string[], port: number): Promise<Backend> {
  const sock = `${TMP}/backend-${port}.sock`;
  const cfg = writeConfig(`${TMP}/backend-${port}.cfg`, backendConfig(all, port, sock));
  const t = performance.now();
  const proc = spawn(["haproxy", "-db", "-f", cfg], CHILD_LIFETIME_MS);
  const log: string[] = [];
  void collectLines(proc.stderr, log);
  void collectLines(proc.stdout, log);
  for (let i = 0; ; i++) {
    if (existsSync(sock) && (await hapCmd(sock, "show info").catch(() => "")).includes("CumConns")) break;
    if (proc.exitCode !== null || i > 600) throw new Error(`the backend haproxy on :${port} did not start:\n${log.join("\n")}`);
    await Bun.sleep(50);
  }
  notes.push(`tenants' service on :${port}: one haproxy bound in ${all.length} namespaces, up in ${fmt(performance.now() - t)} ms, RSS ${fmt(status(proc.pid, "VmRSS") / 1024, 1)} MB`);
  return { pid: proc.pid, sock, port, proc, log };
}

// ------------------------------------------------------------------ the two proxies

interface Running {
  name: ProxyName;
  proc: Subprocess<"ignore" | "pipe", "pipe", "pipe">;
  port: number;
  readyMs: number;
  rssKb: number;
  anonKb: number;
  nsFds: number;
  log: string[];
  notes: string[];
}

/** A plain GET through the proxy with a Host header (curl: fetch may not let a Host header through as given). */
async function get(port: number, host: string, path = "/", extra: string[] = []): Promise<{ status: number; body: string }> {
  const r = Bun.spawn(["curl", "-sS", "--max-time", "5", "-H", `Host: ${host}`, ...extra, "-w", "\n%{http_code}", `http://127.0.0.1:${port}${path}`], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(r.stdout).text();
  await r.exited;
  const cut = out.lastIndexOf("\n");
  return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut).trim() };
}

/** Spawn, then poll the last tenant's host until a 200; RSS read half a second later (lazily touched pages settle). */
async function startProxy(name: ProxyName, argv: string[], port: number, n: number, limitMs: number): Promise<Running> {
  const t0 = performance.now();
  const proc = spawn(argv, CHILD_LIFETIME_MS);
  const log: string[] = [];
  void collectLines(proc.stderr, log);
  void collectLines(proc.stdout, log);
  const last = `t${n - 1}.example`;
  const early = new Map<number, number>();
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      await Bun.sleep(100);
      throw new Error(`${name} exited (${proc.exitCode ?? proc.signalCode}) during start-up:\n${log.slice(-20).join("\n")}`);
    }
    const st = (await get(port, last).catch(() => ({ status: 0 }))).status;
    if (st === 200) break;
    early.set(st, (early.get(st) ?? 0) + 1);
    if (performance.now() - t0 > limitMs) {
      proc.kill("SIGKILL");
      throw new Error(`${name}: ${last} not served within ${limitMs} ms:\n${log.slice(-20).join("\n")}`);
    }
    await Bun.sleep(20);
  }
  const readyMs = performance.now() - t0;
  const notes: string[] = [];
  const answered = [...early].filter(([st]) => st !== 0);
  if (answered.length > 0) notes.push(`${name}: while starting, before ${last} answered 200, curl polling every ~20 ms got ${answered.map(([st, k]) => `${k}× ${st}`).join(", ")} for it`);
  if (name === "nsproxy") notes.push(`nsproxy: ${await waitAttached(log, n, 10_000, proc)}`);
  await Bun.sleep(500);
  return { name, proc, port, readyMs, rssKb: status(proc.pid, "VmRSS"), anonKb: status(proc.pid, "RssAnon"), nsFds: netnsFds(proc.pid), log, notes };
}

let nsproxyCmd: string[] = [];

function nsproxyConfig(namespaces: string[], port: number): string {
  const tenants = namespaces.map((ns, i) => `[tenants.t${i}]\nnetns = "${ns}"\ningress_hosts = ["t${i}.example"]\ningress_backend = "${backendAddr("nsproxy")}"\n`);
  return `[daemon]\ningress_listen = ["127.0.0.1:${port}"]\n\n${tenants.join("\n")}`;
}

function startNsproxy(namespaces: string[], port: number): Promise<Running> {
  const dir = `${TMP}/nsproxy-${namespaces.length}`;
  const flags = nsproxyRunFlags(dir);
  writeFileSync(`${dir}/c.toml`, nsproxyConfig(namespaces, port));
  const argv = [...nsproxyCmd, "run", "-c", `${dir}/c.toml`, "-w", "2", ...flags];
  return startProxy("nsproxy", argv, port, namespaces.length, 60_000 + namespaces.length * 30);
}

function startHaproxy(namespaces: string[], port: number): Promise<Running> {
  const n = namespaces.length;
  const cfg = writeConfig(`${TMP}/haproxy-ingress-${n}.cfg`, haproxyIngressConfig(namespaces, port, `${TMP}/hosts-${n}.map`));
  return startProxy("HAProxy", ["haproxy", "-db", "-f", cfg], port, n, 60_000 + n * 30);
}

/**
 * The same request through each proxy for the first, middle and last tenant, with a forged X-Forwarded-For and
 * Forwarded: it must reach that tenant's own service with the proxy's X-Forwarded-* and no Forwarded; an unknown
 * host must be a 404.
 */
async function check(r: Running, n: number): Promise<string> {
  const seen: string[] = [];
  for (const i of [...new Set([0, Math.floor(n / 2), n - 1])]) {
    const host = `T${i}.Example:80`;
    const got = await get(r.port, host, "/echo", ["-H", "X-Forwarded-For: 6.6.6.6", "-H", "Forwarded: for=6.6.6.6"]);
    const want = `tenant=t${i} host=${host} xff=127.0.0.1 xfh=${host} xfp=http fwd=0`;
    if (got.status !== 200 || got.body !== want) throw new Error(`${r.name} check for ${host}: got ${got.status} '${got.body}', want 200 '${want}'`);
    seen.push(got.body);
  }
  const unknown = await get(r.port, "nobody.example");
  if (unknown.status !== 404) throw new Error(`${r.name}: unknown host gave ${unknown.status}, want 404`);
  return `200 \`${seen[0]}\`${seen.length > 1 ? ` (and ${seen.length - 1} more tenants)` : ""}; unknown host 404`;
}

// ------------------------------------------------------------------ load

interface Run {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
  cpuUsPerReq: number;
  backendCpuUsPerReq: number;
  wrkCpuUsPerReq: number;
  /** Connections the proxy opened to the tenants' service during the run. */
  backendConnsOpened: number;
  /** Connections to the tenants' service still open half a second after the run (kept idle by the proxy, plus the other proxy's). */
  backendConnsOpenAfter: number;
  tenantsHit: number;
  minPerTenant: number;
  maxPerTenant: number;
  backendReqs: number;
  /** Cores busy on the machine during the run, and what of that was neither the proxy, its backend nor wrk. */
  machineCores: number;
  otherCores: number;
  /** Cores busy just before the run with everything idle (waitQuiet's last reading). */
  quietBefore: number;
}

/**
 * wrk's Lua: every request of this (single) wrk thread takes the next tenant's Host, round-robin over all of them,
 * whatever connection it goes on; the N requests are formatted once in init(), so the client's per-request cost does
 * not grow with N.
 */
function wrkScript(n: number): string {
  const path = `${TMP}/round-robin-${n}.lua`;
  writeFileSync(
    path,
    `local n = ${n}
local reqs = {}
local i = 0
function init(args)
  for k = 0, n - 1 do reqs[k + 1] = wrk.format("GET", "/", { Host = "t" .. k .. ".example" }) end
end
function request()
  i = i % n + 1
  return reqs[i]
end
`,
  );
  return path;
}

/** wrk on the host's loopback, every request's Host from `script`. */
function wrk(port: number, script: string, seconds: number): Promise<WrkResult> {
  return wrkRun(undefined, `http://127.0.0.1:${port}/`, { conns, durationS: seconds, args: ["-s", script] });
}

async function loadRun(r: Running, backend: Backend, script: string, label: string): Promise<Run> {
  const quiet = await waitQuiet(label);
  // One second of the same load first, untimed: the proxy's idle backend connections expired while the other
  // proxy ran (nsproxy keeps them 4 s), and the measured run is of the steady state.
  await wrk(r.port, script, 1);
  const b0 = await backendCounters(backend.sock);
  const c0 = cpuSeconds(r.proc.pid);
  const bc0 = cpuSeconds(backend.pid);
  const m0 = machineBusySeconds();
  const w0 = performance.now();
  const w = await wrk(r.port, script, durationS);
  const cpuS = w.clientCpuS ?? NaN;
  const wallS = (performance.now() - w0) / 1000;
  const m1 = machineBusySeconds();
  const c1 = cpuSeconds(r.proc.pid);
  const bc1 = cpuSeconds(backend.pid);
  await Bun.sleep(500);
  const b1 = await backendCounters(backend.sock);
  const requests = w.requests;
  const deltas = [...b1.perTenant].map(([k, v]) => v - (b0.perTenant.get(k) ?? 0));
  const hit = deltas.filter((d) => d > 0);
  return {
    rps: w.rps,
    p50Ms: w.p50Ms,
    p99Ms: w.p99Ms,
    requests,
    errors: w.errors,
    cpuUsPerReq: ((c1 - c0) * 1e6) / Math.max(1, requests),
    backendCpuUsPerReq: ((bc1 - bc0) * 1e6) / Math.max(1, requests),
    wrkCpuUsPerReq: (cpuS * 1e6) / Math.max(1, requests),
    backendConnsOpened: b1.cumConns - b0.cumConns,
    backendConnsOpenAfter: b1.currConns,
    tenantsHit: hit.length,
    minPerTenant: hit.length ? Math.min(...hit) : 0,
    maxPerTenant: hit.length ? Math.max(...hit) : 0,
    backendReqs: b1.cumReq - b0.cumReq,
    machineCores: (m1 - m0) / wallS,
    otherCores: (m1 - m0 - (c1 - c0) - (bc1 - bc0) - cpuS) / wallS,
    quietBefore: quiet.cores,
  };
}

// ------------------------------------------------------------------ report

interface Row {
  n: number;
  proxy: ProxyName;
  runs: Run[];
  rssKb: number;
  anonKb: number;
  nsFds: number;
  readyMs: number;
  rssAfterKb?: number;
  anonAfterKb?: number;
  check: string;
  /** Runs spoiled by other work on the machine, run again (shown under "Every run"). */
  discarded: Run[];
}

const rows: Row[] = [];
function perExtraTenant(r: Row, key: "anonKb" | "rssKb"): number | undefined {
  const base = rows.filter((x) => x.proxy === r.proxy).sort((a, b) => a.n - b.n)[0];
  if (!base || base.n >= r.n) return undefined;
  return (r[key] - base[key]) / (r.n - base.n);
}

function table(): string {
  const head = [
    "tenants",
    "proxy",
    "req/s median (range)",
    "nsproxy/HAProxy",
    "p50 ms",
    "p99 ms",
    "proxy CPU µs/req median (range)",
    "backend conns opened / run",
    "backend conns open after",
    "errors",
    "others' load, cores (max)",
    "RSS MB",
    "anon MB",
    "anon per extra tenant kB",
    "RSS per extra tenant kB",
    "netns fds",
    "anon after load MB",
  ];
  const out = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const r of rows) {
    const ha = rows.find((x) => x.n === r.n && x.proxy === "HAProxy");
    const ratio = r.proxy === "nsproxy" && ha ? fmt(median(r.runs.map((x) => x.rps)) / median(ha.runs.map((x) => x.rps)), 2) : "";
    out.push(
      `| ${[
        fmt(r.n),
        r.proxy,
        range(r.runs.map((x) => x.rps)),
        ratio,
        fmt(median(r.runs.map((x) => x.p50Ms)), 2),
        fmt(median(r.runs.map((x) => x.p99Ms)), 2),
        range(r.runs.map((x) => x.cpuUsPerReq), 1),
        r.runs.map((x) => fmt(x.backendConnsOpened)).join(", "),
        r.runs.map((x) => fmt(x.backendConnsOpenAfter)).join(", "),
        fmt(r.runs.reduce((a, x) => a + x.errors, 0)),
        fmt(Math.max(...r.runs.map((x) => x.otherCores)), 2),
        fmt(r.rssKb / 1024, 1),
        fmt(r.anonKb / 1024, 1),
        fmt(perExtraTenant(r, "anonKb"), 1),
        fmt(perExtraTenant(r, "rssKb"), 1),
        fmt(r.nsFds),
        fmt(r.anonAfterKb === undefined ? undefined : r.anonAfterKb / 1024, 1),
      ].join(" | ")} |`,
    );
  }
  return out.join("\n");
}

function everyRun(): string {
  const one = (x: Run) =>
    `${fmt(x.rps)} req/s, p50 ${fmt(x.p50Ms, 2)} p99 ${fmt(x.p99Ms, 2)} ms, proxy ${fmt(x.cpuUsPerReq, 1)} µs/req, backend ${fmt(x.backendCpuUsPerReq, 1)} µs/req, wrk ${fmt(x.wrkCpuUsPerReq, 1)} µs/req, ` +
    `${fmt(x.requests)} requests (backend counted ${fmt(x.backendReqs)}) over ${fmt(x.tenantsHit)} tenants (${fmt(x.minPerTenant)}–${fmt(x.maxPerTenant)} each), ` +
    `${fmt(x.backendConnsOpened)} backend conns opened, ${fmt(x.backendConnsOpenAfter)} open after; machine ${fmt(x.machineCores, 2)} cores busy, ${fmt(x.otherCores, 2)} of them not proxy/backend/wrk (${fmt(x.quietBefore, 2)} just before)` +
    `${x.errors ? `, **${x.errors} errors**` : ""}`;
  return rows
    .map(
      (r) =>
        `- ${r.n} tenant(s), ${r.proxy} (ready in ${fmt(r.readyMs)} ms; check ${r.check}):\n${r.runs.map((x, i) => `  ${i + 1}. ${one(x)}`).join("\n")}` +
        (r.discarded.length ? `\n${r.discarded.map((x) => `  - discarded (other work on the machine), run again: ${one(x)}`).join("\n")}` : ""),
    )
    .join("\n");
}

function versions(): string {
  const first = (argv: string[]) => {
    try {
      return sh(argv).split("\n")[0]!.trim();
    } catch (e) {
      return `? (${(e as Error).message.slice(0, 80)})`;
    }
  };
  const nsv = first([...nsproxyCmd, "--version"]);
  const wrkv = (Bun.spawnSync(["wrk", "-v"]).stdout.toString() || "wrk").split("\n")[0]!.trim();
  return `${nsv} (${args.nsproxy === "source" ? "from source: bun src/cli.ts" : `binary ${args.nsproxy === "dist" ? "dist/nsproxy" : args.nsproxy}, copied at start`}, bun ${Bun.version}); ${first(["haproxy", "-v"])}; ${wrkv}`;
}

function markdown(elapsedS: number): string {
  const m = machine();
  return `## Ingress: nsproxy vs HAProxy \`server … namespace\`

- Machine: ${m.cpus} CPUs (nproc), ${m.model}, ${m.memGb.toFixed(0)} GB RAM, kernel ${m.kernel}
- ${versions()}
- Date: ${new Date().toISOString()}; took ${fmt(elapsedS)} s
- Command: \`${`bun bench/ingress.ts ${process.argv.slice(2).join(" ")}`.trim()}\`

${table()}

How each figure is made (bench/ingress.ts):
- **Tenants' service**: a single-threaded HAProxy process listening on 127.0.0.1:PORT inside every tenant's namespace
  (\`bind 127.0.0.1:PORT namespace NS\`, one frontend per tenant) and answering \`ok\\n\` from memory, so 1000
  namespaces need one process, not 1000, the backend stays cheap (its CPU per request is in "Every run") and the
  proxies dominate. Two identical ones, nsproxy's on :3000 and HAProxy's on :3001, so that each one's stats socket
  counts one proxy's backend connections: **opened** during the run (CumConns) and still **open after** it (CurrConns
  half a second after wrk ends: the idle connections the proxy keeps), and the requests each tenant received.
- **nsproxy**: \`run -c FILE -w 2 --no-access-log\`, \`[daemon] ingress_listen = ["127.0.0.1:PORT"]\` and N
  ingress-only tenants (\`netns\`, \`ingress_hosts = ["tN.example"]\`, \`ingress_backend = "127.0.0.1:3000"\`; no
  \`listen\`/\`upstream\`). Backend connections: made by libnetns (setns, socket, connect, setns back) and pooled per
  tenant per worker (at most 8 idle, 4 s).
- **HAProxy**: \`nbthread 2\`, one \`frontend\` on 127.0.0.1:PORT, \`use_backend %[req.hdr(host),field(1,:),lower,map(FILE)]\`
  with a map of N lines, \`default_backend\` a 404; N backends \`server s 127.0.0.1:3001 namespace NS\`;
  \`http-reuse always\` (idle server connections shared between client connections); the same header work as
  nsproxy (client X-Forwarded-For and Forwarded removed, \`option forwardfor\`, X-Forwarded-Proto/Host set).
- **Load**: \`wrk -t1 -c${conns} -d${durationS}s --latency -s round-robin.lua\` on host loopback, keep-alive: the Lua
  script gives each request the next tenant's \`Host: tK.example\`, round-robin over all N tenants (requests formatted
  once in \`init\`), so at 1000 tenants consecutive requests on one client connection go to different tenants. Both
  proxies run at once; ${rounds} round(s) alternating the order (A B, B A, …), each proxy warmed up ${WARMUP_S} s first,
  and 1 s of the same load untimed right before each measured run (steady state: nsproxy's idle backend connections
  expire after 4 s, so while the other proxy runs); the median and the range over the rounds.
- **Conditions**: before each run the bench waits (${QUIET_BUDGET_MS / 60_000} min at most in all) until the machine, with
  the proxies idle, is under ${QUIET_CORES} cores busy; **others' load** is the machine's busy CPU (/proc/stat) during
  the run minus what the proxy, its backend and wrk used, in cores (it includes softirq time the kernel charged to
  no process, so it is not quite 0 even on a quiet machine); a run where it exceeded ${DIRTY_CORES} is run again (twice at
  most, while the wait budget lasts) and listed as discarded.
- **CPU µs/req**: the proxy's utime+stime (all threads, /proc/PID/stat) over the wrk run divided by wrk's requests.
- **RSS**: VmRSS and RssAnon of the proxy (one process: nsproxy's workers are threads) once the last tenant's host
  answers, before any load; **per extra tenant** = (N-tenant figure − 1-tenant figure) / (N − 1). **netns fds**:
  descriptors open on a network namespace. **anon after load**: RssAnon after the last round.
- **check** (per proxy per N, first, middle and last tenant): \`curl -H "Host: TK.Example:80"\` with a forged
  X-Forwarded-For and Forwarded to \`/echo\`: must reach that tenant's own service with host, X-Forwarded-For
  127.0.0.1, X-Forwarded-Host as sent, X-Forwarded-Proto http and no Forwarded; an unknown host must be a 404.

### Every run

${everyRun()}

### Notes

${notes.map((n) => `- ${n}`).join("\n")}
`;
}

// ------------------------------------------------------------------ main

function resolveNsproxy(): void {
  if (args.nsproxy === "source") {
    nsproxyCmd = [BUN, `${ROOT}/src/cli.ts`];
    return;
  }
  const src = args.nsproxy === "dist" ? `${ROOT}/dist/nsproxy` : args.nsproxy;
  if (!existsSync(src)) throw new Error(`${src} is missing: build it (bun build.ts) or pass --nsproxy source`);
  nsproxyCmd = [copyBinary(src)];
  if (args.nsproxy === "dist") {
    const built = statSync(src).mtimeMs;
    const newer = sh(["find", `${ROOT}/src`, `${ROOT}/libnetns.c`, "-newer", src, "-name", "*.ts", "-o", "-newer", src, "-name", "*.c"]).split("\n").filter((l) => l && !l.endsWith(".test.ts"));
    notes.push(`dist/nsproxy built ${new Date(built).toISOString()}${newer.length ? `; changed since in the working tree (not in the binary): ${newer.map((f) => f.replace(`${ROOT}/`, "")).join(", ")}` : "; no source file is newer"}`);
  }
  const help = spawnSync(nsproxyCmd[0]!, [...nsproxyCmd.slice(1), "run", "--help"], { encoding: "utf8" });
  if (!`${help.stdout}${help.stderr}`.includes("--ingress-listen")) throw new Error(`${nsproxyCmd.join(" ")} has no --ingress-listen: rebuild it`);
}

/**
 * Leak watch: `soakS` more seconds of the same load on nsproxy alone, in 10-s pieces, its anonymous memory and open
 * descriptors after each; then 6 s idle (the pool keeps a connection 4 s) and the same again: what is left open.
 */
async function soak(r: Running, backend: Backend, script: string, n: number): Promise<void> {
  const fds = () => readdirSync(`/proc/${r.proc.pid}/fd`).length;
  const samples: string[] = [`start ${fmt(status(r.proc.pid, "RssAnon") / 1024, 1)} MB/${fds()} fds`];
  let requests = 0;
  let errors = 0;
  const t0 = performance.now();
  for (let done = 0; done < soakS; done += 10) {
    const w = await wrk(r.port, script, Math.min(10, soakS - done));
    requests += w.requests;
    errors += w.errors;
    samples.push(`${fmt(status(r.proc.pid, "RssAnon") / 1024, 1)}/${fds()}`);
  }
  const loadS = (performance.now() - t0) / 1000;
  await Bun.sleep(6000);
  const idle = await backendCounters(backend.sock);
  notes.push(
    `${n} tenant(s): soak, nsproxy alone, ${fmt(loadS)} s of the same load (${fmt(requests)} requests, ${errors} errors): anon MB/open fds after each 10 s: ${samples.join(", ")}; ` +
      `6 s after the load: ${fmt(status(r.proc.pid, "RssAnon") / 1024, 1)} MB/${fds()} fds, ${idle.currConns} backend connections still open`,
  );
}

async function measure(n: number, all: string[], backends: Record<ProxyName, Backend>): Promise<void> {
  const list = all.slice(0, n);
  const script = wrkScript(n);
  const [nPort, hPort] = [freePort(), freePort()];
  log(`${n} tenant(s): starting nsproxy on 127.0.0.1:${nPort}`);
  const nsp = await startNsproxy(list, nPort);
  log(`${n} tenant(s): nsproxy ready in ${nsp.readyMs.toFixed(0)} ms (anon ${(nsp.anonKb / 1024).toFixed(1)} MB); starting HAProxy on 127.0.0.1:${hPort}`);
  const hap = await startHaproxy(list, hPort);
  log(`${n} tenant(s): HAProxy ready in ${hap.readyMs.toFixed(0)} ms (anon ${(hap.anonKb / 1024).toFixed(1)} MB)`);
  const pair: [Running, Row][] = [];
  for (const p of [nsp, hap]) {
    const row: Row = { n, proxy: p.name, runs: [], rssKb: p.rssKb, anonKb: p.anonKb, nsFds: p.nsFds, readyMs: p.readyMs, check: await check(p, n), discarded: [] };
    for (const note of p.notes) notes.push(`${n} tenant(s): ${note}`);
    rows.push(row);
    pair.push([p, row]);
  }
  for (const [p] of pair) await wrk(p.port, script, WARMUP_S);
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? pair : [...pair].reverse();
    for (const [p, row] of order) {
      const label = `${n} tenant(s) round ${round + 1} ${p.name}`;
      let run = await loadRun(p, backends[p.name], script, label);
      for (let again = 0; again < 2 && run.otherCores > DIRTY_CORES && quietBudgetMs > 0; again++) {
        row.discarded.push(run);
        log(`${label}: other work took ${run.otherCores.toFixed(2)} cores during the run (${fmt(run.rps)} req/s, ${fmt(run.cpuUsPerReq, 1)} µs/req): running it again`);
        run = await loadRun(p, backends[p.name], script, label);
      }
      row.runs.push(run);
      log(`${n} tenant(s) round ${round + 1}/${rounds} ${p.name}: ${fmt(run.rps)} req/s, ${fmt(run.cpuUsPerReq, 1)} µs/req, ${run.backendConnsOpened} backend conns opened, ${run.errors} errors`);
    }
  }
  for (const [p, row] of pair) {
    row.rssAfterKb = status(p.proc.pid, "VmRSS");
    row.anonAfterKb = status(p.proc.pid, "RssAnon");
  }
  if (soakS > 0) {
    log(`${n} tenant(s): soak of ${soakS} s on nsproxy`);
    await soak(nsp, backends.nsproxy, script, n);
  }
  await Promise.all([stop(nsp.proc), stop(hap.proc)]);
  // The check's unknown host is meant to be refused: its (rate-limited) line is not news.
  const expected = { text: '"nobody.example"', why: "the check's unknown host" };
  for (const p of [nsp, hap]) notes.push(`${n} tenant(s): ${logSummary(p.name, p.log, { width: 240, expected })}`);
}

await runBench(async () => {
  ensureTools({ binary: false });
  resolveNsproxy();
  const stale = removeStale();
  if (stale > 0) log(`removed ${stale} namespaces left by an earlier ingress bench that was killed`);
  const others = readdirSync("/run/netns").filter((x) => !x.startsWith(PREFIX));
  notes.push(`load average at the start: ${loadavg()}; ${others.length} other namespaces on the host (other runs' tests: ${[...new Set(others.map((x) => x.split("-").slice(0, 2).join("-")))].slice(0, 5).join(", ") || "none"})`);
  notes.push(`RLIMIT_NOFILE ${sh(["sh", "-c", "ulimit -n"]).trim()} (inherited by the proxies and the backends)`);

  const maxN = counts.at(-1)!;
  const all = Array.from({ length: maxN }, (_, i) => `${PREFIX}t${i}`);
  let t = performance.now();
  addNamespaces(all);
  notes.push(`${maxN} namespaces made (\`ip -batch\`, then \`lo\` up by bench/lib/lo-up.ts) in ${fmt(performance.now() - t)} ms; the N-tenant runs use the first N`);

  const backends = { nsproxy: await startBackend(all, BACKEND_PORT.nsproxy), HAProxy: await startBackend(all, BACKEND_PORT.HAProxy) };
  log(`tenants' service up on :3000 and :3001 in ${maxN} namespaces (${PREFIX}*); temp ${TMP}`);

  for (const n of counts) await measure(n, all, backends);
  for (const b of Object.values(backends)) {
    const bad = b.log.filter((l) => /\[(WARNING|ALERT)\]/.test(l));
    notes.push(`tenants' service on :${b.port}: ${bad.length === 0 ? "no warning or error" : `${bad.length} warning/error lines, e.g. \`${bad[0]!.slice(0, 200)}\``}`);
    await stop(b.proc);
  }
  notes.push(`load average at the end: ${loadavg()}`);
  const md = markdown(elapsedS());
  writeFileSync(args.out, md);
  console.log(md);
});
