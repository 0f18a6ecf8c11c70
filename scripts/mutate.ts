// npm run mutate: break each promise nsproxy makes on purpose, one at a time, in a copy of the tree, and check that a test fails.
//
// A curated list rather than StrykerJS: Stryker has no Bun runner, and it mutates every expression it finds, so
// each of its hundreds of mutants would rerun tests that need root, real namespaces and seconds each. The list
// below names the promises that matter (the README's), the edit that breaks each, and the tests that must catch
// it; the whole run stays within minutes. A mutation whose text no longer matches the code fails the run: when
// the code moves, move the mutation with it.
//
// Usage (root): bun scripts/mutate.ts [--ref REF] [NAME …]
//   the working tree as it stands (tracked and untracked, not ignored) is copied to a temporary directory; with
//   --ref, that commit instead. The shared tree is never touched. Exit 0 when every mutation was killed.
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

interface Mutation {
  name: string;
  /** The promise it breaks, in words. */
  breaks: string;
  file: string;
  /** Each `from` must occur exactly once in the file. */
  edits: [from: string, to: string][];
  /** Test files to run, and a name pattern (bun test -t) when only some of their tests are the ones meant. */
  tests: string[];
  only?: string;
}

const MUTATIONS: Mutation[] = [
  {
    name: "window-return-check",
    breaks: "a failed return home (setns back) is noticed and the worker replaced",
    file: "src/worker/window.ts",
    edits: [["  if (back < 0) {\n", "  if (back < 0 && false) {\n"]],
    tests: ["test/worker-replace.test.ts"],
    only: "kernel refuses|return home fails",
  },
  {
    name: "worker-death-unreported",
    breaks: "a worker that dies (error or exit) is reported to the pool and replaced",
    file: "src/worker/pool.ts",
    edits: [
      ["        reject(new Error(reason));\n        this.die(reason);\n", "        reject(new Error(reason));\n"],
      ['      this.worker.addEventListener("close", () => this.die("worker exited"));\n', ""],
    ],
    tests: ["test/worker-replace.test.ts"],
    only: "uncaught error|hard exit",
  },
  {
    name: "replaced-worker-not-reattached",
    breaks: "a replaced worker gets its tenants again",
    file: "src/control/reconciler.ts",
    edits: [["this.workers.onReplaced = (index) => void this.reattachWorker(index);", "this.workers.onReplaced = () => {};"]],
    tests: ["test/worker-replace.test.ts"],
    only: "hard exit",
  },
  {
    name: "tenant-file-written-in-place",
    breaks: "a tenant file is written atomically (temp file, fsync, rename): a crash leaves the old file or the new one",
    file: "src/store/tenants-dir.ts",
    edits: [
      ["fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);", "fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o644);"],
      ["    renameSync(tmp, file);\n", ""],
    ],
    tests: ["test/store-crash.test.ts"],
  },
  {
    name: "config-tenant-409",
    breaks: "a tenant declared in the config file or by a flag cannot be changed or removed through the admin API (409)",
    file: "src/control/admin-control.ts",
    edits: [
      ["    if (explicit) {\n", "    if (explicit && false) {\n"],
      ['    if (explicit) throw new ControlError("conflict",', '    if (explicit && false) throw new ControlError("conflict",'],
    ],
    tests: ["test/live.test.ts"],
    only: "409",
  },
  {
    name: "stamp-not-sent",
    breaks: "every upstream request carries the tenant's stamp",
    file: "src/engine/rewrite.ts",
    edits: [["  out += stamp.text;\n", ""]],
    tests: ["src/engine/conn.test.ts", "test/proxy.test.ts"],
  },
  {
    name: "late-close-answers-again",
    breaks: "one answer per request: a terminated upstream's close (reported inside terminate()) is ignored",
    file: "src/engine/upstream-pool.ts",
    edits: [["  kill(): void {\n    this.live = false;\n", "  kill(): void {\n"]],
    tests: ["src/engine/conn.test.ts"],
  },
  {
    name: "stray-bytes-forwarded-or-response-lost",
    breaks: "bytes beyond a response's framing never reach the client, and the response itself does",
    file: "src/engine/conn.ts",
    edits: [["      if (chunk.length > 0) this.closeUp();\n      this.finishExchange();", "      if (chunk.length > 0) this.sendClient(chunk);\n      this.finishExchange();"]],
    tests: ["src/engine/conn.test.ts"],
  },
  {
    name: "drain-closes-idle-at-once",
    breaks: "a replaced tenant's idle keep-alive connection answers one more request instead of being reset under it",
    file: "src/engine/conn.ts",
    edits: [["this.buf.length)) this.setTimer(Timer.Drain);", "this.buf.length)) this.closeClient();"]],
    tests: ["src/engine/conn.test.ts"],
  },
  {
    name: "pool-takes-busy-connections",
    breaks: "an upstream connection goes back to the tenant's pool only after a complete exchange",
    file: "src/engine/conn.ts",
    edits: [["!this.upConnecting && this.req === undefined && this.phase !== Phase.Tunnel", "!this.upConnecting && this.phase !== Phase.Tunnel"]],
    tests: ["src/engine/conn.test.ts"],
  },
  {
    name: "look-alikes-kept",
    breaks: "look-alikes of the stamp (X_Nsproxy_Tenant) are removed",
    file: "src/engine/fields.ts",
    edits: [['  if (lowerName.includes("_")) {', "  if (false) {"]],
    tests: ["src/engine/conn.test.ts", "test/proxy.test.ts"],
  },
  {
    name: "connection-named-fields-kept",
    breaks: "fields a Connection header names are hop-by-hop and not forwarded",
    file: "src/engine/fields.ts",
    edits: [["    if (named.includes(fieldName(s, f, i))) f.kind[i] = Kind.HopByHop;\n", ""]],
    tests: ["src/engine/conn.test.ts", "test/proxy.test.ts"],
  },
  {
    name: "hop-by-hop-forwarded",
    breaks: "Keep-Alive, TE and Proxy-* are never forwarded",
    file: "src/engine/rewrite.ts",
    edits: [["  return k === Kind.Other || k === Kind.Host ||", "  return k === Kind.Other || k === Kind.HopByHop || k === Kind.Host ||"]],
    tests: ["src/engine/conn.test.ts", "test/proxy.test.ts"],
  },
  {
    name: "cl-and-te-accepted",
    breaks: "a request with both Content-Length and Transfer-Encoding is refused (400): no smuggling",
    file: "src/engine/request-head.ts",
    edits: [['    if (cl !== undefined) return refuse(400, "both Content-Length and Transfer-Encoding", lineNext);\n', ""]],
    tests: ["src/engine/conn.test.ts", "test/differential.test.ts"],
  },
  {
    name: "thread-check-blind",
    breaks: "the runtime check names any thread outside the process's own namespace",
    file: "src/netns/threads.ts",
    edits: [["    if (netns !== own) stray.push({ tid, netns });", "    if (netns !== own && false) stray.push({ tid, netns });"]],
    tests: ["test/threads.test.ts"],
    only: "runtime check",
  },
  {
    name: "fd-budget-ignored",
    breaks: "connections are refused before the process runs out of descriptors",
    file: "src/worker/shared-counts.ts",
    edits: [["    if (after <= this.a[LIMIT]!) return true;", "    if (after <= this.a[LIMIT]! || true) return true;"]],
    tests: ["src/worker/shared-counts.test.ts", "test/connection-limits.test.ts"],
  },
  {
    name: "faults-in-release-binary",
    breaks: "the release binary ignores every fault-injection switch",
    file: "src/faults.ts",
    edits: [["const enabled = !process.env.NSPROXY_COMPILED;", "const enabled = true;"]],
    tests: ["test/binary.test.ts"],
    only: "fault-injection",
  },
  {
    name: "proxy-protocol-pooled",
    breaks: "with upstream_proxy_protocol, an upstream connection carries one client connection only (its header names that client)",
    file: "src/worker/tenant-group.ts",
    edits: [["const pool = this.tcp || this.proxyProtocol ? undefined : new UpstreamPool(", "const pool = this.tcp ? undefined : new UpstreamPool("]],
    tests: ["test/proxy-protocol-tcp.test.ts"],
    only: "one client connection per upstream connection",
  },
  {
    name: "https-said-http",
    breaks: "requests that came over TLS say X-Forwarded-Proto: https",
    file: "src/worker/tenant-group.ts",
    edits: [['routeOf(spec, stats, pool, material.upstreamCa, "https")', "routeOf(spec, stats, pool, material.upstreamCa)"]],
    tests: ["test/https-listeners.test.ts"],
    only: "each serve their own certificate",
  },
  {
    name: "ingress-host-claimed-twice",
    breaks: "an ingress host belongs to one tenant: a second claim is refused naming the owner",
    file: "src/control/desired.ts",
    edits: [["    if (taken) return `ingress host ${taken} already belongs to tenant '${o.name}'`;", "    if (taken && false) return `ingress host ${taken} already belongs to tenant '${o.name}'`;"]],
    tests: ["test/ingress.test.ts"],
    only: "claimed twice",
  },
  {
    name: "ingress-keepalive-first-route",
    breaks: "ingress routes each request of a keep-alive connection by its own Host, not the first request's tenant",
    file: "src/engine/conn.ts",
    edits: [["    const r = this.router!(host);\n", "    const r = this.requests > 0 ? this.route : this.router!(host);\n"]],
    tests: ["test/ingress.test.ts"],
    only: "keep-alive connection",
  },
  {
    name: "static-header-lookalike-accepted",
    breaks: "a static header or tenant_header may not be a managed field's look-alike (X_Forwarded_For, Content_Length)",
    file: "src/config/values.ts",
    edits: [["  const why = managedWhy(key);", "  const why = managedWhy(name.toLowerCase());"]],
    tests: ["src/config/protected-headers.test.ts"],
  },
  {
    name: "stamp-lookalike-static-header",
    breaks: "a static header that reads as the tenant header (X_Nsproxy_Tenant) is refused: no second stamp",
    file: "src/config/schema.ts",
    edits: [["    const key = headerKey(name);", "    const key = name.toLowerCase();"]],
    tests: ["src/config/protected-headers.test.ts", "test/protected-headers.test.ts"],
  },
  {
    name: "static-headers-uncapped",
    breaks: "one tenant's static headers total at most 8 kB",
    file: "src/config/load.ts",
    edits: [["    if (bytes > MAX_STATIC_HEADER_BYTES) {", "    if (bytes > MAX_STATIC_HEADER_BYTES && false) {"]],
    tests: ["src/config/protected-headers.test.ts"],
  },
  {
    name: "pipelined-response-counted-twice",
    breaks: "each response is counted once: N pipelined requests on one connection are N in /metrics and the stats",
    file: "src/engine/conn.ts",
    edits: [['    this.logExchange(head.status, head.framing.body === "length"', '    if (more) this.count(Stat.Resp2xx);\n    this.logExchange(head.status, head.framing.body === "length"']],
    tests: ["test/pipelined-counts.test.ts"],
  },
  {
    name: "ingress-connect-return-unchecked",
    breaks: "a failed return home after an ingress connect (nsx_connect_in) is noticed and the worker replaced",
    file: "src/worker/worker.ts",
    edits: [["  if (fd === STRANDED) {", "  if (fd === STRANDED && false) {"]],
    tests: ["test/worker-replace.test.ts"],
    only: "ingress connect",
  },
  {
    name: "strand-migration-not-armed",
    breaks: "a stranded worker turns on tcp_migrate_req before closing its listeners (queued connections move, not reset)",
    file: "src/worker/worker.ts",
    edits: [["  armMigration(all);\n", ""]],
    tests: ["test/worker-replace.test.ts"],
    only: "return home fails",
  },
  {
    name: "static-header-dashed-twin-kept",
    breaks: "a client's X-Plan never rides beside a static X_Plan (one variable to a CGI/WSGI upstream)",
    file: "src/engine/rewrite.ts",
    edits: [['    if (lower.includes("_")) list.push(lower.replaceAll("_", "-"));\n', ""]],
    tests: ["src/engine/rewrite.test.ts", "test/protected-headers.test.ts"],
  },
  {
    name: "listener-clash-by-path",
    breaks: "two tenants naming one namespace by different paths (/var/run/netns/B, /proc/PID/ns/net) may not listen on one address",
    file: "src/control/desired.ts",
    edits: [["    if (o.netns !== spec.netns && namespaceOf(o.netns) !== (mine ??= namespaceOf(spec.netns))) continue;", "    if (o.netns !== spec.netns) continue;"]],
    tests: ["test/listener-owner.test.ts"],
    only: "another path of the same namespace",
  },
  {
    name: "listener-wildcard-not-overlapping",
    breaks: "a wildcard address (0.0.0.0, [::]) clashes with every address of its family on its port",
    file: "src/config/overlap.ts",
    edits: [['  if (x === y || x === "[::]" || y === "[::]") return true;\n', "  return x === y;\n"]],
    tests: ["src/control/desired.test.ts", "test/listener-owner.test.ts"],
    only: "wildcard",
  },
  {
    name: "listener-claims-skipped",
    breaks: "a namespace that appears later cannot make two accepted tenants share an address: the later attach fails naming the owner",
    file: "src/control/reconciler.ts",
    edits: [["const refused = this.claims.claim(t.spec, identity);", "const refused = undefined as string | undefined;"]],
    tests: ["src/control/reconciler.test.ts"],
    only: "name one namespace",
  },
  {
    name: "foreign-listener-shared",
    breaks: "an address another process (a second nsproxy) listens on fails the tenant naming its pid, never shared through SO_REUSEPORT",
    file: "src/worker/window.ts",
    edits: [["    if (alone) taken = probeAloneRaw(addr.host, addr.port);", "    if (alone && false) taken = probeAloneRaw(addr.host, addr.port);"]],
    tests: ["test/listener-owner.test.ts"],
    only: "second daemon",
  },
];

