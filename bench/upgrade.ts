// Requests lost per reload under load: nsproxy `upgrade`, nsproxy stop+start, HAProxy's seamless reload (`-x` over
// `expose-fd listeners`, then `-sf`) and plain `-sf`, under the same wrk inside one tenant namespace, in one run.
// Usage: bun bench/upgrade.ts [--reloads 10] [--interval 1] [--conns 20] [--timeout 10] [--migrate 1,0]
//                             [--only upgrade,restart,haproxy-x,haproxy-sf]
// (root; loopback only; writes bench/RESULTS-upgrade.md; its processes, namespaces and files go on exit, failure or Ctrl-C)
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { elapsedS, fmt, log, median } from "./lib/format.ts";
import { haproxyArgv, proxyConfig, startUpstream, writeConfig } from "./lib/haproxy.ts";
import { launch, logSummary, startUnderProbes, waitAttached, type Running } from "./lib/proxies.ts";
import { loadavg, machine } from "./lib/proc.ts";
import { addNamespaces, copyBinary, ensureTools, NSPROXY, nsproxyRunFlags, PREFIX, removeStale, runBench, sh, spawn, stop, stopPid, TMP } from "./lib/setup.ts";
import { wrk, type WrkResult } from "./lib/wrk.ts";

const MECHANISMS = ["none", "upgrade", "restart", "haproxy-x", "haproxy-sf"] as const;
type Key = (typeof MECHANISMS)[number];
const USAGE = `usage: bun bench/upgrade.ts [--reloads 1..30] [--interval 0.2..10] [--conns 1..200] [--timeout 2..60] [--migrate 1,0] [--only ${MECHANISMS.join(",")}]`;
const { values: args } = parseArgs({
  options: {
    reloads: { type: "string", default: "10" },
    interval: { type: "string", default: "1" },
    conns: { type: "string", default: "20" },
    timeout: { type: "string", default: "10" },
    migrate: { type: "string", default: "1,0" },
    only: { type: "string", default: MECHANISMS.join(",") },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const reloads = Number(args.reloads);
const intervalS = Number(args.interval);
const conns = Number(args.conns);
const timeoutS = Number(args.timeout);
const migrates = [...new Set(args.migrate.split(",").map(Number))];
const only = args.only.split(",") as Key[];
if (
  !(Number.isInteger(reloads) && reloads >= 1 && reloads <= 30) ||
  !(intervalS >= 0.2 && intervalS <= 10) ||
  !(Number.isInteger(conns) && conns >= 1 && conns <= 200) ||
  !(timeoutS >= 2 && timeoutS <= 60) ||
  migrates.some((m) => m !== 0 && m !== 1) ||
  only.some((k) => !MECHANISMS.includes(k))
) {
  console.error(USAGE);
  process.exit(2);
}

const PORT = 8080;
const NS = `${PREFIX}tenant`;
const URL = `http://127.0.0.1:${PORT}/`;
/** Load before the first reload and after the last: the steady state on both sides of the reloads. */
const WARM_S = 1.5;
const TAIL_S = 1.5;
/** Start-up and each reload may take this long at most; a stuck one fails the bench rather than skewing it. */
const LIMIT_MS = 30_000;
/** wrk's -d: an upper bound only, each run is ended by SIGINT once its reloads are done. */
const MAX_RUN_S = Math.ceil(WARM_S + TAIL_S + reloads * (intervalS + LIMIT_MS / 1000));

/** One way to replace the proxy serving the tenant: the first generation, one replacement, the last one stopped. */
interface Mechanism {
  key: Key;
  label: string;
  /** Whether net.ipv4.tcp_migrate_req can change the outcome: a listener closes while a sibling on the same address listens. */
  migrateMatters: boolean;
  /** Start the first generation; resolves once it answers inside the namespace. */
  start(tag: string): Promise<void>;
  /** One reload: resolves once the new generation serves and the old one has exited; a gap (ms) when nothing listened meanwhile. */
  reload(): Promise<number | undefined>;
  stop(): Promise<void>;
  /** What every generation of the current run wrote (for the notes). */
  log(): string[];
  /** More about the current run's reloads, for the notes. */
  detail?(): string;
}

let BIN = NSPROXY;
let upstreamPort = 0;

/** nsproxy with the same flags each generation: the tenant's namespace, admin socket and tenants dir under TMP. */
function nsproxy(key: "none" | "upgrade" | "restart"): Mechanism {
  let argv: string[] = [];
  let socket = "";
  let pid = 0;
  let child: Running["proc"] | undefined;
  // A successor writes to its predecessor's pipes (it inherits them): one log per started process.
  let logs: string[][] = [];
  /** Per upgrade: ms until the CLI answered (the successor serves every tenant and holds the admin socket). */
  let answered: number[] = [];
  const m: Mechanism = {
    key,
    label: { none: "nsproxy, no reload (control)", upgrade: "nsproxy `upgrade`", restart: "nsproxy stop, then start" }[key],
    migrateMatters: false,
    log: () => logs.flat(),
    async start(tag) {
      const dir = `${TMP}/nsproxy-${tag}`;
      // The tenant by name, not --discover: a discovering daemon rescans /run/netns on each event there, and other
      // benches on a shared machine create thousands of namespaces (its admin socket then stalls for seconds).
      argv = [BIN, "run", "-l", `127.0.0.1:${PORT}`, "-u", `http://127.0.0.1:${upstreamPort}`, "--netns", NS, ...nsproxyRunFlags(dir)];
      socket = `${dir}/admin/admin.sock`;
      const r = await startUnderProbes("nsproxy", [argv], [NS], PORT, LIMIT_MS);
      logs = [r.log];
      answered = [];
      child = r.proc;
      pid = r.proc.pid;
    },
    reload: { none: async () => undefined, upgrade, restart }[key],
    async stop() {
      await stopPid(pid);
    },
    detail: () => (key === "upgrade" ? `\`nsproxy upgrade\` answered (the successor serving every tenant, holding the admin socket) ${msCell(answered)} ms after it started; the rest of each reload is the old daemon draining and exiting` : ""),
  };
  /** `nsproxy upgrade`: returns once the successor serves and the old daemon has drained and exited. */
  async function upgrade(): Promise<undefined> {
    const t0 = performance.now();
    const cli = spawn([BIN, "upgrade", "--admin-socket", socket, "--json"], LIMIT_MS);
    // It prints the answer, then waits for the old daemon to exit.
    let out = "";
    const dec = new TextDecoder();
    for await (const chunk of cli.stdout) {
      if (!out) answered.push(performance.now() - t0);
      out += dec.decode(chunk, { stream: true });
    }
    const [err, code] = await Promise.all([new Response(cli.stderr).text(), cli.exited]);
    if (code !== 0) throw new Error(`nsproxy upgrade exited ${code}: ${err.trim()}\n${m.log().slice(-20).join("\n")}`);
    pid = (JSON.parse(out) as { new: { pid: number } }).new.pid;
    return undefined;
  }
  /** What `systemctl restart` does under a Type=notify unit: SIGTERM, wait for the exit, start, wait for readiness (the attach line, where READY=1 is sent). */
  async function restart(): Promise<number> {
    const t0 = performance.now();
    await stop(child!, LIMIT_MS);
    const next = launch(argv);
    logs.push(next.log);
    await waitAttached(next.log, 1, LIMIT_MS, next.proc);
    const gap = performance.now() - t0;
    child = next.proc;
    pid = next.proc.pid;
    return gap;
  }
  return m;
}

/**
 * HAProxy 2.6 standalone (`-db`), a `stats socket … expose-fd listeners`, the tenant's frontend `bind … namespace NS`.
 * A reload starts a new process with `-sf OLDPID` (and `-x SOCKET`: it takes the old listening sockets over that
 * socket instead of binding new ones); once it is up it tells the old one to stop, which finishes its connections and exits.
 */
function haproxy(withX: boolean): Mechanism {
  let cfg = "";
  let socket = "";
  let cur: Running["proc"] | undefined;
  let logs: string[][] = [];
  const m: Mechanism = {
    key: withX ? "haproxy-x" : "haproxy-sf",
    label: withX ? "HAProxy reload, `-x` + `-sf`" : "HAProxy reload, `-sf` only",
    // With -x the listening socket itself is passed on and never closes: there is nothing to migrate.
    migrateMatters: !withX,
    log: () => logs.flat(),
    async start(tag) {
      socket = `${TMP}/haproxy-${tag}.sock`;
      cfg = writeConfig(`${TMP}/haproxy-${tag}.cfg`, proxyConfig([NS], PORT, upstreamPort, undefined, 2, [`stats socket ${socket} mode 600 level admin expose-fd listeners`]));
      const r = await startUnderProbes("HAProxy", [haproxyArgv(cfg)], [NS], PORT, LIMIT_MS);
      logs = [r.log];
      cur = r.proc;
    },
    async reload() {
      const old = cur!;
      const next = launch([...haproxyArgv(cfg), ...(withX ? ["-x", socket] : []), "-sf", String(old.pid)]);
      logs.push(next.log);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        old.exited.then(() => "ok"),
        next.proc.exited.then((c) => `the new process exited (${c}) first`),
        new Promise<string>((r) => (timer = setTimeout(() => r(`the old process (pid ${old.pid}) was still running after ${LIMIT_MS} ms`), LIMIT_MS))),
      ]);
      clearTimeout(timer); // a pending one would hold the bench's exit back
      if (outcome !== "ok") throw new Error(`HAProxy reload: ${outcome}\n${next.log.slice(-10).join("\n")}`);
      cur = next.proc;
      return undefined;
    },
    async stop() {
      await stop(cur!, LIMIT_MS);
    },
  };
  return m;
}

type Mode = "keep-alive" | "close";

interface Outcome {
  mech: Mechanism;
  mode: Mode;
  migrate: number;
  /** Reloads done while wrk ran (all of them: wrk is stopped only after the last). */
  reloads: number;
  w: WrkResult;
  /** Per reload: from the command to the new generation serving and the old one gone. */
  reloadMs: number[];
  gapMs: number[];
  /** tcp_migrate_req in the namespace after the run (an nsproxy successor turns it on itself). */
  migrateAfter: string;
  /** Inodes of the sockets listening on the tenant's address before the first reload and after the last. */
  listeners: { before: string; after: string };
}

/** The inodes of the sockets listening on PORT in the tenant's namespace (`ss -e`), sorted. */
function listenerInodes(): string {
  const out = sh(["ip", "netns", "exec", NS, "ss", "-Hltne", `sport = :${PORT}`]);
  return [...out.matchAll(/ino:(\d+)/g)].map((m) => m[1]!).sort().join(",");
}

const migrateReq = (v?: number) =>
  v === undefined
    ? sh(["ip", "netns", "exec", NS, "sysctl", "-n", "net.ipv4.tcp_migrate_req"]).trim()
    : sh(["ip", "netns", "exec", NS, "sysctl", "-qw", `net.ipv4.tcp_migrate_req=${v}`]);

/** One run: the first generation, wrk for the whole run, `reloads` reloads `intervalS` apart (start to start), wrk stopped TAIL_S after the last. */
async function measure(mech: Mechanism, mode: Mode, migrate: number): Promise<Outcome> {
  migrateReq(migrate);
  await mech.start(`${mech.key}-${mode}-${migrate}`);
  let endLoad!: () => void;
  const ended = new Promise<void>((r) => (endLoad = r));
  const load = wrk(NS, URL, { conns, durationS: MAX_RUN_S, quiesceMs: 2000, args: ["--timeout", `${timeoutS}s`, ...(mode === "close" ? ["-H", "Connection: close"] : [])], until: ended });
  load.catch(() => {}); // a failed reload ends the bench; wrk is killed with the rest
  const reloadMs: number[] = [];
  const gapMs: number[] = [];
  const listeners = { before: listenerInodes(), after: "" };
  try {
    await Bun.sleep(WARM_S * 1000);
    const t0 = performance.now();
    for (let i = 0; i < reloads; i++) {
      const s = performance.now();
      const gap = await mech.reload();
      reloadMs.push(performance.now() - s);
      if (gap !== undefined) gapMs.push(gap);
      await Bun.sleep(Math.max(0, t0 + (i + 1) * intervalS * 1000 - performance.now()));
    }
    listeners.after = listenerInodes();
    await Bun.sleep(TAIL_S * 1000);
  } finally {
    endLoad();
  }
  const w = await load;
  const migrateAfter = migrateReq();
  await mech.stop();
  return { mech, mode, migrate, reloads: reloadMs.length, w, reloadMs, gapMs, migrateAfter, listeners };
}

/**
 * Requests wrk started that did not get a 2xx/3xx answer within its timeout: started − answered (the Lua count; wrk
 * quiesced, so none is in flight at the end) + non-2xx + timeouts (answered, but later than the timeout).
 */
const lost = (w: WrkResult) => (w.started ?? NaN) - w.requests + w.non2xx + w.socket.timeout;
const msCell = (xs: number[]) => (xs.length === 0 ? "—" : `${fmt(median(xs))} (${fmt(Math.max(...xs))})`);

function table(outcomes: Outcome[], mode: Mode): string[] {
  const head = ["mechanism", "tcp_migrate_req", "requests started", "answered", "lost", "lost per reload", "wrk errors: connect / read / write / timeout / non-2xx", "gap ms, median (max)", "reload ms, median (max)", "slowest answer ms"];
  const rows = outcomes
    .filter((o) => o.mode === mode)
    .map((o) => {
      const s = o.w.socket;
      const none = o.mech.key === "none";
      const migrate = o.mech.migrateMatters ? String(o.migrate) : `${o.migrateAfter} (${{ none: "no reload", upgrade: "set by the successor", restart: "no sibling listener", "haproxy-x": "the socket is passed on" }[o.mech.key as "none"]})`;
      const gap = none ? "—" : o.gapMs.length ? msCell(o.gapMs) : "0 (overlap)";
      const errors = [s.connect, s.read, s.write, s.timeout, o.w.non2xx].map((x) => fmt(x)).join(" / ");
      const cells = [o.mech.label, migrate, fmt(o.w.started), fmt(o.w.requests), fmt(lost(o.w)), none ? "—" : fmt(lost(o.w) / o.reloads, 1), errors, gap, none ? "—" : msCell(o.reloadMs), fmt(o.w.maxMs)];
      return `| ${cells.join(" | ")} |`;
    });
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows];
}

