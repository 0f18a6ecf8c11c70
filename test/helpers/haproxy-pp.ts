// HAProxy 2.6 (Debian's /usr/sbin/haproxy) on host loopback as a third-party PROXY v2 implementation, both ways:
//  - startHaproxyPP(): a receiver. `bind … accept-proxy` in mode http, answering every request itself with what it
//    parsed from the header (addresses, ports, and the TLVs 2.6 has fetches for).
//  - startHaproxySender(): a sender. Frontends that relay to a capture port with `send-proxy-v2`, to compare the
//    headers HAProxy writes with ours.
// Every HAProxy started here is killed in stop(), after the test file (afterAll) and on process exit, whatever happens.
//
// What HAProxy 2.6 can show of a received header (configuration.txt of 2.6.12): src, src_port, dst, dst_port (the
// header's addresses), fc_rcvd_proxy, fc_pp_authority (TLV 0x02) and fc_pp_unique_id (TLV 0x05). It has no
// fc_pp_tlv(<type>) (added in 2.9) and no fetch for PP2_TYPE_SSL or PP2_TYPE_NETNS. It does walk every TLV and
// closes the connection when one runs past the header (connection.c, conn_recv_proxy), and it keeps a NETNS TLV whose
// name is in its `namespace_list` (an existing /var/run/netns/NAME) and writes it again in the header it sends to a
// `send-proxy-v2` server: the relay frontend of startHaproxySender() is how a test sees HAProxy's reading of NETNS.
import type { Subprocess } from "bun";
import { afterAll } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { freePorts } from "./ports.ts";

export const HAPROXY = "/usr/sbin/haproxy";
export const haveHaproxy = existsSync(HAPROXY);

/** What startHaproxyPP answers to every request: one line of `key=value`, a fetch with no value shows `-`. */
export const PP_FIELDS = {
  src: "src",
  sport: "src_port",
  dst: "dst",
  dport: "dst_port",
  /** The real TCP peer (this test process on loopback), not the header's. */
  fc_src: "fc_src",
  fc_sport: "fc_src_port",
  rcvd_proxy: "fc_rcvd_proxy",
  authority: "fc_pp_authority",
  unique_id: "fc_pp_unique_id",
} as const;

export interface HaproxyInstance {
  /** The IPv4 listener (127.0.0.1). */
  port: number;
  /** The same on [::1], when the host has IPv6 loopback. */
  port6?: number;
  /** HAProxy's stderr so far. */
  stderr(): string;
  /** Kill HAProxy (SIGTERM, then SIGKILL after 2 s) and remove its directory; safe to call twice. */
  stop(): Promise<void>;
}

/** Running HAProxies and their directories, for the last-resort cleanup. */
const live = new Map<Subprocess, string>();
const killAll = () => {
  for (const [p, dir] of live) {
    p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
  live.clear();
};
afterAll(killAll);
process.on("exit", killAll);

/** Whether ::1 can be bound here. */
export async function haveIpv6Loopback(): Promise<boolean> {
  try {
    const l = Bun.listen({ hostname: "::1", port: 0, socket: { data() {} } });
    l.stop(true);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once host:port accepts a connection; false after timeoutMs. */
async function accepts(host: string, port: number, timeoutMs: number, proc: Subprocess): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end && proc.exitCode === null) {
    const ok = await new Promise<boolean>((resolve) => {
      Bun.connect({
        hostname: host,
        port,
        socket: {
          open(s) {
            s.end();
            resolve(true);
          },
          data() {},
          connectError() {
            resolve(false);
          },
          error() {
            resolve(false);
          },
        },
      }).catch(() => resolve(false));
    });
    if (ok) return true;
    await Bun.sleep(50);
  }
  return false;
}

/**
 * Start HAProxy on `config(ports)` (ports[i] free on binds[i].host): checked with `haproxy -c` first, run in the
 * foreground (-db: the spawned pid is the one to kill), up once every bind accepts. A port taken meanwhile is
 * retried with new ports, 5 times at most.
 */
export async function startHaproxy(binds: { host: string }[], config: (ports: number[]) => string): Promise<HaproxyInstance & { ports: number[] }> {
  if (!haveHaproxy) throw new Error(`${HAPROXY} is not installed (apt-get install -y haproxy)`);
  const dir = mkdtempSync(`${tmpdir()}/nsproxy-haproxy-pp-`);
  let lastErr = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    const ports = freePorts(binds.map((b) => b.host));
    const cfg = `${dir}/haproxy.cfg`;
    writeFileSync(cfg, config(ports));
    const check = Bun.spawnSync([HAPROXY, "-c", "-q", "-f", cfg], { stdout: "pipe", stderr: "pipe" });
    if (check.exitCode !== 0) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`haproxy -c: ${check.stderr.toString()}${check.stdout.toString()}`);
    }
    const proc = Bun.spawn([HAPROXY, "-db", "-f", cfg], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    live.set(proc, dir);
    let err = "";
    void (async () => {
      const dec = new TextDecoder();
      for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) err += dec.decode(chunk, { stream: true });
    })();
    let stopped = false;
    const stop = async () => {
      if (!stopped) {
        stopped = true;
        proc.kill("SIGTERM");
        const t = setTimeout(() => proc.kill("SIGKILL"), 2000);
        await proc.exited;
        clearTimeout(t);
        live.delete(proc);
        rmSync(dir, { recursive: true, force: true });
      }
    };
    let up = true;
    for (let i = 0; i < binds.length && up; i++) up = await accepts(binds[i]!.host, ports[i]!, 5000, proc);
    if (up) return { port: ports[0]!, ports, stderr: () => err, stop };
    proc.kill("SIGKILL");
    await proc.exited;
    live.delete(proc);
    await Bun.sleep(20); // let the stderr pump finish
    lastErr = err;
    if (!/cannot bind|Address already in use/i.test(err)) break;
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`haproxy did not start: ${lastErr}`);
}

