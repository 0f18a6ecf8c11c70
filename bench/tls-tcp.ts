// TLS and TCP mode, nsproxy against HAProxy 2.6 on the same certificates: TLS handshakes/s, keep-alive HTTPS
// requests/s, RSS per TLS listener, and TCP-mode throughput against HAProxy `mode tcp`.
// Usage: bun bench/tls-tcp.ts [--duration 6] [--rounds 3] [--ns 200,1000] [--gb 1] [--only tls,rss,tcp] [--quiet-wait 15]
// (root; every byte goes over loopback, inside namespaces the bench makes or on the host's 127.0.0.1)
import type { Subprocess } from "bun";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { elapsedS, fmt, log, median, spread } from "./lib/format.ts";
import { haproxyArgv, httpsProxyConfig, startUpstream, tcpProxyConfig, writeConfig, type HttpsFrontend } from "./lib/haproxy.ts";
import { checkUrl as check, logSummary, waitAttached } from "./lib/proxies.ts";
import { cpuSeconds, cpuSecondsOr0, loadavg, machine, machineBusySeconds, rssKb } from "./lib/proc.ts";
import { addNamespaces, BUN, collectLines, copyBinary, ensureTools, NSPROXY, nsproxyRunFlags, PREFIX, raiseNofile, removeStale, ROOT, runBench, sh, spawn, stop, TMP } from "./lib/setup.ts";
import { wrk, type WrkResult } from "./lib/wrk.ts";
import { makeCa, type Ca } from "../test/helpers/certs.ts";
import { expected, startSinkServer } from "../test/helpers/tcp-stream.ts";