function report(outcomes: Outcome[], notes: string[], v: Record<string, string>, loadBefore: string): string {
  const m = machine();
  const oneMin = Number(loadBefore.split(" ")[0]);
  return [
    "# Requests lost per reload under load: nsproxy upgrade, stop/start, HAProxy reloads",
    "",
    `- Machine: ${m.cpus} CPUs (nproc), ${m.model}, ${m.memGb.toFixed(0)} GB RAM, kernel ${m.kernel}; ${v.nsproxy} (a copy of dist/nsproxy taken at the start), bun ${Bun.version}; ${v.haproxy}; ${v.wrk}`,
    `- Date: ${new Date().toISOString()}; took ${Math.round(elapsedS())} s; command: \`${`bun bench/upgrade.ts ${process.argv.slice(2).join(" ")}`.trim()}\``,
    `- Load average before the first run: ${loadBefore}${oneMin >= 1 ? ` — **under shared load**: other work kept about ${fmt(oneMin, 1)} of the ${m.cpus} CPUs busy before this bench started; expect slower answers and reloads than on a quiet machine` : ""}`,
    "",
    `Each row is one run: the proxy serves one tenant at 127.0.0.1:${PORT} inside a throwaway namespace, proxying to a one-thread HAProxy on the host answering \`ok\\n\` from memory; \`wrk -t1 -c${conns} --timeout ${timeoutS}s\` runs inside that namespace for the whole run (${WARM_S} s before the first reload, ${TAIL_S} s after the last), while the proxy is reloaded ${reloads} times, ${intervalS} s apart (start to start; a reload that takes longer delays the next). Every reload ends when the new generation serves and the old process has exited; the next waits for that. Then wrk starts no new request, and is stopped 2 s later, so that none is in flight.`,
    "",
    `**lost** = requests wrk started that got no 2xx/3xx answer within ${timeoutS} s: started − answered, + non-2xx answers, + answers slower than ${timeoutS} s (wrk's timeouts; the timeout is generous so that a slow answer under load is not taken for a lost one: the slowest answer is in the last column). A Lua hook counts the requests wrk starts: wrk's own error counts are not lost requests. It takes a connection the server closes cleanly (FIN) under a request for no error (it reconnects and sends the next), and counts a reset of an idle connection, between two requests, which loses nothing, as a read error. A refused connection is a **write** error in wrk (its connect is non-blocking; the refusal shows at the first write), and a lost request here: wrk reconnects at once, so during a stop/start gap the count says how often it tried; the gap is the figure to compare there.`,
    "",
    `- nsproxy runs as \`nsproxy run -l 127.0.0.1:${PORT} -u http://127.0.0.1:UPSTREAM --netns NS --no-access-log --admin-socket … --tenants-dir … --shutdown-grace 1s\` (one worker per CPU), every generation with the same command line.`,
    `- **nsproxy \`upgrade\`**: \`nsproxy upgrade --admin-socket …\`; it returns once the successor serves and the old daemon has drained and exited. \`tcp_migrate_req\` is set to 1 in the namespace by the successor.`,
    "- **nsproxy stop, then start** (what `systemctl restart` does): SIGTERM, wait for the exit, start the same command line, wait for its `attached 1/1 tenants` log line (where it sends READY=1). **gap**: from the SIGTERM to that line (polled every 20 ms): the time nothing listens.",
    `- **HAProxy reload, \`-x\` + \`-sf\`**: HAProxy's seamless reload: \`global stats socket … expose-fd listeners\`, \`bind 127.0.0.1:${PORT} namespace NS\`, the new process \`haproxy -db -f CFG -x SOCKET -sf OLDPID\` takes the listening sockets from the old one over the stats socket, then tells it to stop. **-sf only**: the same config and command without \`-x\`: the new process binds sockets of its own beside the old ones (SO_REUSEPORT), and the old ones close; what sits in their accept queues is lost unless \`tcp_migrate_req\` moves it. \`tcp_migrate_req\` is set in the namespace before the first generation starts: 1 (as nsproxy's upgrade has it) for every row${migrates.includes(0) ? ", and 0 (the kernel's default) in a second \`-sf\` only row: the one mechanism where a listener closes beside a sibling (with \`-x\` the same socket stays open throughout; see the inodes in the notes)" : ""}.`,
    "- **gap** \"0 (overlap)\": the new listener is bound before the old one stops accepting. **reload ms**: from the command to the old process gone.",
    "",
    "## Keep-alive",
    "",
    ...table(outcomes, "keep-alive"),
    "",
    '## `Connection: close` (a new connection per request)',
    "",
    ...table(outcomes, "close"),
    "",
    "## Notes",
    "",
    ...notes.map((n) => `- ${n}`),
    "",
  ].join("\n");
}