const DEFAULTS = `global
    maxconn 1000

defaults
    timeout connect 5s
    timeout client 10s
    timeout server 10s
`;

/**
 * HAProxy as the upstream: `bind 127.0.0.1:PORT accept-proxy` (and [::1] when available) in mode http, answering
 * every request with 200 and one text line, `src=… sport=… dst=… dport=… fc_src=… fc_sport=… rcvd_proxy=…
 * authority=… unique_id=…` (see PP_FIELDS). A header HAProxy finds malformed closes the connection with no answer.
 */
export async function startHaproxyPP(opts: { ipv6?: boolean } = {}): Promise<HaproxyInstance> {
  const v6 = opts.ipv6 ?? (await haveIpv6Loopback());
  const line = Object.entries(PP_FIELDS)
    .map(([k, f]) => `${k}=%[${f}]`)
    .join(" ");
  const binds = v6 ? [{ host: "127.0.0.1" }, { host: "::1" }] : [{ host: "127.0.0.1" }];
  const h = await startHaproxy(
    binds,
    (p) => `${DEFAULTS}
frontend pp
    mode http
    bind 127.0.0.1:${p[0]} accept-proxy
${v6 ? `    bind [::1]:${p[1]} accept-proxy\n` : ""}    http-request return status 200 content-type text/plain lf-string "${line}\\n"
`,
  );
  return { port: h.port, port6: v6 ? h.ports[1] : undefined, stderr: h.stderr, stop: h.stop };
}

/** Parse startHaproxyPP's answer line into its fields. */
export function parsePPLine(body: string): Record<keyof typeof PP_FIELDS, string> {
  const out: Record<string, string> = {};
  for (const kv of body.trim().split(" ")) {
    const eq = kv.indexOf("=");
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out as Record<keyof typeof PP_FIELDS, string>;
}

export interface HaproxySender {
  /** mode tcp, plain: `server … send-proxy-v2` to the capture port. */
  plain: number;
  /** The same on [::1], when the host has IPv6 loopback. */
  plain6?: number;
  /** mode tcp, `bind … ssl crt PEM`: `server … send-proxy-v2 proxy-v2-options ssl` to the capture port. */
  tls?: number;
  /** mode tcp, `bind … accept-proxy`: relays the received header's addresses and (known) NETNS with send-proxy-v2. */
  relay: number;
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * HAProxy as a PROXY v2 sender towards 127.0.0.1:capturePort. `pem` (certificate + key) adds the TLS frontend;
 * `namespaces` are declared in `namespace_list` (they must exist in /var/run/netns) so that the relay frontend
 * keeps a NETNS TLV naming one of them and sends it on.
 */
export async function startHaproxySender(opts: { capturePort: number; pem?: string; namespaces?: string[]; ipv6?: boolean }): Promise<HaproxySender> {
  const v6 = opts.ipv6 ?? (await haveIpv6Loopback());
  const binds = [{ host: "127.0.0.1" }, { host: "127.0.0.1" }, ...(opts.pem ? [{ host: "127.0.0.1" }] : []), ...(v6 ? [{ host: "::1" }] : [])];
  const iTls = opts.pem ? 2 : -1;
  const i6 = v6 ? binds.length - 1 : -1;
  const ns = opts.namespaces ?? [];
  const h = await startHaproxy(
    binds,
    (p) => `${DEFAULTS}
${ns.length ? `namespace_list\n${ns.map((n) => `    namespace ${n}\n`).join("")}` : ""}
frontend plain
    mode tcp
    bind 127.0.0.1:${p[0]}
${v6 ? `    bind [::1]:${p[i6]}\n` : ""}    default_backend capture

frontend relay
    mode tcp
    bind 127.0.0.1:${p[1]} accept-proxy
    default_backend capture
${
  opts.pem
    ? `
frontend tls
    mode tcp
    bind 127.0.0.1:${p[iTls]} ssl crt ${opts.pem}
    default_backend capture_ssl

backend capture_ssl
    mode tcp
    server s 127.0.0.1:${opts.capturePort} send-proxy-v2 proxy-v2-options ssl
`
    : ""
}
backend capture
    mode tcp
    server s 127.0.0.1:${opts.capturePort} send-proxy-v2
`,
  );
  return {
    plain: h.ports[0]!,
    relay: h.ports[1]!,
    tls: opts.pem ? h.ports[iTls] : undefined,
    plain6: v6 ? h.ports[i6] : undefined,
    stderr: h.stderr,
    stop: h.stop,
  };
}
