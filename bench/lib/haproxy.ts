// HAProxy configs: the shared static upstream, and the comparison proxy doing nsproxy's work in every namespace.
import type { Subprocess } from "bun";
import { writeFileSync } from "node:fs";
import { freePort, spawn, TMP } from "./setup.ts";

/** HTTP mode, keep-alive, generous timeouts: every HTTP config of the benches starts from these. */
export const HTTP_DEFAULTS = `defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s
  option http-keep-alive
`;

/**
 * One thread, answers from memory: neutral for both proxies. `/` gets "ok\n" (the load); `/echo` returns the
 * tenant header, how many copies arrived and X-Forwarded-For, so the correctness check can see what each proxy sent.
 */
export function upstreamConfig(port: number): string {
  return `global
  nbthread 1
${HTTP_DEFAULTS}
frontend upstream
  bind 127.0.0.1:${port}
  http-request return status 200 content-type text/plain lf-string "tenant=%[req.hdr(x-nsproxy-tenant)] copies=%[req.hdr_cnt(x-nsproxy-tenant)] xff=%[req.hdr(x-forwarded-for)]\\n" if { path /echo }
  http-request return status 200 content-type text/plain string "ok\\n"
`;
}

/**
 * Two threads (nsproxy runs one worker per core, two here) unless `threads` says otherwise, one frontend per namespace.
 * Besides the tenant header and `option forwardfor`, it drops client copies of X-Forwarded-* and Forwarded and sets
 * Proto and Host, as nsproxy does.
 * `logSocket`: `option httplog`, one line per request sent to that unix datagram socket as to Debian's `/dev/log`.
 */
export function proxyConfig(namespaces: string[], port: number, upstreamPort: number, logSocket?: string, threads = 2, global: string[] = []): string {
  const frontends = namespaces.map(
    (ns) => `frontend t-${ns}
  bind 127.0.0.1:${port} namespace ${ns}
  http-request del-header forwarded
  http-request del-header x-forwarded-for
  http-request set-header x-forwarded-proto http
  http-request set-header x-forwarded-host %[req.hdr(host)]
  http-request set-header x-nsproxy-tenant ${ns}
  option forwardfor
  default_backend upstream
`,
  );
  return withUpstream(frontends, upstreamPort, logSocket, threads, global);
}

/** How HAProxy holds a list of tenants: the tenants of each process, and each process's `nbthread`. */
export interface HaproxyLayout {
  groups: string[][];
  nbthread: number;
}

/**
 * HAProxy 2.6 keeps two descriptors per tenant for its whole life: the listener and the namespace it opened once
 * (src/namespace.c keeps /var/run/netns/NAME open to create sockets there). One process of `threads` threads serves
 * while those 2N fit in half of `fdLimit` (the other half for connections), the rule by which nsproxy still listens in
 * every worker. Past it, nsproxy puts each tenant in one of its workers; HAProxy gets the same shape: the tenants split
 * in order over processes of one thread each (each process has its own limit), so each tenant is served by one thread
 * in both proxies.
 */
export function haproxyLayout(namespaces: string[], fdLimit: number, threads = 2): HaproxyLayout {
  const perProcess = Math.max(1, Math.floor(fdLimit / 4));
  if (namespaces.length <= perProcess) return { groups: [namespaces], nbthread: threads };
  const size = Math.ceil(namespaces.length / Math.ceil(namespaces.length / perProcess));
  const groups: string[][] = [];
  for (let i = 0; i < namespaces.length; i += size) groups.push(namespaces.slice(i, i + size));
  return { groups, nbthread: 1 };
}

/** The access log as Debian's haproxy.cfg has it (`log /dev/log local0`, `log global`), in HTTP format. */
const httpLog = (socket: string) => ({ global: `  log ${socket} local0\n`, defaults: "  log global\n  option httplog\n" });

/**
 * Two threads (as nsproxy's two workers) unless told, extra `global` lines, the frontends, and the one backend they all share. The idle
 * pool's descriptor ratios are raised from 20/25% of the limit: HAProxy counts its listeners and namespace fds as used,
 * so past ~2,000 frontends under a 20,000 limit it stopped keeping idle upstream connections and dialed the upstream
 * for every request (a connect and a close per request at 5,000 frontends, twice the CPU); no effect below that.
 */