/** What the proxies logged besides start-up, and besides each old HAProxy's "Proxy … stopped" lines (one per proxy per reload). */
function said(mech: Mechanism): string {
  if (!mech.key.startsWith("haproxy")) return logSummary("nsproxy", mech.log());
  const stopped = "stopped (cumulated conns";
  const rest = logSummary("HAProxy", mech.log(), { expected: { text: stopped, why: "" } });
  return `${rest} besides ${mech.log().filter((l) => l.includes(stopped)).length} "Proxy … stopped" lines of the old processes`;
}

function sockets(l: Outcome["listeners"]): string {
  return l.before === l.after ? `the same listening socket(s) after the last reload as before the first (inode ${l.before}): passed on` : `listening socket inodes ${l.before} before the first reload, ${l.after} after the last`;
}

await runBench(async () => {
  ensureTools();
  const stale = removeStale();
  if (stale > 0) log(`removed ${stale} namespaces left by an earlier bench that was killed`);
  const loadBefore = loadavg();
  // dist/nsproxy may be rebuilt by others while this runs; an upgrade restarts the executable at its own path.
  BIN = copyBinary(NSPROXY);
  const v = {
    nsproxy: sh([BIN, "--version"]).trim(),
    haproxy: sh(["haproxy", "-v"]).split("\n")[0]!.trim(),
    wrk: (Bun.spawnSync(["wrk", "-v"]).stdout.toString() || "wrk").split("\n")[0]!.replace(/ Copyright.*/, "").trim(),
  };
  addNamespaces([NS]);
  const upstream = await startUpstream();
  upstreamPort = upstream.port;
  log(`upstream on 127.0.0.1:${upstreamPort}; namespace ${NS}; temp ${TMP}`);
  const mechs: Mechanism[] = only.map((k) => (k === "none" || k === "upgrade" || k === "restart" ? nsproxy(k) : haproxy(k === "haproxy-x")));
  const outcomes: Outcome[] = [];
  const notes: string[] = [];
  for (const mode of ["keep-alive", "close"] as const) {
    for (const mech of mechs) {
      for (const migrate of mech.migrateMatters ? migrates : [1]) {
        const o = await measure(mech, mode, migrate);
        outcomes.push(o);
        log(`${mode}, ${mech.label}, tcp_migrate_req ${migrate}: ${o.w.requests} requests, ${lost(o.w)} lost over ${o.reloads} reloads; reload ${msCell(o.reloadMs)} ms${o.gapMs.length ? `, gap ${msCell(o.gapMs)} ms` : ""}`);
        const detail = mech.detail?.();
        notes.push(`${mode}, ${mech.label}, tcp_migrate_req ${migrate}: ${said(mech)}${mech.key === "none" ? "" : `; ${sockets(o.listeners)}`}${detail ? `; ${detail}` : ""}`);
      }
    }
  }
  notes.push(`load average at the end: ${loadavg()}`);
  const md = report(outcomes, notes, v, loadBefore);
  writeFileSync(`${import.meta.dir}/RESULTS-upgrade.md`, md);
  console.log(md);
});