const ROOT = join(import.meta.dir, "..");
const BUN = process.execPath;
/** One test run may not take longer than this (a hung run counts as a failure to decide, and fails the script). */
const RUN_LIMIT_MS = 180_000;

function git(...args: string[]): string {
  const r = spawnSync("git", ["-C", ROOT, ...args], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** The tree to mutate, copied to a fresh directory: the working tree as it stands, or commit `ref`. */
function copyTree(ref: string | undefined): string {
  const dir = mkdtempSync(join(tmpdir(), "nsproxy-mutate-"));
  if (ref) {
    const tar = spawnSync("sh", ["-c", `git -C "${ROOT}" archive "${ref}" | tar -x -C "${dir}"`], { encoding: "utf8" });
    if (tar.status !== 0) throw new Error(`git archive ${ref}: ${tar.stderr}`);
  } else {
    for (const f of git("ls-files", "-co", "--exclude-standard", "-z").split("\0")) {
      if (!f || !existsSync(join(ROOT, f))) continue;
      mkdirSync(dirname(join(dir, f)), { recursive: true });
      cpSync(join(ROOT, f), join(dir, f));
    }
  }
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  return dir;
}

interface RunResult {
  code: number | null;
  failed: string[];
  seconds: number;
  tail: string;
}

function runTests(dir: string, tests: string[], only: string | undefined): Promise<RunResult> {
  const args = ["test", "--timeout", "60000", ...tests, ...(only ? ["-t", only] : [])];
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(BUN, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGTERM"), RUN_LIMIT_MS);
    child.on("close", (code) => {
      clearTimeout(timer);
      const failed = [...new Set([...out.matchAll(/^\(fail\) (.*?)(?: \[[\d.]+m?s\])?$/gm)].map((m) => m[1]!))];
      resolve({ code, failed, seconds: (performance.now() - started) / 1000, tail: out.split("\n").slice(-25).join("\n") });
    });
  });
}

function apply(dir: string, m: Mutation): string {
  const path = join(dir, m.file);
  const original = readFileSync(path, "utf8");
  let text = original;
  for (const [from, to] of m.edits) {
    const n = text.split(from).length - 1;
    if (n !== 1) throw new Error(`mutation ${m.name} no longer applies: ${JSON.stringify(from)} occurs ${n} times in ${m.file}`);
    text = text.replace(from, to);
  }
  writeFileSync(path, text);
  return original;
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error("mutate: the tests that must catch these mutations need root (they create network namespaces)");
    return 2;
  }
  const argv = process.argv.slice(2);
  let ref: string | undefined;
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--ref") ref = argv[++i];
    else names.push(argv[i]!);
  }
  const chosen = names.length ? MUTATIONS.filter((m) => names.includes(m.name)) : MUTATIONS;
  const unknown = names.filter((n) => !MUTATIONS.some((m) => m.name === n));
  if (unknown.length) {
    console.error(`mutate: no mutation named ${unknown.join(", ")}; known: ${MUTATIONS.map((m) => m.name).join(", ")}`);
    return 2;
  }
  const t0 = performance.now();
  const dir = copyTree(ref);
  console.log(`mutate: ${chosen.length} mutations of ${ref ?? "the working tree"}, in ${dir}`);
  let bad = 0;
  try {
    // Every test meant to catch a mutation must pass unmutated, or its failing proves nothing.
    const groups = new Map<string, Mutation>();
    for (const m of chosen) groups.set(`${m.tests.join(" ")}|${m.only ?? ""}`, m);
    for (const m of groups.values()) {
      const r = await runTests(dir, m.tests, m.only);
      const label = `${m.tests.join(" ")}${m.only ? ` -t "${m.only}"` : ""}`;
      if (r.code !== 0) {
        console.log(`BASELINE FAILS  ${label} (${r.seconds.toFixed(1)} s): the unmutated tree must pass first\n${r.tail}`);
        return 1;
      }
      console.log(`baseline ok     ${label} (${r.seconds.toFixed(1)} s)`);
    }
    for (const m of chosen) {
      let original: string;
      try {
        original = apply(dir, m);
      } catch (e) {
        console.log(`STALE     ${m.name}: ${(e as Error).message}`);
        bad++;
        continue;
      }
      const r = await runTests(dir, m.tests, m.only);
      writeFileSync(join(dir, m.file), original);
      if (r.code === 0) {
        console.log(`SURVIVED  ${m.name} (${r.seconds.toFixed(1)} s): nothing caught "${m.breaks}"`);
        bad++;
      } else if (r.failed.length === 0) {
        console.log(`UNCLEAR   ${m.name} (${r.seconds.toFixed(1)} s): the run failed (exit ${r.code}) but no test did\n${r.tail}`);
        bad++;
      } else {
        console.log(`killed    ${m.name} (${r.seconds.toFixed(1)} s), breaks "${m.breaks}"; failed: ${r.failed.join(" | ")}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`mutate: ${chosen.length - bad}/${chosen.length} killed in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return bad === 0 ? 0 : 1;
}

process.exit(await main());
