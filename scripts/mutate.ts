// npm run mutate: break each promise nsproxy makes on purpose, one at a time, in a copy of the tree, and check that a test fails.
//
// A curated list rather than StrykerJS: Stryker has no Bun runner, and it mutates every expression it finds, so
// each of its hundreds of mutants would rerun tests that need root, real namespaces and seconds each. The list
// below names the promises that matter (the README's), the edit that breaks each, and the tests that must catch
// it; the whole run stays within minutes. A mutation whose text no longer matches the code fails the run: when
// the code moves, move the mutation with it.
//
// Usage (root): bun scripts/mutate.ts [--ref REF] [NAME …]      bun scripts/mutate.ts --list (each name and the promise it breaks)
//   the working tree as it stands (tracked and untracked, not ignored) is copied to a temporary directory; with
//   --ref, that commit instead. The shared tree is never touched. Exit 0 when every mutation was killed.
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
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
    edits: [["  w.bytes(stamp.bytes);\n", ""]],
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
    edits: [["      if (at < chunk.length) this.closeUp();\n      this.finishExchange();", "      if (at < chunk.length) this.sendClient(chunk.subarray(at));\n      this.finishExchange();"]],
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
    edits: [["    if (equalsIgnoreCase(s, f.line[i]!, f.colon[i]!, a, b)) f.kind[i] = Kind.HopByHop;\n", ""]],
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
    edits: [["    if (mine <= this.shareOf(dir) && this.fdsInUse + FD_RESERVE <= this.fdLimit) return true;", "    if (mine <= this.shareOf(dir) && this.fdsInUse + FD_RESERVE <= this.fdLimit || true) return true;"]],
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
    edits: [['    this.logExchange(head.status, head.framing.body === "length"', '    if (this.buf !== undefined && this.pos < this.buf.length) this.count(Stat.Resp2xx);\n    this.logExchange(head.status, head.framing.body === "length"']],
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
    name: "http10-gets-chunked",
    breaks: "an HTTP/1.0 client never gets chunked framing: the upstream's chunked answer reaches it de-chunked",
    file: "src/engine/conn.ts",
    edits: [["    if (req.minor === 0) return this.http10Response(buf, s, head, chunk, rest);\n", ""]],
    tests: ["src/engine/conn.test.ts", "test/engine.test.ts"],
    only: "HTTP/1.0",
  },
  {
    name: "upstream-failure-closes-client",
    breaks: "a 502/504 written before any response byte keeps the client's well-framed keep-alive connection for its next request",
    file: "src/engine/conn.ts",
    edits: [["    if (req === undefined || !this.clientMayStay() || this.u2c.queue.length > 0) {\n      this.refuse(status, reason);", "    if (true) {\n      this.refuse(status, reason);"]],
    tests: ["src/engine/conn.test.ts", "test/engine.test.ts"],
    only: "502|failed before answering",
  },
  {
    name: "local-answers-pile-up",
    breaks: "a client that pipelines requests and never reads cannot make nsproxy queue its own 502s without bound",
    file: "src/engine/conn.ts",
    edits: [[" || !this.clientMayStay() || this.u2c.queue.length > 0) {", " || !this.clientMayStay()) {"]],
    tests: ["src/engine/conn.test.ts"],
    only: "does not read",
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
  {
    name: "ingress-cap-ignored",
    breaks: "a tenant's ingress_max_connections refuses its connections over the cap (503; sni:// closed)",
    file: "src/worker/ingress.ts",
    edits: [['    if (!this.counts.enter(e.slot, e.max, "ingress")) {', '    if (!this.counts.enter(e.slot, e.max, "ingress") && false) {']],
    tests: ["src/worker/ingress.test.ts", "test/ingress-budget.test.ts"],
    only: "ingress_max_connections|sni: a connection over",
  },
  {
    name: "ingress-budget-refusal-ignored",
    breaks: "ingress connections are refused at ingress's share of the descriptor budget (an idle flood cannot starve egress)",
    file: "src/worker/ingress.ts",
    edits: [['    if (!reserveConnectionFds(sock, this.counts, this.env, this.owner, "ingress")) return false;', "    if (!true) return false;"]],
    tests: ["src/worker/ingress.test.ts", "test/ingress-budget.test.ts"],
    only: "silent connections|idle ingress connections",
  },
  {
    name: "budget-split-ignored",
    breaks: "with ingress listeners each direction keeps to its share of the descriptor budget",
    file: "src/worker/shared-counts.ts",
    edits: [['    return Math.floor(this.budget * (dir === "ingress" ? INGRESS_SHARE : EGRESS_SHARE));', "    return this.budget;"]],
    tests: ["src/worker/shared-counts.test.ts", "test/ingress-budget.test.ts"],
    only: "budget split|idle ingress connections",
  },
  {
    name: "fd-limit-not-followed",
    breaks: "the descriptor budget follows RLIMIT_NOFILE as it changes at runtime (no busy loop under a lowered limit)",
    file: "src/control/fd-limit-watch.ts",
    edits: [["    this.counts.setFdLimit(limit);", ""]],
    tests: ["test/ingress-budget.test.ts"],
    only: "prlimit",
  },
  {
    name: "no-shed-under-lowered-limit",
    breaks: "idle connections over a lowered descriptor limit are closed, so accept() stops failing with EMFILE",
    file: "src/worker/worker.ts",
    edits: [["  if (counts.excess > 0) shed();", ""]],
    tests: ["test/ingress-budget.test.ts"],
    only: "prlimit",
  },
  {
    name: "file-type-unchecked",
    breaks: "files read from watched places (tenants dir, config, certificates) and namespace paths must be regular files",
    file: "src/fs/read-bounded.ts",
    edits: [["    if (!st.isFile()) throw new FileRefused(", "    if (!st.isFile() && false) throw new FileRefused("]],
    tests: ["test/hostile-files.test.ts"],
    only: "tenants dir are skipped",
  },
  {
    name: "toml-depth-unbounded",
    breaks: "a TOML key nested thousands deep is refused before a parser builds it",
    file: "src/config/toml-bounds.ts",
    edits: [["base + ++parts > MAX_KEY_DEPTH", "base + ++parts > MAX_KEY_DEPTH * 1e6"]],
    tests: ["test/hostile-files.test.ts"],
    only: "tenants dir are skipped",
  },
  {
    name: "log-unescaped",
    breaks: "a name from outside (a discovered file name) cannot start a line of its own in the text log",
    file: "src/log.ts",
    edits: [["${message(obj, escapeControl).join", "${message(obj, (t) => t).join"]],
    tests: ["test/hostile-files.test.ts"],
    only: "newline",
  },
  {
    name: "seccomp-not-installed",
    breaks: "the syscall filter is installed at start: unshare, mount and clone of a namespace fail with EPERM inside the daemon",
    file: "src/netns/seccomp.ts",
    edits: [["  const rc = installSyscallFilterRaw();", "  const rc = 0;"]],
    tests: ["test/seccomp.test.ts"],
    only: "every thread is filtered",
  },
  {
    name: "seccomp-one-thread-only",
    breaks: "the filter covers every thread the runtime already has (TSYNC), not only the one that installs it",
    file: "libnetns.c",
    edits: [["long rc = sys3(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);", "long rc = sys3(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);"]],
    tests: ["test/seccomp.test.ts"],
    only: "every thread is filtered",
  },
  {
    name: "seccomp-clone-namespace-allowed",
    breaks: "clone with a namespace flag is refused while clone of a thread passes",
    file: "libnetns.c",
    edits: [["BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NSX_CLONE_NEW, 0, 1),", "BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0, 0, 1),"]],
    tests: ["test/seccomp.test.ts"],
    only: "every thread is filtered",
  },
  {
    name: "flag-typo-no-suggestion",
    breaks: "a mistyped flag is named with the nearest flag the command takes",
    file: "src/commands/args.ts",
    edits: [["unknown option${didYouMean(flag, known)} (see --help)", "unknown option (see --help)"]],
    tests: ["test/cli-messages.test.ts"],
    only: "typo",
  },
  {
    name: "command-typo-to-citty",
    breaks: "a mistyped command or subcommand is named with the nearest one, exit 2",
    file: "src/cli.ts",
    edits: [["  if (wrong) {\n", "  if (wrong && false) {\n"]],
    tests: ["test/cli-messages.test.ts"],
    only: "typo",
  },
  {
    name: "help-colour-in-pipe",
    breaks: "--help has no colour codes when stdout is not a terminal",
    file: "src/help.ts",
    edits: [['const color = tty && !env.NO_COLOR && env.TERM !== "dumb";', 'const color = !env.NO_COLOR && env.TERM !== "dumb";']],
    tests: ["src/help.test.ts", "test/cli-messages.test.ts"],
    only: "colour|pipe",
  },
  {
    name: "help-unwrapped",
    breaks: "--help lines fit in 100 columns (or the terminal)",
    file: "src/help.ts",
    edits: [["  const descWidth = Math.max(20, style.width - descCol);\n", "  const descWidth = 1000;\n"]],
    tests: ["test/cli-messages.test.ts"],
    only: "help",
  },
  {
    name: "toml-unterminated-string-raw",
    breaks: "a TOML string left open is called an unterminated string, not a control character",
    file: "src/config/load.ts",
    edits: [['  return at === undefined || at === "\\r" ? UNTERMINATED : what;\n', "  return what;\n"]],
    tests: ["src/config/load-errors.test.ts", "test/cli-messages.test.ts"],
    only: "unterminated",
  },
  {
    name: "admin-shared-dir-chmod-advice",
    breaks: "a shared admin socket directory (/tmp) gets a directory of its own advised, never chmod of it",
    file: "src/admin/socket.ts",
    edits: [["const shared = (st.mode & 0o1000) !== 0 || (uid !== undefined && st.uid !== uid);", "const shared = false;"]],
    tests: ["test/cli-messages.test.ts"],
    only: "shared directory",
  },
  {
    name: "admin-socket-raw-eacces",
    breaks: "a user who cannot write the admin socket's directory is told what failed and what to do",
    file: "src/admin/socket.ts",
    edits: [["    return await bindAdmin(path, app);\n  } catch (err) {\n    throw explainFsError(err, path);\n", "    return await bindAdmin(path, app);\n  } catch (err) {\n    throw err;\n"]],
    tests: ["test/cli-messages.test.ts"],
    only: "cannot write it|CAP_DAC_OVERRIDE",
  },
  {
    name: "ingress-404-reason-error",
    breaks: "nsproxy's own 404 says Not Found",
    file: "src/engine/rewrite.ts",
    edits: [['  404: "Not Found",\n', ""]],
    tests: ["src/engine/rewrite.test.ts", "test/ingress.test.ts"],
    only: "reason phrase|unknown Host is answered",
  },
  {
    name: "ingress-refusal-logs-nothing-asked",
    breaks: "a refused ingress request's access-log line names its method, path and Host",
    file: "src/engine/conn.ts",
    edits: [["      this.req = head;\n      this.reqStarted = performance.now();\n      return this.refuse(r.status, r.reason);\n", "      return this.refuse(r.status, r.reason);\n"]],
    tests: ["test/ingress.test.ts"],
    only: "unknown Host is answered",
  },
  {
    name: "lo-down-unwarned",
    breaks: "check and tenant ls warn when a listen address is on a down interface in its namespace",
    file: "src/netns/reachable.ts",
    edits: [["      if (warning) out.push(warning);\n", ""]],
    tests: ["test/cli-messages.test.ts"],
    only: "down interface",
  },
  {
    name: "upgrade-old-stops-before-ready",
    breaks: "the old generation drains only once its successor serves every tenant and holds the admin socket",
    file: "src/control/handover.ts",
    edits: [
      [
        "const outcome = await Promise.race([reported, exited, timedOut]);",
        "const outcome = await Promise.race([reported, exited, timedOut, new Promise<HandoverReport>((r) => setTimeout(() => r({ ready: true, pid: started.pid ?? 0, version: \"?\" }), 20))]);",
      ],
    ],
    tests: ["test/upgrade.test.ts"],
    only: "5 upgrades",
  },
  {
    name: "upgrade-no-migrate",
    breaks: "a successor's attach turns tcp_migrate_req on, so the old listeners' queued connections move to it",
    file: "src/worker/worker.ts",
    edits: [["listenInside(nsFd, homeFd, addr, listen, migrate || old !== undefined, alone)", "listenInside(nsFd, homeFd, addr, listen, old !== undefined, alone)"]],
    tests: ["test/upgrade.test.ts"],
    only: "5 upgrades",
  },
  {
    name: "upgrade-shares-with-anyone",
    breaks: "only the previous generation's listeners may be shared during an upgrade; a stranger is refused",
    file: "src/control/successor.ts",
    edits: [["holders.length > 0 && holders.every((h) => pred.has(h))", "holders.length > 0"]],
    tests: ["src/control/successor.test.ts"],
  },
  {
    name: "upgrade-write-not-refused",
    breaks: "a tenant write during an upgrade is refused (503) and retried, so the generation that stays applies it once",
    file: "src/control/admin-control.ts",
    edits: [['if (this.daemon.handover.busy) throw new ControlError("unavailable", "upgrade in progress, retry");', ""]],
    tests: ["test/upgrade.test.ts"],
    only: "cannot start",
  },
  {
    name: "upgrade-arch-unchecked",
    breaks: "an upgrade to an ELF for another machine is refused before it starts, naming both architectures",
    file: "src/control/executable.ts",
    edits: [["if (own && (kind.machine !== own.machine || kind.layout !== own.layout)) {", "if (false) {"]],
    tests: ["src/control/executable.test.ts", "test/upgrade-failures.test.ts"],
    only: "another machine|cannot run here",
  },
  {
    name: "upgrade-no-version-preflight",
    breaks: "what a new binary prints when it cannot start (the loader's error) is in the error `upgrade` prints",
    file: "src/control/handover.ts",
    edits: [["cannotRun(command[0]!) ?? (await doesNotStart(selfProgram(binary)))", "cannotRun(command[0]!)"]],
    tests: ["test/upgrade-failures.test.ts"],
    only: "cannot run here",
  },
  {
    name: "upgrade-flag-error-unreported",
    breaks: "a successor that rejects a flag the running daemon was started with reports its own error to the upgrade",
    file: "src/commands/run.ts",
    edits: [["    try {\n      rejectUnknownFlags(rawArgs, args);\n      return await serve(parsed, rawArgs, pred);", "    rejectUnknownFlags(rawArgs, args);\n    try {\n      return await serve(parsed, rawArgs, pred);"]],
    tests: ["test/upgrade-failures.test.ts"],
    only: "cannot run here",
  },
  {
    name: "upgrade-lost-tenant-ignored",
    breaks: "a tenant serving in the old daemon that fails in the successor (a certificate file broken since) fails the upgrade",
    file: "src/control/successor.ts",
    edits: [['if (t && t.state !== "serving") lost.push', 'if (false) lost.push']],
    tests: ["test/upgrade-failures.test.ts"],
    only: "certificate file broke",
  },
  {
    name: "upgrade-moved-admin-path-unchecked",
    breaks: "a successor whose config moved the admin socket refuses a live server at the new path, as a first start does",
    file: "src/admin/socket.ts",
    edits: [["    if (moved) await clearPath(path);\n", ""]],
    tests: ["src/admin/socket.test.ts", "test/upgrade-failures.test.ts"],
    only: "admin_socket changed",
  },
  {
    name: "upgrade-readyz-early",
    breaks: "a successor binds its metrics listener only once it serves every tenant, so /readyz never answers 503 during an upgrade",
    file: "src/commands/run.ts",
    edits: [
      ["  if (!pred) metrics = await serveMetrics(config, daemon, admin);", "  metrics = await serveMetrics(config, daemon, admin);"],
      ["before, () => serveMetrics(config, daemon, admin));", "before, () => Promise.resolve(metrics));"],
    ],
    tests: ["test/upgrade-failures.test.ts"],
    only: "readyz",
  },
  {
    name: "upgrade-metrics-shared-with-anyone",
    breaks: "a successor shares the metrics address only with its predecessor's listener; a stranger there fails the upgrade",
    file: "src/commands/run.ts",
    edits: [["if (probeAloneRaw(host, port) < 0 && !(pred && heldOnlyBy(pred.pid, host, port))) {", "if (probeAloneRaw(host, port) < 0 && !pred) {"]],
    tests: ["test/upgrade-failures.test.ts"],
    only: "readyz",
  },
  {
    name: "upgrade-waits-for-zombie",
    breaks: "nsproxy upgrade returns once the old daemon has exited, even before its parent (init) has reaped it",
    file: "src/commands/upgrade.ts",
    edits: [['return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(") ") + 2));', "return stat.length > 0;"]],
    tests: ["src/commands/upgrade.test.ts"],
  },
  {
    name: "reload-rejection-unlogged",
    breaks: "a rejected reload (nsproxy reload or SIGHUP) is logged by the daemon, not only told to the caller",
    file: "src/control/admin-control.ts",
    edits: [["      logger.error(`reload rejected, the running configuration stays: ${message}`);\n", ""]],
    tests: ["test/failure-logs.test.ts"],
    only: "rejected",
  },
  {
    name: "tcp-connect-failure-unlogged",
    breaks: "a TCP-mode upstream that refuses is logged (naming the tenant and the upstream), not only counted",
    file: "src/worker/worker.ts",
    edits: [["      if (c instanceof TcpConn && c.failure !== undefined) connectFailed(c);\n", ""]],
    tests: ["test/failure-logs.test.ts"],
    only: "TCP mode",
  },
  {
    name: "tcp-connect-failure-log-unlimited",
    breaks: "a TCP-mode upstream refusal is logged at most once per tenant per 10 s, however many connections fail",
    file: "src/worker/worker.ts",
    edits: [["owner.warn(`connect:${tenant}`,", "owner.warn(`connect:${tenant}:${Math.random()}`,"]],
    tests: ["test/failure-logs.test.ts"],
    only: "TCP mode",
  },
  {
    name: "handshake-failure-reason-dropped",
    breaks: "a failed client handshake says why when the TLS library knows (plain HTTP to an https:// listener)",
    file: "src/runtime/bun/net.ts",
    edits: [["onHandshakeFailed?.(handshakeFailure(error));", "onHandshakeFailed?.();"]],
    tests: ["src/runtime/bun/net.test.ts", "test/failure-logs.test.ts"],
    only: "does not speak TLS|plain HTTP",
  },
  {
    name: "read-buffers-not-collected",
    breaks: "a 1 GB upload stays within 24 MB of RSS: Bun's read buffers are collected every MiB read, not at the collector's own pace",
    file: "src/runtime/bun/read-garbage.ts",
    edits: [["  setImmediate(collect);\n", ""]],
    // The stream test alone catches it in about half the runs (+19 to +35 MB without, against its 24 MB bound).
    tests: ["src/runtime/bun/read-garbage.test.ts", "test/stream.test.ts"],
    only: "upload|MiB read",
  },
  {
    name: "handshake-kinds-share-limit",
    breaks: "a client refusing the certificate does not hide, for 10 s, the plain-HTTP client after it (--verbose)",
    file: "src/worker/worker.ts",
    edits: [['owner.debug(`tls:${tenant}:${notTls(why) ? "plain" : "tls"}`,', "owner.debug(`tls:${tenant}`,"]],
    tests: ["test/failure-logs.test.ts"],
    only: "plain HTTP",
  },
  {
    name: "capability-check-skipped",
    breaks: "without CAP_SYS_ADMIN run and check exit 2 naming it, instead of a daemon that can never attach a tenant",
    file: "src/netns/caps.ts",
    edits: [['  if (c === undefined || hasCap(c.effective, "SYS_ADMIN")) return undefined;\n', "  return undefined;\n"]],
    tests: ["test/capabilities.test.ts", "src/netns/caps.test.ts"],
  },
  {
    name: "bounding-set-kept",
    breaks: "a daemon that drops to its user also reduces the bounding set to the capabilities it keeps",
    file: "libnetns.c",
    edits: [["  if (flags & NSX_DROP_BOUNDING) {\n", "  if (flags & NSX_DROP_BOUNDING && 0) {\n"]],
    tests: ["test/least-privilege.test.ts"],
    only: "source",
  },
  {
    name: "capabilities-not-reduced",
    breaks: "a daemon started as a user with more capabilities than it needs keeps only those it needs",
    file: "src/privilege/drop.ts",
    edits: [["  const keep = switching ? wanted : wanted & own.permitted;\n", "  const keep = switching ? wanted : own.permitted;\n"]],
    tests: ["test/least-privilege.test.ts"],
    only: "setpriv",
  },
  {
    name: "lib-dir-not-passed-on",
    breaks: "the library --lib-dir wrote is the one the process after the start-up exec, and its workers, open",
    file: "src/runtime/window-safe.ts",
    edits: [["NSPROXY_NO_REEXEC: \"1\", ...(lib ? { NSPROXY_LIBNETNS: lib } : {}) };", "NSPROXY_NO_REEXEC: \"1\" };"]],
    tests: ["test/least-privilege.test.ts"],
    only: "noexec TMPDIR",
  },
  {
    name: "cni-del-gone-fails",
    breaks: "a CNI DEL of a tenant that is already gone succeeds (the spec requires DEL to be idempotent)",
    file: "src/cni/plugin.ts",
    edits: [["    await admin.deleteTenant(name, ownerOf(inv));\n", "    if (!(await admin.deleteTenant(name, ownerOf(inv)))) throw new CniError(CODE.notServing, `tenant ${name} is not there`);\n"]],
    tests: ["src/cni/plugin.test.ts", "test/cni.test.ts", "test/cni-podman.test.ts"],
  },
  {
    name: "cni-del-daemon-down-fails",
    breaks: "a CNI DEL succeeds with the daemon down (the rest of the chain runs: podman's stop releases the address)",
    file: "src/cni/plugin.ts",
    edits: [["    if (e instanceof DaemonNotRunning) return { stdout: \"\", exitCode: 0,", "    if (false && e instanceof DaemonNotRunning) return { stdout: \"\", exitCode: 0,"]],
    tests: ["src/cni/plugin.test.ts", "test/cni.test.ts", "test/cni-podman.test.ts"],
  },
  {
    name: "cni-add-fails-open",
    breaks: "a CNI ADD with the daemon down fails (podman run refuses the container) unless failOpen is set",
    file: "src/cni/protocol.ts",
    edits: [["adminSocket: DEFAULT_ADMIN_SOCKET, failOpen: false,", "adminSocket: DEFAULT_ADMIN_SOCKET, failOpen: true,"]],
    tests: ["src/cni/plugin.test.ts", "test/cni.test.ts", "test/cni-podman.test.ts"],
  },
  {
    name: "cni-long-name-refused",
    breaks: "a pod or container name over 64 characters is served under its cut name (prefix, '_', 16 hex of its sha256)",
    file: "src/cni/protocol.ts",
    edits: [["  const name = fitTenantName(full);\n", "  const name = full;\n"]],
    tests: ["src/cni/plugin.test.ts", "test/cni.test.ts", "test/cni-podman.test.ts"],
  },
  {
    name: "cni-long-names-collide",
    breaks: "two long pod names that share their first 47 characters are two tenants",
    file: "src/cni/protocol.ts",
    edits: [['createHash("sha256").update(name)', 'createHash("sha256").update(name.slice(0, NAME_MAX))']],
    tests: ["src/cni/plugin.test.ts"],
  },
  {
    name: "cni-long-name-hides-bad-char",
    breaks: "a long pod name with a character no tenant name holds is refused, not hidden in the hash",
    file: "src/cni/protocol.ts",
    edits: [["  if (name.length <= NAME_MAX || !NAME_CHARS.test(name)) return name;", "  if (name.length <= NAME_MAX) return name;"]],
    tests: ["src/cni/plugin.test.ts"],
  },
  {
    name: "cni-late-del-removes-new",
    breaks: "a late CNI DEL of a pod's old sandbox leaves the tenant its new sandbox added",
    file: "src/control/admin-control.ts",
    edits: [["    if (owner !== undefined && held && held.owner !== owner) {\n", "    if (false && owner !== undefined && held && held.owner !== owner) {\n"]],
    tests: ["test/cni.test.ts"],
    only: "new sandbox keeps the name",
  },
  {
    name: "cni-orphan-kept",
    breaks: "a CNI tenant whose DEL never came is dropped once its namespace is gone",
    file: "src/control/follower.ts",
    edits: [["const orphans = this.upgrading() ? [] : this.desired.dropOrphans();", "const orphans: string[] = [];"]],
    tests: ["test/cni.test.ts"],
    only: "missed DEL",
  },
  {
    name: "container-image-labels-honoured",
    breaks: "a container's tenant, headers and upstream are the operator's: labels that come from its image are ignored",
    file: "src/docker/labels.ts",
    edits: [["    if (Object.hasOwn(image, k) && image[k] === v) {\n", "    if (Object.hasOwn(image, k) && image[k] === v && false) {\n"]],
    tests: ["src/docker/labels.test.ts", "test/docker-provider.test.ts"],
    only: "image|identity",
  },
  {
    name: "container-stop-not-released",
    breaks: "a container that stops is released at once, not kept waiting on its stale sandbox file",
    file: "src/docker/watch.ts",
    edits: [
      ['const GONE = new Set(["die", "stop", "destroy"]);', "const GONE = new Set<string>([]);"],
      ["    if (!c.State?.Running || pid <= 0) return undefined;\n", "    if (pid < 0) return undefined;\n"],
    ],
    tests: ["src/docker/watch.test.ts", "test/docker-provider.test.ts"],
    only: "die/stop/destroy release|stop releases it",
  },
  {
    name: "container-listed-at-connect-dropped",
    breaks: "containers already running when nsproxy connects (at start, after an engine outage) are served",
    file: "src/docker/watch.ts",
    edits: [
      ["    const generation = () => this.generation.get(id) ?? 0;\n", "    const generation = () => this.generation.get(id);\n"],
      ["    const g = generation();\n", "    const g = this.generation.get(id) ?? 0;\n"],
    ],
    tests: ["src/docker/watch.test.ts"],
    only: "listed at connect",
  },
  {
    name: "container-inspect-failure-keeps-entry",
    breaks: "a container whose inspect 404s (gone between event and inspect) is released, not kept",
    file: "src/docker/watch.ts",
    edits: [["      entry = undefined;\n    }\n", "      return;\n    }\n"]],
    tests: ["src/docker/watch.test.ts"],
    only: "404",
  },
  {
    name: "container-stale-inspect-honoured",
    breaks: "an inspect answered after a die that came meanwhile cannot bring the container back",
    file: "src/docker/watch.ts",
    edits: [["    if (generation() !== g) return;\n    const before", "    const before"]],
    tests: ["src/docker/watch.test.ts"],
    only: "stale",
  },
  {
    name: "container-socket-loss-kept",
    breaks: "when the engine's socket is lost its containers are released (once), not kept on stale knowledge",
    file: "src/docker/watch.ts",
    edits: [["      if (this.containers.size) {\n", "      if (this.containers.size && false) {\n"]],
    tests: ["src/docker/watch.test.ts"],
    only: "socket goes",
  },
  {
    name: "container-reconnect-without-backoff",
    breaks: "a lost or refusing engine is asked again with backoff, not in a loop",
    file: "src/docker/watch.ts",
    edits: [["      delay = Math.min(delay * 2, BACKOFF_MAX_MS);\n", "      delay = 1;\n"]],
    tests: ["src/docker/watch.test.ts"],
    only: "backoff",
  },
  {
    name: "container-event-line-unbounded",
    breaks: "an events stream line over 1 MB ends the stream instead of growing without bound",
    file: "src/docker/engine-api.ts",
    edits: [["    if (pending.length > MAX_LINE_BYTES) x.close();\n", ""]],
    tests: ["src/docker/watch.test.ts"],
    only: "event line over the bound",
  },
  {
    name: "container-inspect-body-unbounded",
    breaks: "an Engine API answer over 64 MB is cut off as it arrives, not read to its end",
    file: "src/docker/engine-api.ts",
    edits: [["    if (size > MAX_BODY_BYTES) x?.close();\n    else parts.push(Buffer.from(b));\n", "    if (size <= MAX_BODY_BYTES) parts.push(Buffer.from(b));\n"]],
    tests: ["src/docker/watch.test.ts"],
    only: "answer over the bound",
  },
  {
    name: "container-rename-not-followed",
    breaks: "a renamed container's tenant follows the new name",
    file: "src/docker/watch.ts",
    edits: [["if (before && before.name === entry.name && before.netns", "if (before && before.netns"]],
    tests: ["src/docker/watch.test.ts"],
    only: "listed at connect",
  },
  {
    name: "container-malformed-event-ends-stream",
    breaks: "a malformed events line is skipped, not taken as the end of the stream",
    file: "src/docker/engine-api.ts",
    edits: [["      } catch {\n        // A line that is not JSON", "      } catch (e) {\n        throw e; // A line that is not JSON"]],
    tests: ["src/docker/watch.test.ts"],
    only: "malformed event line",
  },
  {
    name: "container-tenant-label-ignored",
    breaks: "a container's own nsproxy.tenant label names its tenant (validated like any tenant name)",
    file: "src/docker/labels.ts",
    edits: [["  const named = labels[TENANT_LABEL];\n", "  const named = undefined as string | undefined;\n"]],
    tests: ["src/docker/labels.test.ts", "src/docker/watch.test.ts", "test/docker-provider.test.ts"],
    only: "nsproxy.tenant|identity",
  },
  {
    name: "container-clash-by-event-order",
    breaks: "of two containers claiming one tenant name or ingress host, the older keeps it, whatever order their events came in",
    file: "src/docker/containers.ts",
    edits: [[".flatMap((w) => [...w.containers.values()]).sort(olderFirst);", ".flatMap((w) => [...w.containers.values()]);"]],
    tests: ["src/docker/watch.test.ts"],
    only: "claiming",
  },
  {
    name: "container-clash-among-containers-unchecked",
    breaks: "two containers may not hold one ingress host (or one address in one namespace): the clash rules apply between containers too",
    file: "src/docker/containers.ts",
    edits: [[": taken(spec, [...near]);", ": taken(spec, []);"]],
    tests: ["src/docker/watch.test.ts"],
    only: "claiming",
  },
  {
    name: "docker-socket-group-not-joined",
    breaks: "with --user, the daemon keeps access to a group-owned Docker socket by joining its group at the drop",
    file: "src/privilege/drop.ts",
    edits: [["  const groups = switching ? [...new Set([...target.groups, ...docker.groups.keys()])] : [];\n", "  const groups = switching ? target.groups : [];\n"]],
    tests: ["test/docker-least-privilege.test.ts"],
    only: "group joined",
  },
  {
    name: "docker-capabilities-not-planned",
    breaks: "with --user and --discover docker, CAP_DAC_READ_SEARCH (Docker) or CAP_SYS_PTRACE (Podman) is kept, with its reason",
    file: "src/privilege/drop.ts",
    edits: [["  for (const [cap, why] of docker.needs) if (!needs.has(cap)) needs.set(cap, why);\n", ""]],
    tests: ["test/docker-least-privilege.test.ts"],
    only: "group joined|SYS_PTRACE kept",
  },
  {
    name: "podman-ptrace-not-planned",
    breaks: "with --user and Podman's service, CAP_SYS_PTRACE is kept for /proc/PID/ns/net of its containers' root processes",
    file: "src/privilege/docker.ts",
    edits: [["    if (f.podman && !plan.needs.has(\"SYS_PTRACE\")) {\n", "    if (false) {\n"]],
    tests: ["test/docker-least-privilege.test.ts", "src/privilege/privilege.test.ts"],
    only: "SYS_PTRACE",
  },
  {
    name: "docker-socket-refusal-missing",
    breaks: "a Docker socket the user could never connect to stops the start with an error naming it and what to do",
    file: "src/privilege/drop.ts",
    edits: [["  if (docker.refusals.length) throw new ConfigError(docker.refusals.join(\"; \"));\n", ""]],
    tests: ["test/docker-least-privilege.test.ts", "src/privilege/privilege.test.ts"],
    only: "refused|refusal",
  },
  {
    name: "access-log-rounds-ties-up",
    breaks: "the byte-encoded access log writes the milliseconds as toFixed(1) did, ties in the binary value included",
    file: "src/proxy/access-log.ts",
    edits: [["    if (Math.abs(p - Math.floor(p) - 0.5) < 1e-6) t = Math.round(Number(ms.toFixed(1)) * 10);\n", ""]],
    tests: ["src/proxy/access-log.test.ts"],
  },
  {
    name: "access-log-json-unescaped",
    breaks: "a quote or backslash in a logged path or Host cannot end its JSON string early",
    file: "src/proxy/access-log.ts",
    edits: [["      if (c >= 0x20 && c < 0x80 && c !== 0x22 && c !== 0x5c) b[this.len++] = c;", "      if (c >= 0x20 && c < 0x80) b[this.len++] = c;"]],
    tests: ["src/proxy/access-log.test.ts"],
  },
  {
    name: "changed-response-head-forwarded-as-received",
    breaks: "a response head goes as received only when nothing in it must change: the proxy's Connection: close is never lost",
    file: "src/engine/rewrite.ts",
    edits: [['  if (connection !== "" || length >= 0) return false;', "  if (length >= 0) return false;"]],
    tests: ["src/engine/conn.test.ts", "src/engine/rewrite.test.ts"],
  },
  {
    name: "proxy-star-forwarded",
    breaks: "Proxy-* fields, classified in place, are hop-by-hop and never forwarded",
    file: "src/engine/fields.ts",
    edits: [['  if (n > 6 && equalsLower(s, p, p + 6, "proxy-")) return Kind.HopByHop;\n', ""]],
    tests: ["src/engine/conn.test.ts", "src/engine/rewrite.test.ts"],
  },
  {
    name: "request-head-buffer-not-reset",
    breaks: "an upstream request head written into the connection's reused buffer carries no byte of the head before it",
    file: "src/engine/bytes.ts",
    edits: [["    if (fresh || this.buf.length > this.keepMax) this.buf = new Uint8Array(this.size);\n    this.at = 0;\n", "    if (fresh || this.buf.length > this.keepMax) this.buf = new Uint8Array(this.size);\n"]],
    tests: ["src/engine/upstream-request.test.ts"],
  },
  {
    name: "request-head-large-buffer-kept",
    breaks: "a connection keeps at most 4 kB for its upstream request heads: a larger head's buffer is let go after it",
    file: "src/engine/bytes.ts",
    edits: [["    if (fresh || this.buf.length > this.keepMax) this.buf", "    if (fresh) this.buf"]],
    tests: ["src/engine/upstream-request.test.ts"],
  },
  {
    name: "request-head-buffer-not-reused",
    breaks: "a connection writes its upstream request heads into one buffer (no allocation per head) where the runtime allows",
    file: "src/engine/conn.ts",
    edits: [["    w.begin(!this.env.writeCopies || !this.c2u.empty);", "    w.begin(true);"]],
    tests: ["src/engine/upstream-request.test.ts"],
  },
  {
    name: "request-head-buffer-reused-under-deno",
    breaks: "a runtime that keeps the buffers given to write() (Deno) never has one written over: a new head buffer per request",
    file: "src/engine/conn.ts",
    edits: [["    w.begin(!this.env.writeCopies || !this.c2u.empty);", "    w.begin(!this.c2u.empty);"]],
    tests: ["src/engine/upstream-request.test.ts"],
  },
  {
    name: "request-head-buffer-reused-while-queued",
    breaks: "a request head the upstream has not taken whole is never written over by the next one",
    file: "src/engine/conn.ts",
    edits: [["    w.begin(!this.env.writeCopies || !this.c2u.empty);", "    w.begin(!this.env.writeCopies);"]],
    tests: ["src/engine/upstream-request.test.ts"],
  },
  {
    name: "non-idempotent-request-replayed",
    breaks: "a request that may have reached a stale upstream connection is sent again only when idempotent (RFC 9112 §9.3.1)",
    file: "src/engine/conn.ts",
    edits: [["(IDEMPOTENT.has(this.req.method) || this.c2u.sent === this.reqSentBefore)", "true"]],
    tests: ["src/engine/upstream-request.test.ts", "test/haproxy-reference.test.ts"],
    only: "stale upstream|never sent again|kept-alive upstream",
  },
  {
    name: "unsent-request-not-retried",
    breaks: "a request none of whose bytes reached a stale upstream connection is sent on a fresh one, whatever its method",
    file: "src/engine/conn.ts",
    edits: [["(IDEMPOTENT.has(this.req.method) || this.c2u.sent === this.reqSentBefore)", "IDEMPOTENT.has(this.req.method)"]],
    tests: ["src/engine/upstream-request.test.ts"],
  },
  {
    name: "transfer-coding-besides-chunked-accepted",
    breaks: "a request with a transfer coding besides chunked is refused (501), and no HTTP/1.0 client gets one",
    file: "src/engine/fields.ts",
    edits: [["      if (!lastChunked) bits |= TE_OTHER;", "      if (!lastChunked) bits |= 0;"]],
    tests: ["src/engine/conn.test.ts", "test/differential.test.ts"],
  },
  {
    name: "split-response-head-sent-from-its-last-read",
    breaks: "a response head that arrived in several reads goes whole: only a head read in one piece is sent as that read's bytes",
    file: "src/engine/conn.ts",
    edits: [["    this.headAsReceived = buf === chunk && unchangedResponseHead(head, connection);", "    this.headAsReceived = unchangedResponseHead(head, connection);"]],
    tests: ["src/engine/conn.test.ts"],
  },
  {
    name: "split-response-body-offset-wrong",
    breaks: "after a response head that arrived in several reads, the body starts where the head ended in the last read",
    file: "src/engine/conn.ts",
    edits: [["    const rest = held === undefined ? end : end - held.length;", "    const rest = end;"]],
    tests: ["src/engine/conn.test.ts"],
  },
  {
    name: "reused-response-head-keeps-drop-length",
    breaks: "a connection's response head is parsed into the same object each time: nothing of the previous head (a 204's dropped Content-Length) stays",
    file: "src/engine/response-head.ts",
    edits: [["  h.dropLength = dropLength;\n", ""]],
    tests: ["src/engine/conn.test.ts"],
  },
  {
    name: "reused-length-framing-not-set",
    breaks: "a response's Content-Length framing object is reused head after head: each response is framed by its own length",
    file: "src/engine/response-head.ts",
    edits: [["  into.lengthFraming.contentLength = cl;\n", ""]],
    tests: ["src/engine/conn.test.ts"],
  },
  {
    name: "head-as-received-kept-from-last-response",
    breaks: "a response whose head was rebuilt (an HTTP/1.0 client's) never also gets the received head, whatever the previous response on the connection was",
    file: "src/engine/conn.ts",
    edits: [["sent here.\n    this.headAsReceived = false;\n", "sent here.\n"]],
    tests: ["src/engine/conn.test.ts"],
  },
  {
    name: "partial-read-sent-whole",
    breaks: "response bytes go to the client as the read itself only when they are all of it",
    file: "src/engine/conn.ts",
    edits: [["    if (a < b) this.sendClient(a === 0 && b === buf.length ? buf : buf.subarray(a, b));", "    if (a < b) this.sendClient(a === 0 ? buf : buf.subarray(a, b));"]],
    tests: ["src/engine/conn.test.ts"],
  },
  {
    name: "profile-jit-names-at-vma",
    breaks: "the profile names JIT'd code at its code address (a JIT dump record's code_addr, not its vma)",
    file: "bench/lib/perf.ts",
    edits: [["b.readBigUInt64LE(at + 32)", "b.readBigUInt64LE(at + 24)"]],
    tests: ["bench/lib/perf.test.ts"],
  },
  {
    name: "bench-figure-linear-x",
    breaks: "the bench figures put N on a log scale (1, 10, 100, 1000 evenly spaced)",
    file: "bench/lib/svg.ts",
    edits: [["((Math.log10(x) - lo) / (hi - lo))", "((x - 10 ** lo) / (10 ** hi - 10 ** lo))"]],
    tests: ["bench/lib/svg.test.ts"],
  },
  {
    name: "bench-ratio-any-log",
    breaks: "the bench compares nsproxy with HAProxy at the same access-log setting (log on with log on)",
    file: "bench/lib/report.ts",
    edits: [[' && x.kind === "HAProxy" && x.pair === r.pair)', ' && x.kind === "HAProxy")']],
    tests: ["bench/lib/report.test.ts"],
  },
  {
    name: "follower-pass-per-event",
    breaks: "a burst of file-system events (thousands of ip netns add) shares passes instead of one directory read each",
    file: "src/control/follower.ts",
    edits: [["this.watchers.push(watch(dir, () => this.soon()));", "this.watchers.push(watch(dir, () => void this.tick()));"]],
    tests: ["src/control/follower.test.ts"],
  },
  {
    name: "bench-haproxy-one-process-past-limit",
    breaks: "past half the descriptor limit (2 fds per tenant) the bench splits HAProxy over processes, as nsproxy places each tenant in one worker",
    file: "bench/lib/haproxy.ts",
    edits: [["if (namespaces.length <= perProcess) return", "if (namespaces.length <= perProcess * 2) return"]],
    tests: ["bench/lib/haproxy.test.ts"],
  },
  {
    name: "bench-haproxy-split-keeps-threads",
    breaks: "a split HAProxy runs one thread per process, so each tenant is served by one thread as in nsproxy",
    file: "bench/lib/haproxy.ts",
    edits: [["return { groups, nbthread: 1 };", "return { groups, nbthread: threads };"]],
    tests: ["bench/lib/haproxy.test.ts"],
  },
  {
    name: "bench-haproxy-default-idle-pool",
    breaks: "the HAProxy reference keeps idle upstream connections with thousands of listeners (its default ratios dial per request)",
    file: "bench/lib/haproxy.ts",
    edits: [["  tune.pool-low-fd-ratio 80\n", ""]],
    tests: ["bench/lib/haproxy.test.ts"],
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
  // Searchable by other users: test/least-privilege.test.ts runs the copy as nobody.
  chmodSync(dir, 0o755);
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
  if (process.argv.includes("--list")) {
    for (const m of MUTATIONS) console.log(`${m.name.padEnd(40)} ${m.file}: ${m.breaks}`);
    console.log(`${MUTATIONS.length} mutations`);
    return 0;
  }
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