function withUpstream(frontends: string[], upstreamPort: number, logSocket?: string, threads = 2, global: string[] = []): string {
  const log = logSocket ? httpLog(logSocket) : { global: "", defaults: "" };
  return `global
  nbthread ${threads}
  tune.pool-low-fd-ratio 80
  tune.pool-high-fd-ratio 90
${global.map((l) => `  ${l}\n`).join("")}${log.global}${HTTP_DEFAULTS}${log.defaults}
${frontends.join("\n")}
backend upstream
  http-reuse always
  server up 127.0.0.1:${upstreamPort}
`;
}

/** Write a config to `path` and check it, so a bad one fails here with haproxy's message rather than at spawn. */
export function writeConfig(path: string, text: string): string {
  writeFileSync(path, text);
  const r = Bun.spawnSync(["haproxy", "-c", "-q", "-f", path], { stderr: "pipe", stdout: "pipe" });
  if (r.exitCode !== 0) throw new Error(`haproxy -c ${path}: ${r.stderr.toString().trim()}${r.stdout.toString().trim()}`);
  return path;
}

/** `-db`: foreground, no master/worker fork, so the spawned PID is the one whose RSS counts. */
export function haproxyArgv(configPath: string): string[] {
  return ["haproxy", "-db", "-f", configPath];
}

/** The upstream of upstreamConfig on a free port of the host's loopback, once it answers. */
export async function startUpstream(): Promise<{ port: number; proc: Subprocess }> {
  const port = freePort();
  const proc = spawn(haproxyArgv(writeConfig(`${TMP}/upstream.cfg`, upstreamConfig(port))), 60 * 60_000);
  for (let i = 0; i < 100; i++) {
    if (await fetch(`http://127.0.0.1:${port}/`).then((r) => r.status === 200, () => false)) return { port, proc };
    if (proc.exitCode !== null) break;
    await Bun.sleep(50);
  }
  throw new Error(`the upstream haproxy did not answer on ${port}: ${await new Response(proc.stderr).text()}`);
}

/** A tenant's frontend for the TLS bench: a plain bind, an `ssl crt` bind, or both, in its namespace. */
export interface HttpsFrontend {
  tenant: string;
  ns: string;
  port?: number;
  tls?: { port: number; crt: string };
}

/**
 * proxyConfig's frontends (the same header work) with `bind … ssl crt FILE alpn http/1.1 namespace NS` where a
 * tenant has a TLS port; X-Forwarded-Proto says which bind the request came in on. HAProxy's TLS defaults otherwise
 * (session cache and tickets on, as shipped).
 */
export function httpsProxyConfig(frontends: HttpsFrontend[], upstreamPort: number): string {
  const blocks = frontends.map((f) => {
    const binds = [
      ...(f.port ? [`  bind 127.0.0.1:${f.port} namespace ${f.ns}`] : []),
      ...(f.tls ? [`  bind 127.0.0.1:${f.tls.port} ssl crt ${f.tls.crt} alpn http/1.1 namespace ${f.ns}`] : []),
    ];
    return `frontend t-${f.tenant}
${binds.join("\n")}
  http-request del-header forwarded
  http-request del-header x-forwarded-for
  http-request set-header x-forwarded-proto https if { ssl_fc }
  http-request set-header x-forwarded-proto http if !{ ssl_fc }
  http-request set-header x-forwarded-host %[req.hdr(host)]
  http-request set-header x-nsproxy-tenant ${f.tenant}
  option forwardfor
  default_backend upstream
`;
  });
  return withUpstream(blocks, upstreamPort);
}

/** `mode tcp`: one frontend per namespace, each to its own host port; two threads, no splicing unless asked (HAProxy's default). */
export function tcpProxyConfig(frontends: { tenant: string; ns: string; port: number; upstreamPort: number }[], opts: { splice?: boolean } = {}): string {
  const blocks = frontends.map(
    (f) => `frontend t-${f.tenant}
  bind 127.0.0.1:${f.port} namespace ${f.ns}
  default_backend b-${f.tenant}

backend b-${f.tenant}
  server s 127.0.0.1:${f.upstreamPort}
`,
  );
  return `global
  nbthread 2
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
${opts.splice ? "  option splice-auto\n" : ""}
${blocks.join("\n")}`;
}