const USAGE = "usage: bun bench/tls-tcp.ts [--duration 1..60] [--rounds 1..10] [--ns 200,1000] [--gb 0.1..8] [--only tls,rss,tcp] [--quiet-wait 0..60]";
const { values: args } = parseArgs({
  options: {
    duration: { type: "string", default: "6" },
    rounds: { type: "string", default: "3" },
    ns: { type: "string", default: "200,1000" },
    gb: { type: "string", default: "1" },
    only: { type: "string", default: "tls,rss,tcp" },
    "quiet-wait": { type: "string", default: "15" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const durationS = Number(args.duration);
const rounds = Number(args.rounds);
const rssCounts = [...new Set(args.ns.split(",").map(Number))].sort((a, b) => a - b);
const bytesPerRun = Math.round(Number(args.gb) * 1e9);
const only = new Set(args.only.split(","));
const quietWaitS = Number(args["quiet-wait"]);
if (
  !(durationS >= 1 && durationS <= 60) ||
  !(rounds >= 1 && rounds <= 10) ||
  rssCounts.some((n) => !Number.isInteger(n) || n < 1 || n > 5000) ||
  !(bytesPerRun >= 1e8 && bytesPerRun <= 8e9) ||
  [...only].some((p) => !["tls", "rss", "tcp"].includes(p)) ||
  !(quietWaitS >= 0 && quietWaitS <= 60)
) {
  console.error(USAGE);
  process.exit(2);
}

const WORKERS = 2;
const CONNS = 20;
const WARMUP_S = 2;
/** No proxy of this bench may outlive this; they are stopped long before. */
const LIFETIME_MS = 30 * 60_000;
const PLAIN_PORT = 8080;
const TLS_PORT = 8443;
const TCP_PORT = 9000;
/** A copy of dist/nsproxy taken at the start: others may rebuild it while this runs. */
let BIN = NSPROXY;
const CERTS = `${TMP}/certs`;
const SHIM = `${TMP}/tls-shim.so`;

const notes: string[] = [];

// ---------------------------------------------------------------------------------------------------------------
// The machine's busy time, to say how much of it was not this bench (other engineers' tests share the 2 cores).

/** Over one run: cores busy on the machine, and those used by the processes we know (proxies, upstream, sink, this). */
function meter(pids: number[]) {
  const b0 = machineBusySeconds();
  const own0 = process.cpuUsage();
  const p0 = pids.map((p) => cpuSecondsOr0(p));
  const t0 = performance.now();
  return (extraCpuS = 0) => {
    const s = (performance.now() - t0) / 1000;
    const own = process.cpuUsage(own0);
    const ours = pids.reduce((a, p, i) => a + cpuSecondsOr0(p) - p0[i]!, 0) + (own.user + own.system) / 1e6 + extraCpuS;
    const busy = machineBusySeconds() - b0;
    return { busyCores: busy / s, othersCores: Math.max(0, busy - ours) / s };
  };
}
/**
 * Before each measured run: wait, at most --quiet-wait seconds, until the machine has been under 0.3 cores busy for
 * half a second (the bench's idle proxies count, and cost nothing). Other people's tests come in bursts; a run that
 * starts in one is worth less. What it waited and how often it gave up goes into the notes.
 */
const quietStats = { runs: 0, waitedMs: 0, gaveUp: 0 };
async function quiet(): Promise<void> {
  quietStats.runs++;
  if (quietWaitS === 0) return;
  const t0 = performance.now();
  for (;;) {
    const b0 = machineBusySeconds();
    await Bun.sleep(500);
    if ((machineBusySeconds() - b0) / 0.5 < 0.3) break;
    if (performance.now() - t0 > quietWaitS * 1000) {
      quietStats.gaveUp++;
      break;
    }
  }
  quietStats.waitedMs += performance.now() - t0 - 500;
}

// ---------------------------------------------------------------------------------------------------------------
// Certificates, the wrk helper, the upstream.

function openssl(argv: string[]): void {
  sh(["openssl", ...argv]);
}

interface Pair {
  cert: string;
  key: string;
  /** cert + key in one file, as HAProxy's `crt` takes it. */
  pem: string;
  cn: string;
}

/** A leaf for 127.0.0.1 signed by `ca` (makeLeaf's recipe with a choice of key); the same files for both proxies. */
function leaf(ca: Ca, name: string, keyType: "ec" | "rsa"): Pair {
  const base = `${CERTS}/${name}`;
  const cn = `nsproxy bench ${keyType === "ec" ? "EC P-256" : "RSA 2048"}`;
  writeFileSync(`${base}.ext`, "subjectAltName=IP:127.0.0.1\n");
  const newkey = keyType === "ec" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] : ["-newkey", "rsa:2048"];
  openssl(["req", ...newkey, "-nodes", "-keyout", `${base}.key`, "-out", `${base}.csr`, "-subj", `/CN=${cn}`]);
  openssl(["x509", "-req", "-in", `${base}.csr`, "-CA", ca.cert, "-CAkey", ca.key, "-set_serial", String(Date.now()), "-days", "60", "-extfile", `${base}.ext`, "-out", `${base}.crt`]);
  writeFileSync(`${base}.pem`, readFileSync(`${base}.crt`, "utf8") + readFileSync(`${base}.key`, "utf8"));
  return { cert: `${base}.crt`, key: `${base}.key`, pem: `${base}.pem`, cn };
}

/** A self-signed EC P-256 pair per tenant, `dir/NAME.crt|.key|.pem`, made 8 at a time. */
async function selfSignedPerTenant(dir: string, names: string[]): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < names.length; i += 8) {
    await Promise.all(
      names.slice(i, i + 8).map(async (n) => {
        const p = Bun.spawn(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${dir}/${n}.key`, "-out", `${dir}/${n}.crt`, "-days", "60", "-subj", `/CN=${n}`, "-addext", "subjectAltName=IP:127.0.0.1"], { stdout: "ignore", stderr: "pipe" });
        if ((await p.exited) !== 0) throw new Error(`openssl req for ${n}: ${await new Response(p.stderr).text()}`);
        writeFileSync(`${dir}/${n}.pem`, readFileSync(`${dir}/${n}.crt`, "utf8") + readFileSync(`${dir}/${n}.key`, "utf8"));
      }),
    );
  }
}

/**
 * LD_PRELOAD for wrk: counts handshakes that completed fresh vs resumed (SSL_session_reused after SSL_connect) and,
 * with TLS_SHIM_FRESH=1, drops the session wrk would offer before each handshake starts, so every connection is a
 * full handshake. wrk itself keeps its SSL object across reconnects (SSL_shutdown + SSL_clear keep the session),
 * so without this it resumes whenever the server lets it.
 */
const SHIM_C = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
static int (*real_connect)(void *);
static int (*reused)(const void *);
static int (*set_session)(void *, void *);
static int (*in_before)(const void *);
static unsigned long full, resumed;
static int fresh;
__attribute__((constructor)) static void init(void) {
  real_connect = dlsym(RTLD_NEXT, "SSL_connect");
  reused = dlsym(RTLD_NEXT, "SSL_session_reused");
  set_session = dlsym(RTLD_NEXT, "SSL_set_session");
  in_before = dlsym(RTLD_NEXT, "SSL_in_before");
  fresh = getenv("TLS_SHIM_FRESH") != NULL;
}
int SSL_connect(void *ssl) {
  if (fresh && in_before(ssl)) set_session(ssl, NULL);
  int r = real_connect(ssl);
  if (r == 1) __atomic_add_fetch(reused(ssl) ? &resumed : &full, 1, __ATOMIC_RELAXED);
  return r;
}
__attribute__((destructor)) static void fini(void) { fprintf(stderr, "tls-shim: full=%lu resumed=%lu\\n", full, resumed); }
`;

function buildShim(): void {
  writeFileSync(`${TMP}/tls-shim.c`, SHIM_C);
  if (!Bun.which("cc")) throw new Error("the TLS rows need a C compiler for wrk's LD_PRELOAD helper (apt-get install gcc)");
  sh(["cc", "-shared", "-fPIC", "-O2", "-o", SHIM, `${TMP}/tls-shim.c`, "-ldl"]);
  if (!sh(["ldd", "/usr/bin/wrk"]).includes("libssl")) throw new Error("this wrk is not linked against a shared libssl: the helper cannot see its handshakes");
}

function shimCounts(r: WrkResult): { full: number; resumed: number } | undefined {
  const m = /tls-shim: full=(\d+) resumed=(\d+)/.exec(r.stderr ?? "");
  return m ? { full: Number(m[1]), resumed: Number(m[2]) } : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Proxies: start, wait until they serve, stop.

interface Proxy {
  name: "nsproxy" | "HAProxy";
  proc: Subprocess<"ignore" | "pipe", "pipe", "pipe">;
  log: string[];
  /** nsproxy's "attached N/N tenants … in X ms". */
  attached?: string;
  readyMs: number;
}

/** Something listens on 127.0.0.1:port inside ns (bash's /dev/tcp: no bytes sent). */
function listening(ns: string, port: number): boolean {
  return Bun.spawnSync(["ip", "netns", "exec", ns, "timeout", "2", "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${port}`], { stderr: "ignore" }).exitCode === 0;
}

async function waitListening(p: Proxy, sample: string[], port: number, limitMs: number): Promise<void> {
  const until = Date.now() + limitMs;
  for (const ns of sample) {
    while (!listening(ns, port)) {
      if (p.proc.exitCode !== null) throw new Error(`${p.name} exited (${p.proc.exitCode}):\n${p.log.slice(-20).join("\n")}`);
      if (Date.now() > until) throw new Error(`${p.name}: nothing listens on ${port} in ${ns} after ${limitMs} ms:\n${p.log.slice(-20).join("\n")}`);
      await Bun.sleep(20);
    }
  }
}

function sampleOf(list: string[]): string[] {
  return [...new Set([list[0]!, list[list.length >> 1]!, list.at(-1)!])];
}

async function startNsproxy(tag: string, flags: string[], tenants: number, sample: string[], port: number, workers = WORKERS): Promise<Proxy> {
  const argv = [BIN, "run", ...flags, "-w", String(workers), ...nsproxyRunFlags(`${TMP}/nsproxy-${tag}`)];
  const t0 = performance.now();
  const proc = spawn(argv, LIFETIME_MS);
  const p: Proxy = { name: "nsproxy", proc, log: [], readyMs: 0 };
  void collectLines(proc.stderr, p.log);
  void collectLines(proc.stdout, p.log);
  const limitMs = 60_000 + tenants * 20;
  p.attached = await waitAttached(p.log, tenants, limitMs, proc).catch((e: Error) => {
    throw new Error(`(${tag}) ${e.message}`);
  });
  await waitListening(p, sample, port, limitMs);
  p.readyMs = performance.now() - t0;
  return p;
}

async function startHaproxy(tag: string, config: string, sample: string[], port: number, tenants: number): Promise<Proxy> {
  const cfg = writeConfig(`${TMP}/haproxy-${tag}.cfg`, config);
  const t0 = performance.now();
  const proc = spawn(haproxyArgv(cfg), LIFETIME_MS);
  const p: Proxy = { name: "HAProxy", proc, log: [], readyMs: 0 };
  void collectLines(proc.stderr, p.log);
  void collectLines(proc.stdout, p.log);
  await waitListening(p, sample, port, 60_000 + tenants * 20);
  p.readyMs = performance.now() - t0;
  return p;
}

/**
 * What a server negotiates with OpenSSL 3's client (wrk's library) and whether it resumes: one `s_client` with a
 * request, its session saved, then `tries` more offering that session (TLS 1.3 tickets come after the handshake,
 * so `-reconnect` alone never resumes; reading the response first does).
 */
function sClient(ns: string, port: number, tries = 6): string {
  const sess = `${TMP}/sess-${ns}-${port}.pem`;
  const req = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const run = (extra: string[]) =>
    Bun.spawnSync(["ip", "netns", "exec", ns, "timeout", "10", "openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-alpn", "http/1.1", "-ign_eof", ...extra], { stdin: Buffer.from(req), stdout: "pipe", stderr: "pipe" }).stdout.toString();
  const first = run(["-sess_out", sess]);
  const get = (re: RegExp) => re.exec(first)?.[1]?.trim() ?? "?";
  const proto = /^(?:New|Reused), (TLSv[\d.]+), Cipher is (\S+)/m.exec(first);
  const tickets = (first.match(/Post-Handshake New Session Ticket arrived/g) ?? []).length;
  let reused = 0;
  for (let i = 0; i < tries; i++) if (/^Reused, /m.test(run(["-sess_in", sess]))) reused++;
  return `${proto?.[1] ?? "?"} ${proto?.[2] ?? "?"}, key exchange ${get(/Server Temp Key: (.*)/)}, signature ${get(/Peer signature type: (.*)/)}, ALPN ${get(/ALPN protocol: (.*)/)}, ${tickets} tickets after the handshake (lifetime hint ${get(/ticket lifetime hint: (\d+)/)} s); offering the saved session again: resumed ${reused}/${tries}`;
}

/**
 * The one costly step of a full handshake that differs by key: the server's signature. nsproxy signs with Bun's
 * BoringSSL, HAProxy with the system OpenSSL 3.0: the same operation timed in each library, outside any proxy.
 */
const signed = { bun: "?", openssl: "?" };
function signCosts(): string {
  const script = `import { generateKeyPairSync, sign, constants } from "node:crypto";
const data = Buffer.alloc(64, 1);
const out = [];
for (const [name, key, opts, n] of [["RSA-2048 PSS", generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey, { padding: constants.RSA_PKCS1_PSS_PADDING }, 1000], ["ECDSA P-256", generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey, {}, 10000]]) {
  for (let i = 0; i < 50; i++) sign("sha256", data, { key, ...opts });
  const t = performance.now();
  for (let i = 0; i < n; i++) sign("sha256", data, { key, ...opts });
  out.push(name + " " + (((performance.now() - t) * 1000) / n).toFixed(0) + " µs");
}
console.log(out.join(", "));`;
  const bun = sh([BUN, "-e", script]).trim();
  const speed = sh(["openssl", "speed", "-seconds", "1", "rsa2048", "ecdsap256"]);
  // sign/s is the third figure on each line (the seconds columns print too few digits for ECDSA).
  const rsa = /^rsa 2048 bits\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)/m.exec(speed)?.[1];
  const ec = /^\s*256 bits ecdsa \(nistp256\)\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)/m.exec(speed)?.[1];
  const us = (perS?: string) => (perS ? `${Math.round(1e6 / Number(perS))} µs` : "?");
  signed.bun = /RSA-2048 PSS (\d+) µs/.exec(bun)?.[1] ?? "?";
  signed.openssl = rsa ? String(Math.round(1e6 / Number(rsa))) : "?";
  return `one signature, outside the proxies (the rest of a handshake is the same for both keys): Bun's BoringSSL (node:crypto sign in bun, JS call included) ${bun}; system OpenSSL 3.0 (\`openssl speed\`) RSA-2048 ${us(rsa)}, ECDSA P-256 ${us(ec)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// (1) + (2): handshakes and keep-alive requests.

interface Kind {
  id: string;
  label: string;
  tenant: "ec" | "rsa";
  tls: boolean;
  close: boolean;
  /** Full handshakes only: the shim drops the session wrk would offer. */
  fresh: boolean;
}

const KINDS: Kind[] = [
  { id: "hs-ec", label: "HTTPS, new connection per request, EC P-256, full handshakes", tenant: "ec", tls: true, close: true, fresh: true },
  { id: "hs-ec-resume", label: "HTTPS, new connection per request, EC P-256, wrk resuming when it can", tenant: "ec", tls: true, close: true, fresh: false },
  { id: "hs-rsa", label: "HTTPS, new connection per request, RSA 2048, full handshakes", tenant: "rsa", tls: true, close: true, fresh: true },
  { id: "close-plain", label: "plain HTTP, new connection per request (reference)", tenant: "ec", tls: false, close: true, fresh: false },
  { id: "ka-tls", label: `HTTPS keep-alive (EC P-256), -c${CONNS}`, tenant: "ec", tls: true, close: false, fresh: false },
  { id: "ka-plain", label: `plain HTTP keep-alive, -c${CONNS} (reference)`, tenant: "ec", tls: false, close: false, fresh: false },
];

interface Run extends WrkResult {
  full?: number;
  resumed?: number;
  busyCores: number;
  othersCores: number;
  clientCores: number;
}

const loadRuns = new Map<string, Run[]>(); // `${kind}|${target}`
const tlsTable: string[] = [];
const BARE = "bare Bun.listen (reference)";

/**
 * Not a proxy: one bun process in the tenant's namespace answering every request itself with Bun.listen (plain and
 * TLS, the same certificate, ALPN http/1.1), one thread. What Bun and its BoringSSL cost per connection and per
 * handshake before any proxying, to tell nsproxy's own cost from the runtime's.
 */
const BARE_SERVER = `
import { readFileSync } from "node:fs";
const [plainPort, tlsPort, cert, key] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4], process.argv[5]];
const KEEP = "HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\nok\\n";
const CLOSE = "HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\nConnection: close\\r\\n\\r\\nok\\n";
// wrk sends one request per write and waits for the answer: one data event is one request.
const socket = {
  data(s, d) {
    const close = /connection: close/i.test(Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString("latin1"));
    s.write(close ? CLOSE : KEEP);
    if (close) s.end();
  },
  error() {},
};
Bun.listen({ hostname: "127.0.0.1", port: plainPort, socket });
Bun.listen({ hostname: "127.0.0.1", port: tlsPort, tls: { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8"), ALPNProtocols: "\\x08http/1.1" }, socket });
console.log("ready");
`;

interface Target {
  name: string;
  pid(tenant: "ec" | "rsa"): number;
  plain: number;
  tls: number;
}

async function tlsPhase(upstream: { port: number; proc: Subprocess }): Promise<void> {
  const ca = makeCa(`${CERTS}/ca`);
  const pairs = { ec: leaf(ca, "ec", "ec"), rsa: leaf(ca, "rsa", "rsa") };
  const nsOf = { ec: `${PREFIX}ec`, rsa: `${PREFIX}rsa` };
  addNamespaces([nsOf.ec, nsOf.rsa]);
  const HA_PLAIN = PLAIN_PORT + 1;
  const HA_TLS = TLS_PORT + 1;
  log("TLS: starting nsproxy and HAProxy (2 tenants each: EC and RSA certificates)");
  const nsp = await startNsproxy(
    "tls",
    ["-l", `127.0.0.1:${PLAIN_PORT}`, "-l", `https://127.0.0.1:${TLS_PORT}`, "-u", `http://127.0.0.1:${upstream.port}`, "--tls-cert", `${CERTS}/{tenant}.crt`, "--tls-key", `${CERTS}/{tenant}.key`, "-n", `ec=/run/netns/${nsOf.ec}`, "-n", `rsa=/run/netns/${nsOf.rsa}`],
    2,
    [nsOf.ec, nsOf.rsa],
    TLS_PORT,
  );
  const frontends: HttpsFrontend[] = (["ec", "rsa"] as const).map((t) => ({ tenant: t, ns: nsOf[t], port: HA_PLAIN, tls: { port: HA_TLS, crt: pairs[t].pem } }));
  const hap = await startHaproxy("tls", httpsProxyConfig(frontends, upstream.port), [nsOf.ec, nsOf.rsa], HA_TLS, 2);
  notes.push(`TLS: ${nsp.attached}`);
  const ports = { nsproxy: { plain: PLAIN_PORT, tls: TLS_PORT }, HAProxy: { plain: HA_PLAIN, tls: HA_TLS } };
  for (const p of [nsp, hap]) {
    for (const t of ["ec", "rsa"] as const) {
      notes.push(`TLS check ${p.name} ${t}: ${check(nsOf[t], `https://127.0.0.1:${ports[p.name].tls}`, t, ca.cert, pairs[t].cn)}`);
      notes.push(`TLS s_client ${p.name} ${t}: ${sClient(nsOf[t], ports[p.name].tls)}`);
    }
    notes.push(`TLS check ${p.name} plain: ${check(nsOf.ec, `http://127.0.0.1:${ports[p.name].plain}`, "ec")}`);
  }
  notes.push(`TLS: ${signCosts()}`);
  // Each worker has its own TLS context, so its own ticket key: is that why a saved session resumes only sometimes?
  const one = await startNsproxy("tls-w1", ["-l", `https://127.0.0.1:${TLS_PORT + 10}`, "-u", `http://127.0.0.1:${upstream.port}`, "--tls-cert", pairs.ec.cert, "--tls-key", pairs.ec.key, "-n", `ec=/run/netns/${nsOf.ec}`], 1, [nsOf.ec], TLS_PORT + 10, 1);
  notes.push(`TLS s_client nsproxy ec with \`-w 1\` (one worker, one TLS context): ${sClient(nsOf.ec, TLS_PORT + 10, 10)}`);
  await stop(one.proc);
  const BARE_PLAIN = PLAIN_PORT + 2;
  const BARE_TLS = TLS_PORT + 2;
  writeFileSync(`${TMP}/bare.mjs`, BARE_SERVER);
  const bare = { ec: 0, rsa: 0 };
  for (const t of ["ec", "rsa"] as const) {
    const p = spawn(["ip", "netns", "exec", nsOf[t], BUN, `${TMP}/bare.mjs`, String(BARE_PLAIN), String(BARE_TLS), pairs[t].cert, pairs[t].key], LIFETIME_MS);
    bare[t] = p.pid;
    const until = Date.now() + 20_000;
    while (!listening(nsOf[t], BARE_TLS)) {
      if (p.exitCode !== null || Date.now() > until) throw new Error(`the bare Bun server in ${nsOf[t]} did not start: ${await new Response(p.stderr).text()}`);
      await Bun.sleep(20);
    }
  }
  const targets: Target[] = [
    { name: "nsproxy", pid: () => nsp.proc.pid, ...ports.nsproxy },
    { name: "HAProxy", pid: () => hap.proc.pid, ...ports.HAProxy },
    { name: BARE, pid: (t) => bare[t], plain: BARE_PLAIN, tls: BARE_TLS },
  ];
  const url = (p: Target, k: Kind) => `${k.tls ? "https" : "http"}://127.0.0.1:${k.tls ? p.tls : p.plain}/`;
  const opts = (k: Kind, d: number) => ({
    conns: CONNS,
    durationS: d,
    args: k.close ? ["-H", "Connection: close"] : [],
    env: k.tls ? { LD_PRELOAD: SHIM, ...(k.fresh ? { TLS_SHIM_FRESH: "1" } : {}) } : undefined,
  });
  log("TLS: warm-up");
  for (const p of targets) for (const k of [KINDS[0]!, KINDS[4]!]) await wrk(nsOf[k.tenant], url(p, k), opts(k, WARMUP_S));
  const pids = [nsp.proc.pid, hap.proc.pid, upstream.proc.pid, bare.ec, bare.rsa];
  for (let round = 0; round < rounds; round++) {
    // The order turns every round: drift on the shared box hits each alike.
    const order = [...targets.slice(round % targets.length), ...targets.slice(0, round % targets.length)];
    for (const k of KINDS) {
      for (const p of order) {
        await quiet();
        const m = meter(pids);
        const c0 = cpuSeconds(p.pid(k.tenant));
        const r = await wrk(nsOf[k.tenant], url(p, k), opts(k, durationS));
        const cpu = cpuSeconds(p.pid(k.tenant)) - c0;
        const load = m(r.clientCpuS ?? 0);
        const counts = k.tls ? shimCounts(r) : undefined;
        const run: Run = { ...r, cpuUsPerReq: (cpu * 1e6) / Math.max(1, r.requests), ...counts, ...load, clientCores: (r.clientCpuS ?? NaN) / durationS };
        const key = `${k.id}|${p.name}`;
        loadRuns.set(key, [...(loadRuns.get(key) ?? []), run]);
      }
    }
    log(`TLS: round ${round + 1}/${rounds} done (load average ${loadavg()})`);
  }
  for (const p of [nsp, hap]) await stop(p.proc);
  for (const p of [nsp, hap]) notes.push(`TLS: ${logSummary(p.name, p.log)}`);
  for (const pid of [bare.ec, bare.rsa]) process.kill(pid, "SIGTERM");

  const head = ["load", "proxy", "req/s", "nsproxy/HAProxy", "CPU µs/req", "req/s per proxy core", "p99 ms", "handshakes resumed", "errors", "wrk cores", "other load, cores"];
  tlsTable.push(`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`);
  for (const k of KINDS) {
    for (const name of ["nsproxy", "HAProxy", BARE]) {
      const runs = loadRuns.get(`${k.id}|${name}`) ?? [];
      const other = loadRuns.get(`${k.id}|HAProxy`) ?? [];
      const ratio = name === "nsproxy" ? fmt(median(runs.map((r) => r.rps)) / median(other.map((r) => r.rps)), 2) : "";
      const hs = runs.reduce((a, r) => a + (r.full ?? 0) + (r.resumed ?? 0), 0);
      const resumed = k.tls && hs > 0 ? `${fmt((100 * runs.reduce((a, r) => a + (r.resumed ?? 0), 0)) / hs, 1)}% of ${fmt(hs)}` : "—";
      tlsTable.push(
        `| ${[
          name === "nsproxy" ? k.label : "",
          name,
          spread(runs.map((r) => r.rps)),
          ratio,
          spread(runs.map((r) => r.cpuUsPerReq ?? NaN), 1),
          fmt(1e6 / median(runs.map((r) => r.cpuUsPerReq ?? NaN))),
          spread(runs.map((r) => r.p99Ms), 2),
          resumed,
          fmt(runs.reduce((a, r) => a + r.errors, 0)),
          spread(runs.map((r) => r.clientCores), 2),
          fmt(Math.max(...runs.map((r) => r.othersCores)), 2) + " max",
        ].join(" | ")} |`,
      );
    }
  }
  for (const k of KINDS)
    for (const name of ["nsproxy", "HAProxy", BARE])
      notes.push(
        `run ${k.id} ${name}: ${(loadRuns.get(`${k.id}|${name}`) ?? [])
          .map((r) => `${fmt(r.rps)} req/s, ${fmt(r.cpuUsPerReq, 1)} µs/req, p99 ${fmt(r.p99Ms, 2)} ms${r.full !== undefined ? `, ${r.full} full + ${r.resumed} resumed` : ""}, machine ${fmt(r.busyCores, 2)} cores busy (others ${fmt(r.othersCores, 2)})`)
          .join("; ")}`,
      );
}

// ---------------------------------------------------------------------------------------------------------------
// (3) RSS per TLS listener.

interface Mem {
  n: number;
  proxy: "nsproxy" | "HAProxy";
  listeners: "plain" | "https (one shared cert)" | "https (a cert per tenant)";
  rssKb: number[];
  anonKb: number[];
  readyMs: number[];
  attached?: string;
}
const mems: Mem[] = [];

async function rssPhase(upstreamPort: number): Promise<void> {
  const ca = makeCa(`${CERTS}/ca-rss`);
  const shared = leaf(ca, "shared", "ec");
  const settle = async (p: Proxy) => {
    await Bun.sleep(1000); // lazily touched pages
    return { rss: rssKb(p.proc.pid), anon: rssKb(p.proc.pid, "RssAnon") };
  };
  const record = (n: number, proxy: Mem["proxy"], listeners: Mem["listeners"], p: Proxy, m: { rss: number; anon: number }) => {
    let e = mems.find((x) => x.n === n && x.proxy === proxy && x.listeners === listeners);
    if (!e) mems.push((e = { n, proxy, listeners, rssKb: [], anonKb: [], readyMs: [] }));
    e.rssKb.push(m.rss);
    e.anonKb.push(m.anon);
    e.readyMs.push(p.readyMs);
    if (p.attached) e.attached = p.attached;
  };
  for (const n of rssCounts) {
    const list = Array.from({ length: n }, (_, i) => `${PREFIX}r${n}-${i}`);
    addNamespaces(list);
    const sample = sampleOf(list);
    const glob = `${PREFIX}r${n}-*`;
    const perTenant = n === rssCounts[0];
    if (perTenant) await selfSignedPerTenant(`${CERTS}/t`, list);
    const variants: { listeners: Mem["listeners"]; nsp: string[]; hap: HttpsFrontend[]; port: number }[] = [
      { listeners: "plain", nsp: ["-l", `127.0.0.1:${PLAIN_PORT}`], hap: list.map((ns) => ({ tenant: ns, ns, port: PLAIN_PORT })), port: PLAIN_PORT },
      {
        listeners: "https (one shared cert)",
        nsp: ["-l", `https://127.0.0.1:${TLS_PORT}`, "--tls-cert", shared.cert, "--tls-key", shared.key],
        hap: list.map((ns) => ({ tenant: ns, ns, tls: { port: TLS_PORT, crt: shared.pem } })),
        port: TLS_PORT,
      },
      ...(perTenant
        ? [
            {
              listeners: "https (a cert per tenant)" as const,
              nsp: ["-l", `https://127.0.0.1:${TLS_PORT}`, "--tls-cert", `${CERTS}/t/{tenant}.crt`, "--tls-key", `${CERTS}/t/{tenant}.key`],
              hap: list.map((ns) => ({ tenant: ns, ns, tls: { port: TLS_PORT, crt: `${CERTS}/t/${ns}.pem` } })),
              port: TLS_PORT,
            },
          ]
        : []),
    ];
    // Two rounds, plain and https alternating, one proxy at a time (nothing else of the bench runs meanwhile).
    for (let round = 0; round < 2; round++) {
      for (const v of round === 0 ? variants : [...variants].reverse()) {
        const nsp = await startNsproxy(`rss-${n}`, [...v.nsp, "-u", `http://127.0.0.1:${upstreamPort}`, "--discover", `/run/netns=${glob}`], n, sample, v.port);
        record(n, "nsproxy", v.listeners, nsp, await settle(nsp));
        if (round === 0) notes.push(`RSS N=${n} nsproxy ${v.listeners}: ${nsp.attached}; ${served(sample, v.port)}`);
        await stop(nsp.proc, 30_000);
        if (round === 0) notes.push(`RSS N=${n} nsproxy ${v.listeners}: ${logSummary("nsproxy", nsp.log)}`);
        const hap = await startHaproxy(`rss-${n}`, httpsProxyConfig(v.hap, upstreamPort), sample, v.port, n);
        record(n, "HAProxy", v.listeners, hap, await settle(hap));
        if (round === 0) notes.push(`RSS N=${n} HAProxy ${v.listeners}: ${served(sample, v.port)}`);
        await stop(hap.proc, 30_000);
        if (round === 0) notes.push(`RSS N=${n} HAProxy ${v.listeners}: ${logSummary("HAProxy", hap.log)}`);
      }
      log(`RSS: N=${n} round ${round + 1}/2 done`);
    }
  }
}

/** After the RSS was read: a request in each sampled namespace answers 200 (curl -k: only that it serves matters here). */
function served(sample: string[], port: number): string {
  const scheme = port === TLS_PORT ? "https" : "http";
  const codes = sample.map((ns) => Bun.spawnSync(["ip", "netns", "exec", ns, "curl", "-sk", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", `${scheme}://127.0.0.1:${port}/`], { stdout: "pipe" }).stdout.toString());
  if (codes.some((c) => c !== "200")) throw new Error(`${scheme} on ${port} in ${sample.join(", ")}: ${codes.join(", ")}`);
  return `${scheme} 200 in the first, middle and last namespace`;
}

function rssTable(): string[] {
  const out: string[] = [];
  const head = ["N", "proxy", "listeners", "RSS MB", "anon MB", "ready ms", "anon kB per tenant over plain", "anon kB per extra tenant"];
  out.push(`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`);
  for (const m of mems) {
    const plain = mems.find((x) => x.n === m.n && x.proxy === m.proxy && x.listeners === "plain");
    const over = m.listeners !== "plain" && plain ? (median(m.anonKb) - median(plain.anonKb)) / m.n : NaN;
    const smaller = mems.filter((x) => x.proxy === m.proxy && x.listeners === m.listeners && x.n < m.n).sort((a, b) => a.n - b.n)[0];
    const slope = smaller ? (median(m.anonKb) - median(smaller.anonKb)) / (m.n - smaller.n) : NaN;
    out.push(
      `| ${[fmt(m.n), m.proxy, m.listeners, spread(m.rssKb.map((k) => k / 1024), 1), spread(m.anonKb.map((k) => k / 1024), 1), spread(m.readyMs), fmt(over, 1), smaller ? `${fmt(slope, 1)} (N ${smaller.n}→${m.n})` : "—"].join(" | ")} |`,
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// (4) TCP mode.

/** Host side: `U n\n` + n bytes → counts them, answers `n\n`, ends; `D n\n` → sends n bytes, ends. No hashing. */
const TCP_SERVER = `
import { createServer } from "node:net";
const CHUNK = Buffer.alloc(256 * 1024, 120);
const server = createServer({ allowHalfOpen: true }, (sock) => {
  let head = Buffer.alloc(0), cmd = "", want = 0, got = 0;
  sock.on("data", (d) => {
    if (cmd === "") {
      head = Buffer.concat([head, d]);
      const nl = head.indexOf(10);
      if (nl < 0) return;
      const line = head.subarray(0, nl).toString();
      cmd = line[0]; want = Number(line.slice(2)); d = head.subarray(nl + 1);
      if (cmd === "D") {
        let left = want;
        const more = () => {
          while (left > 0) {
            const b = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
            left -= b.length;
            if (!sock.write(b)) return void sock.once("drain", more);
          }
          sock.end();
        };
        more();
      }
    }
    got += d.length;
    if (cmd === "U" && got >= want) sock.end(got + "\\n");
  });
  sock.on("error", () => {});
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
`;

/** Inside the namespace: one connection, \`U\` (upload) or \`D\` (download) of n bytes; prints bytes and ms as JSON. */
const TCP_CLIENT = `
import { connect } from "node:net";
const [host, port, dir, n] = [process.argv[2], Number(process.argv[3]), process.argv[4], Number(process.argv[5])];
const CHUNK = Buffer.alloc(256 * 1024, 121);
let got = 0, reply = "";
const t0 = performance.now();
const sock = connect({ host, port }, () => {
  sock.write(dir + " " + n + "\\n");
  if (dir !== "U") return;
  let left = n;
  const more = () => {
    while (left > 0) {
      const b = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
      left -= b.length;
      if (!sock.write(b)) return void sock.once("drain", more);
    }
  };
  more();
});
sock.on("data", (d) => { got += d.length; if (dir === "U") reply += d.toString(); });
sock.on("end", () => {
  const moved = dir === "U" ? Number(reply.trim()) : got;
  console.log(JSON.stringify({ moved, ms: performance.now() - t0 }));
  process.exit(moved === n ? 0 : 3);
});
sock.on("error", (e) => { console.error(e.message); process.exit(1); });
`;

interface Xfer {
  mbps: number;
  proxyCpuSPerGb: number;
  endsCpuSPerGb: number;
  othersCores: number;
}
const xfers = new Map<string, Xfer[]>(); // `${dir}|${path}`
const SPLICE = "HAProxy, option splice-auto";

async function tcpPhase(): Promise<void> {
  writeFileSync(`${TMP}/tcp-server.mjs`, TCP_SERVER);
  writeFileSync(`${TMP}/tcp-client.mjs`, TCP_CLIENT);
  const server = spawn([BUN, `${TMP}/tcp-server.mjs`], LIFETIME_MS);
  const lines: string[] = [];
  void collectLines(server.stdout, lines);
  for (let i = 0; i < 200 && lines.length === 0; i++) await Bun.sleep(10);
  const serverPort = Number(lines[0]);
  if (!(serverPort > 0)) throw new Error(`the TCP server did not start: ${lines.join(" ")}`);
  // Integrity: test/helpers/tcp-stream.ts's sink (sha256 of what arrives after the client's FIN, then a stream back).
  const CHECK_BYTES = 64 << 20;
  const sink = await startSinkServer(2, CHECK_BYTES);
  const ns = `${PREFIX}tcp`;
  const nsCheck = `${PREFIX}tcpchk`;
  addNamespaces([ns, nsCheck]);
  const toml = `${TMP}/tcp.toml`;
  writeFileSync(
    toml,
    `[defaults]\nmode = "tcp"\nlisten = ["127.0.0.1:${TCP_PORT}"]\n\n[tenants.tput]\nnetns = "${ns}"\nupstream = "tcp://127.0.0.1:${serverPort}"\n\n[tenants.check]\nnetns = "${nsCheck}"\nupstream = "tcp://127.0.0.1:${sink.port}"\n`,
  );
  log("TCP: starting nsproxy --mode tcp and HAProxy mode tcp");
  const nsp = await startNsproxy("tcp", ["-c", toml], 2, [ns, nsCheck], TCP_PORT);
  const HA_PORT = TCP_PORT + 1;
  const hap = await startHaproxy(
    "tcp",
    tcpProxyConfig([
      { tenant: "tput", ns, port: HA_PORT, upstreamPort: serverPort },
      { tenant: "check", ns: nsCheck, port: HA_PORT, upstreamPort: sink.port },
    ]),
    [ns, nsCheck],
    HA_PORT,
    2,
  );
  const SPLICE_PORT = TCP_PORT + 2;
  const hapSplice = await startHaproxy("tcp-splice", tcpProxyConfig([{ tenant: "tput", ns, port: SPLICE_PORT, upstreamPort: serverPort }], { splice: true }), [ns], SPLICE_PORT, 1);
  notes.push(`TCP: ${nsp.attached}`);
  const want = { up: expected(1, CHECK_BYTES), down: expected(2, CHECK_BYTES) };
  for (const [p, port] of [[nsp, TCP_PORT], [hap, HA_PORT]] as const) {
    const before = sink.received.length;
    const c = spawn(["ip", "netns", "exec", nsCheck, BUN, `${ROOT}/test/helpers/tcp-stream.ts`, "client", "127.0.0.1", String(port), "1", String(CHECK_BYTES)], 120_000);
    const [out, err, code] = await Promise.all([new Response(c.stdout).text(), new Response(c.stderr).text(), c.exited]);
    if (code !== 0) throw new Error(`TCP check through ${p.name}: client exited ${code}: ${err}`);
    const back = JSON.parse(out) as { sha256: string; bytes: number };
    // The readiness probes' empty connections reach the sink too (0 bytes): the check's is the one with data.
    const got = sink.received.slice(before).find((r) => r.bytes > 0);
    const ok = got?.sha256 === want.up.sha256 && got.bytes === CHECK_BYTES && back.sha256 === want.down.sha256 && back.bytes === CHECK_BYTES;
    if (!ok) throw new Error(`TCP check through ${p.name}: up ${got?.bytes} bytes ${got?.sha256 === want.up.sha256 ? "intact" : "CORRUPT"}, down ${back.bytes} bytes ${back.sha256 === want.down.sha256 ? "intact" : "CORRUPT"}`);
    notes.push(`TCP check ${p.name}: ${CHECK_BYTES >> 20} MiB each way with half-close (test/helpers/tcp-stream.ts), sha256 intact both ways`);
  }
  sink.server.close();

  type Path = { name: string; ns?: string; port: number; pid?: number };
  const paths: Path[] = [
    { name: "direct (no proxy, client on the host)", port: serverPort },
    { name: "nsproxy", ns, port: TCP_PORT, pid: nsp.proc.pid },
    { name: "HAProxy", ns, port: HA_PORT, pid: hap.proc.pid },
    { name: SPLICE, ns, port: SPLICE_PORT, pid: hapSplice.proc.pid },
  ];
  const once = async (path: Path, dir: "U" | "D", n: number): Promise<Xfer> => {
    const argv = [BUN, `${TMP}/tcp-client.mjs`, "127.0.0.1", String(path.port), dir, String(n)];
    const pids = [server.pid, nsp.proc.pid, hap.proc.pid, hapSplice.proc.pid];
    const m = meter(pids);
    const s0 = cpuSeconds(server.pid);
    const p0 = path.pid ? cpuSeconds(path.pid) : 0;
    const c = spawn(path.ns ? ["ip", "netns", "exec", path.ns, ...argv] : argv, 120_000);
    const [out, err, code] = await Promise.all([new Response(c.stdout).text(), new Response(c.stderr).text(), c.exited]);
    if (code !== 0) throw new Error(`TCP ${dir} through ${path.name}: client exited ${code}: ${err}${out}`);
    const r = JSON.parse(out) as { moved: number; ms: number };
    const clientCpu = Number(c.resourceUsage()?.cpuTime.total ?? 0n) / 1e6;
    const gb = n / 1e9;
    const load = m(clientCpu);
    return {
      mbps: n / 1e6 / (r.ms / 1000),
      proxyCpuSPerGb: path.pid ? (cpuSeconds(path.pid) - p0) / gb : NaN,
      endsCpuSPerGb: (clientCpu + cpuSeconds(server.pid) - s0) / gb,
      othersCores: load.othersCores,
    };
  };
  for (const path of paths) for (const dir of ["U", "D"] as const) await once(path, dir, Math.min(bytesPerRun, 2e8)); // warm-up
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? paths : [paths[0]!, ...paths.slice(1).reverse()];
    for (const dir of ["U", "D"] as const) {
      for (const path of order) {
        const key = `${dir}|${path.name}`;
        await quiet();
        xfers.set(key, [...(xfers.get(key) ?? []), await once(path, dir, bytesPerRun)]);
      }
    }
    log(`TCP: round ${round + 1}/${rounds} done (load average ${loadavg()})`);
  }
  for (const p of [nsp, hap, hapSplice]) await stop(p.proc);
  await stop(server);
  for (const p of [nsp, hap]) notes.push(`TCP: ${logSummary(p.name, p.log)}`);
  for (const [key, xs] of xfers) notes.push(`run TCP ${key}: ${xs.map((x) => `${fmt(x.mbps)} MB/s, proxy ${fmt(x.proxyCpuSPerGb, 2)} CPU s/GB, ends ${fmt(x.endsCpuSPerGb, 2)}, others ${fmt(x.othersCores, 2)} cores`).join("; ")}`);
}

function tcpTable(paths: string[]): string[] {
  const head = ["direction", "path", "MB/s", "nsproxy/HAProxy", "proxy CPU s/GB", "client+server CPU s/GB", "other load, cores"];
  const out = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const dir of ["U", "D"] as const) {
    for (const path of paths) {
      const xs = xfers.get(`${dir}|${path}`) ?? [];
      const ha = xfers.get(`${dir}|HAProxy`) ?? [];
      out.push(
        `| ${[
          path === paths[0] ? (dir === "U" ? "client → upstream" : "upstream → client") : "",
          path,
          spread(xs.map((x) => x.mbps)),
          // Against HAProxy with its defaults (no splice).
          path === "nsproxy" ? fmt(median(xs.map((x) => x.mbps)) / median(ha.map((x) => x.mbps)), 2) : "",
          spread(xs.map((x) => x.proxyCpuSPerGb), 2),
          spread(xs.map((x) => x.endsCpuSPerGb), 2),
          fmt(Math.max(...xs.map((x) => x.othersCores)), 2) + " max",
        ].join(" | ")} |`,
      );
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

/** The rows' medians in a few sentences, so a rerun rewrites its own summary. */
function summary(): string[] {
  const out: string[] = [];
  const med = (kind: string, name: string, f: (r: Run) => number) => median((loadRuns.get(`${kind}|${name}`) ?? []).map(f));
  const cpu = (kind: string, name: string) => med(kind, name, (r) => r.cpuUsPerReq ?? NaN);
  const rps = (kind: string, name: string) => med(kind, name, (r) => r.rps);
  const p99 = (kind: string, name: string) => med(kind, name, (r) => r.p99Ms);
  const resumedPct = (kind: string, name: string) => {
    const runs = loadRuns.get(`${kind}|${name}`) ?? [];
    const all = runs.reduce((a, r) => a + (r.full ?? 0) + (r.resumed ?? 0), 0);
    return (100 * runs.reduce((a, r) => a + (r.resumed ?? 0), 0)) / Math.max(1, all);
  };
  const N = "nsproxy";
  const H = "HAProxy";
  if (loadRuns.size) {
    out.push(
      `- **Full TLS 1.3 handshakes** (EC P-256, X25519; a new connection per request): nsproxy ${fmt(cpu("hs-ec", N))} µs of CPU per request, HAProxy ${fmt(cpu("hs-ec", H))} µs (bare Bun.listen ${fmt(cpu("hs-ec", BARE))}); that is ${fmt(1e6 / cpu("hs-ec", N))} vs ${fmt(1e6 / cpu("hs-ec", H))} handshakes/s per proxy core. The handshake itself (over the plain connection-per-request row) costs nsproxy ${fmt(cpu("hs-ec", N) - cpu("close-plain", N))} µs, HAProxy ${fmt(cpu("hs-ec", H) - cpu("close-plain", H))} µs, bare Bun ${fmt(cpu("hs-ec", BARE) - cpu("close-plain", BARE))} µs. Measured req/s on the shared 2 cores: ${fmt(rps("hs-ec", N))} vs ${fmt(rps("hs-ec", H))} (p99 ${fmt(p99("hs-ec", N), 1)} vs ${fmt(p99("hs-ec", H), 1)} ms).`,
      `- **RSA 2048**: nsproxy ${fmt(cpu("hs-rsa", N))} µs per full-handshake request, HAProxy ${fmt(cpu("hs-rsa", H))} µs: the RSA signature alone is ${signed.bun} µs in Bun's BoringSSL and ${signed.openssl} µs in OpenSSL 3.0 on this CPU, so the gap is the library's, not nsproxy's code (bare Bun.listen: ${fmt(cpu("hs-rsa", BARE))} µs).`,
      `- **Resumption**: wrk resumes TLS sessions whenever the server lets it: ${fmt(resumedPct("hs-ec-resume", H), 1)}% of handshakes resumed with HAProxy, ${fmt(resumedPct("hs-ec-resume", N), 1)}% with nsproxy \`-w ${WORKERS}\`: each worker's TLS context has its own ticket key, and a reconnect lands on either worker (SO_REUSEPORT); with \`-w 1\` a saved session resumed every time (notes). With EC keys resuming saves little (nsproxy ${fmt(cpu("hs-ec-resume", N))} µs/req, HAProxy ${fmt(cpu("hs-ec-resume", H))}).`,
      `- **Keep-alive HTTPS** (-c${CONNS}): nsproxy ${fmt(rps("ka-tls", N))} req/s, HAProxy ${fmt(rps("ka-tls", H))} (${fmt(rps("ka-tls", N) / rps("ka-tls", H), 2)}×); CPU ${fmt(cpu("ka-tls", N), 1)} vs ${fmt(cpu("ka-tls", H), 1)} µs/req, p99 ${fmt(p99("ka-tls", N), 2)} vs ${fmt(p99("ka-tls", H), 2)} ms. TLS adds ${fmt(cpu("ka-tls", N) - cpu("ka-plain", N), 1)} µs/req to nsproxy's plain keep-alive, ${fmt(cpu("ka-tls", H) - cpu("ka-plain", H), 1)} to HAProxy's.`,
    );
  }
  if (mems.length) {
    const slope = (proxy: string, listeners: string) => {
      const xs = mems.filter((m) => m.proxy === proxy && m.listeners === listeners).sort((a, b) => a.n - b.n);
      return xs.length >= 2 ? (median(xs.at(-1)!.anonKb) - median(xs[0]!.anonKb)) / (xs.at(-1)!.n - xs[0]!.n) : NaN;
    };
    const https = "https (one shared cert)";
    const n = slope(N, https) - slope(N, "plain");
    const h = slope(H, https) - slope(H, "plain");
    out.push(
      `- **RSS per TLS listener** (anonymous memory, slope between N=${rssCounts[0]} and N=${rssCounts.at(-1)}, https minus plain): nsproxy ${fmt(n, 1)} kB per https tenant, i.e. ${fmt(n / WORKERS, 1)} kB per TLS listener (${WORKERS} per tenant, one per worker); HAProxy ${fmt(h, 1)} kB per TLS frontend. A certificate of its own per tenant costs more (see the N=${rssCounts[0]} rows).`,
    );
  }
  if (xfers.size) {
    const x = (dir: string, path: string, f: (x: Xfer) => number) => median((xfers.get(`${dir}|${path}`) ?? []).map(f));
    out.push(
      `- **TCP mode**, one connection, ${fmt(bytesPerRun / 1e9, 1)} GB per run: client → upstream nsproxy ${fmt(x("U", N, (r) => r.mbps))} MB/s vs HAProxy ${fmt(x("U", H, (r) => r.mbps))} (${fmt(x("U", N, (r) => r.proxyCpuSPerGb), 2)} vs ${fmt(x("U", H, (r) => r.proxyCpuSPerGb), 2)} CPU s/GB); upstream → client ${fmt(x("D", N, (r) => r.mbps))} vs ${fmt(x("D", H, (r) => r.mbps))} MB/s (${fmt(x("D", N, (r) => r.proxyCpuSPerGb), 2)} vs ${fmt(x("D", H, (r) => r.proxyCpuSPerGb), 2)} CPU s/GB); direct, no proxy: ${fmt(x("U", "direct (no proxy, client on the host)", (r) => r.mbps))} / ${fmt(x("D", "direct (no proxy, client on the host)", (r) => r.mbps))} MB/s.`,
    );
  }
  return out;
}

function report(v: Record<string, string>): string {
  const m = machine();
  const out = [
    "## TLS and TCP mode: nsproxy vs HAProxy",
    "",
    `- Machine: ${m.cpus} CPUs (nproc), ${m.model}, kernel ${m.kernel}; ${v.nsproxy} (a copy of dist/nsproxy taken at the start), bun ${Bun.version}; ${v.haproxy}; ${v.openssl}; ${v.wrk}`,
    `- Date: ${new Date().toISOString()}; took ${Math.round(elapsedS())} s; command: \`${`bun bench/tls-tcp.ts ${process.argv.slice(2).join(" ")}`.trim()}\``,
    `- Both proxies on the same 2 cores as the clients and the upstream: nsproxy \`-w ${WORKERS}\`, HAProxy \`nbthread 2\`; A/B alternating (order turned every round), ${rounds} round(s); figures are "median (min–max)" over the rounds. Other people's work shared the machine: see "other load" and the last notes. CPU per request or per GB is the steadiest figure here; req/s and MB/s move with that other load.`,
    "",
    "### Summary",
    "",
    ...summary(),
    "",
  ];
  if (tlsTable.length) {
    out.push(
      "### TLS handshakes and keep-alive HTTPS",
      "",
      `wrk \`-t1 -c${CONNS} -d${durationS}s --latency\` from inside the tenant's namespace (\`-H "Connection: close"\` for a new TCP+TLS connection per request), each proxy → the shared one-thread HAProxy upstream answering \`ok\\n\` from memory on the host. Same certificate and key files for both (HAProxy: the two concatenated, \`bind … ssl crt FILE alpn http/1.1 namespace NS\`). **CPU µs/req**: the proxy's utime+stime (all threads) over the run / requests; **req/s per proxy core** = 10^6 / that: what a core given to the proxy alone would carry (the req/s column is bounded by the 2 cores that wrk, the upstream and the proxy share: wrk's OpenSSL 3 client side of a full handshake costs about as much as the server side). **handshakes resumed**: counted in wrk by an LD_PRELOAD helper around SSL_connect (SSL_session_reused); in the "full handshakes" rows the helper drops the session wrk would offer, so every connection is a full TLS 1.3 handshake. **wrk cores**: wrk's own CPU / run time (1.0 = the client was the limit). **bare Bun.listen**: not a proxy, a one-thread bun process in the namespace answering \`ok\` itself over the same certificate: what Bun and its BoringSSL cost per connection and handshake before any proxying. **other load**: the machine's busy time (/proc/stat) minus that of every process of the bench, in cores (the worst run of the row): other people's work on the same 2 cores.`,
      "",
      ...tlsTable,
      "",
    );
  }
  if (mems.length) {
    out.push(
      "### RSS per TLS listener",
      "",
      `One proxy at a time, N namespaces each with one listener on 127.0.0.1 (nsproxy \`--discover\`, \`-w ${WORKERS}\`: every tenant listens in both workers, so an https tenant is **${WORKERS} listening sockets, each with a TLS context of its own** (one Bun.listen per tenant per worker; that the workers' contexts are separate shows in the TLS notes: a session ticket from one worker does not resume on the other); HAProxy \`nbthread 2\`: one bind, so one SSL_CTX, per frontend, shared by its threads). RSS and RssAnon (with children) 1 s after every sampled namespace (first, middle, last) accepts connections, before any request; two starts of each, plain and https alternating. **per tenant over plain**: (anon https − anon plain) / N at the same N; **per extra tenant**: the anon slope between the two N.`,
      "",
      ...rssTable(),
      "",
    );
  }
  if (xfers.size) {
    out.push(
      "### TCP mode",
      "",
      `One TCP connection moving ${fmt(bytesPerRun / 1e9, 1)} GB one way per run (no hashing: a 256 KiB buffer written again and again, node:net in bun on both ends), from a client inside the namespace through nsproxy \`--mode tcp -u tcp://…\` or HAProxy \`mode tcp\` (defaults: tune.bufsize 16 kB, no splice; and once more with \`option splice-auto\`, kernel pipes instead of copies, for reference) to a server on the host's 127.0.0.1; "direct" is the same client on the host straight to the server. MB/s = 10^6 bytes / s from connect to the end; **CPU s/GB** the proxy's CPU per 10^9 bytes; **client+server** the two ends' CPU (they share the cores with the proxy).`,
      "",
      ...tcpTable(["direct (no proxy, client on the host)", "nsproxy", "HAProxy", SPLICE]),
      "",
    );
  }
  out.push("### Notes", "", ...notes.map((n) => `- ${n}`), "");
  return out.join("\n");
}

await runBench(async () => {
  ensureTools();
  const stale = removeStale();
  if (stale > 0) log(`removed ${stale} namespaces left by an earlier bench that was killed`);
  // dist/nsproxy may be rebuilt by others while this runs: measure one fixed copy.
  BIN = copyBinary(NSPROXY);
  mkdirSync(CERTS, { recursive: true });
  const nofile = raiseNofile(WORKERS * Math.max(...rssCounts) + 4096);
  if (nofile.note) notes.push(nofile.note);
  notes.push(`load average at the start: ${loadavg()}`);
  const versions = {
    nsproxy: sh([BIN, "--version"]).trim(),
    haproxy: sh(["haproxy", "-v"]).split("\n")[0]!.trim(),
    openssl: sh(["openssl", "version"]).trim(),
    wrk: (Bun.spawnSync(["wrk", "-v"]).stdout.toString() || "wrk").split("\n")[0]!.replace(/ Copyright.*/, "").trim(),
  };
  const upstream = await startUpstream();
  log(`upstream on 127.0.0.1:${upstream.port}; namespaces ${PREFIX}*; temp ${TMP}`);
  if (only.has("tls")) {
    buildShim();
    await tlsPhase(upstream);
  }
  if (only.has("rss")) await rssPhase(upstream.port);
  if (only.has("tcp")) await tcpPhase();
  notes.push(`load average at the end: ${loadavg()}`);
  notes.push(
    quietWaitS === 0
      ? "no waiting for a quiet machine (--quiet-wait 0)"
      : `before each of ${quietStats.runs} measured runs the bench waited for the machine to be under 0.3 cores busy for 0.5 s (at most ${quietWaitS} s): ${fmt(quietStats.waitedMs / 1000, 1)} s waited in all, gave up waiting ${quietStats.gaveUp} time(s)${quietStats.gaveUp > 0 ? " (those runs ran alongside other work)" : ""}; the gate looks only at the start of a run: "other load" in the tables is what came during each`,
  );
  const md = report(versions);
  writeFileSync(`${import.meta.dir}/RESULTS-tls-tcp.md`, md);
  console.log(md);
});
// The TCP check's sink lives in this process: leave even if a failure left it open.
process.exit();
