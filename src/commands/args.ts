// Arguments shared by several commands, and the strictness citty leaves to us: repeated flags and unknown flags.
import { ConfigError } from "../errors.ts";
import { resolve } from "node:path";
import { DEFAULT_ADMIN_SOCKET, DEFAULT_TENANTS_DIR } from "../admin/types.ts";
import { type FlagOverrides, loadLayered } from "../config/load.ts";

export const configArgs = {
  config: { type: "string", alias: "c", description: "TOML config file ([daemon], [defaults], [tenants.NAME])", valueHint: "FILE" },
  listen: { type: "string", alias: "l", description: "Address to listen on inside every tenant namespace: host:port, [v6]:port, or https://ADDR for TLS (repeatable)", valueHint: "ADDR" },
  upstream: { type: "string", alias: "u", description: "Upstream: http://host:port[/prefix], https://…, unix:/path.sock[:/prefix], or tcp://host:port (--mode tcp)", valueHint: "URL" },
  mode: { type: "string", description: "http (default) or tcp: forward bytes both ways with no HTTP", valueHint: "MODE" },
  netns: { type: "string", alias: "n", description: "Tenant namespace: NAME (/run/netns/NAME), a path, /proc/PID/ns/net, or TENANT=REF (repeatable)", valueHint: "REF" },
  "tenant-header": { type: "string", description: "Header that carries the tenant name upstream (default X-Nsproxy-Tenant)", valueHint: "NAME" },
  "upstream-timeout": { type: "string", description: "Time allowed for the upstream's response headers before a 504 (default 30s)", valueHint: "DURATION" },
  "max-connections": { type: "string", description: "Open connections per tenant across all workers; more are refused (default 1000)", valueHint: "N" },
  "tls-cert": { type: "string", description: "Certificate (PEM, chain allowed) for https:// listeners; {tenant} is the tenant's name", valueHint: "FILE" },
  "tls-key": { type: "string", description: "Private key (PEM) for https:// listeners; {tenant} is the tenant's name", valueHint: "FILE" },
  "upstream-proxy-protocol": { type: "string", description: "v2: start every upstream connection with a PROXY v2 header (client address, tenant TLV)", valueHint: "v2" },
  "upstream-ca": { type: "string", description: "Extra CA certificates (PEM) an https:// upstream may chain to", valueHint: "FILE" },
  "upstream-insecure": { type: "boolean", description: "Do not verify an https:// upstream's certificate (logged at start)" },
  "ingress-host": { type: "string", description: "Ingress: a host name (or *.domain) routed to this tenant's ingress backend (repeatable)", valueHint: "HOST" },
  "ingress-backend": { type: "string", description: "Ingress: the tenant's HTTP service inside its namespace, like 127.0.0.1:3000", valueHint: "ADDR" },
  "ingress-tls-backend": { type: "string", description: "Ingress: the tenant's TLS service inside its namespace (for sni:// listeners)", valueHint: "ADDR" },
} as const;

/** Where the daemon keeps runtime tenants and answers admin requests; shared with the tenant/status/reload commands. */
export const adminArgs = {
  "admin-socket": { type: "string", description: "Admin interface unix socket (default /run/nsproxy/admin.sock)", valueHint: "PATH" },
  "tenants-dir": { type: "string", description: "Directory of runtime-provisioned tenants, one NAME.toml each (default /etc/nsproxy/tenants.d)", valueHint: "DIR" },
} as const;

/** For the commands that talk to a daemon: where it is, possibly read from its config file. */
export const clientArgs = {
  config: { type: "string", alias: "c", description: "Config file whose [daemon] admin_socket and tenants_dir to use (flags win)", valueHint: "FILE" },
  ...adminArgs,
} as const;

export const runtimeArgs = {
  discover: { type: "string", description: "Serve every namespace file in DIR matching GLOB (default *) as a tenant named after it (repeatable)", valueHint: "DIR[=GLOB]" },
  workers: { type: "string", alias: "w", description: "Worker threads holding the listeners (default: one per core)", valueHint: "N" },
  "shutdown-grace": { type: "string", description: "On SIGTERM/SIGINT, how long in-flight requests may finish (default 10s)", valueHint: "DURATION" },
  "log-format": { type: "string", description: "Log and access-log format: text or json (default text)", valueHint: "FORMAT" },
  "access-log": { type: "boolean", description: "Log one line per request (default on; --no-access-log turns it off)" },
  "request-timeout": { type: "string", description: "Time a client has to send a complete request head before a 408 (default 10s)", valueHint: "DURATION" },
  "idle-timeout": { type: "string", description: "Close a keep-alive connection idle this long between requests (default 60s)", valueHint: "DURATION" },
  "connect-timeout": { type: "string", description: "Time allowed to connect to the upstream before a 502 (default 5s)", valueHint: "DURATION" },
  "body-timeout": { type: "string", description: "Cut a request or response body, or a tunnel, that moves no byte for this long (default 60s)", valueHint: "DURATION" },
  "max-header-size": { type: "string", description: "Largest request head (request line and header fields) in bytes, else 431 (default 16384)", valueHint: "BYTES" },
  "max-headers": { type: "string", description: "Most header fields in a request, else 431 (default 100)", valueHint: "N" },
  "max-url-length": { type: "string", description: "Longest request target in bytes, else 414 (default 8192; at most --max-header-size)", valueHint: "BYTES" },
  "metrics-listen": { type: "string", description: "Serve /metrics, /healthz and /readyz on this host address, host:port or [v6]:port (default off)", valueHint: "ADDR" },
  "ingress-listen": { type: "string", description: "Ingress listener on the host: ADDR or http://ADDR (routed by Host), sni://ADDR (TLS routed by server name) (repeatable)", valueHint: "ADDR" },
  "metrics-tenant-limit": { type: "string", description: "Per-tenant metric series up to this many tenants, then aggregated; 0 always aggregates (default 1000)", valueHint: "N" },
  verbose: { type: "boolean", alias: "v", description: "Debug logging, and stack traces on errors" },
} as const;

const REPEATABLE = new Set(["listen", "netns", "discover", "header", "ingress-listen", "ingress-host"]);


/** Every value of a repeatable flag (`--listen a --listen b`, `--listen=a`, `-l a`); citty keeps only the last. */
export function collect(rawArgs: string[], name: string, alias?: string): string[] {
  const out: string[] = [];
  const long = `--${name}`;
  const short = alias ? `-${alias}` : undefined;
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === "--") break;
    if (a === long || a === short) {
      const v = rawArgs[i + 1];
      if (v === undefined || v.startsWith("-")) throw new ConfigError(`needs a value`, long);
      out.push(v);
      i++;
    } else if (a.startsWith(`${long}=`)) out.push(a.slice(long.length + 1));
  }
  return out;
}

/** citty ignores flags it does not know; a typo'd flag must never be silent. Throws a usage error. */
export function rejectUnknownFlags(rawArgs: string[], defs: Record<string, { type: string; alias?: string }>): void {
  const known = new Map<string, string>();
  for (const [name, def] of Object.entries(defs)) {
    known.set(`--${name}`, def.type);
    if (def.type === "boolean") known.set(`--no-${name}`, "boolean");
    if (def.alias) known.set(`-${def.alias}`, def.type);
  }
  const seen = new Set<string>();
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === "--") break;
    if (!a.startsWith("-")) {
      const hint = a.endsWith(".toml") ? `; did you mean --config ${a}?` : "";
      throw new ConfigError(`unexpected argument '${a}'${hint} (see --help)`);
    }
    const flag = a.includes("=") ? a.slice(0, a.indexOf("=")) : a;
    const type = known.get(flag);
    if (!type) throw new ConfigError(`unknown option (see --help)`, flag);
    const canonical = canonicalName(flag, defs);
    if (!REPEATABLE.has(canonical) && seen.has(canonical)) throw new ConfigError(`given more than once; only --listen, --netns, --discover, --header, --ingress-listen and --ingress-host repeat`, flag);
    seen.add(canonical);
    if (type === "string" && !a.includes("=")) {
      const name = flag.replace(/^-+/, "");
      if (!REPEATABLE.has(name) && (rawArgs[i + 1] === undefined || rawArgs[i + 1]!.startsWith("-"))) {
        throw new ConfigError(`needs a value`, flag);
      }
      i++;
    }
  }
}

/** The command line's share of the configuration; undefined where a flag was not given, so the file can speak. */
export function flagOverrides(args: Record<string, unknown>, rawArgs: string[]): FlagOverrides {
  const listen = collect(rawArgs, "listen", "l");
  const netns = collect(rawArgs, "netns", "n");
  const discover = collect(rawArgs, "discover");
  const ingressListen = collect(rawArgs, "ingress-listen");
  const ingressHost = collect(rawArgs, "ingress-host");
  const str = (k: string) => (typeof args[k] === "string" ? (args[k] as string) : undefined);
  const accessLog = rawArgs.includes("--no-access-log") ? false : rawArgs.includes("--access-log") ? true : undefined;
  return {
    listen: listen.length ? listen : undefined,
    netns: netns.length ? netns : undefined,
    upstream: str("upstream"),
    tenantHeader: str("tenant-header"),
    upstreamTimeout: str("upstream-timeout"),
    maxConnections: str("max-connections"),
    workers: str("workers"),
    shutdownGrace: str("shutdown-grace"),
    logFormat: str("log-format"),
    accessLog,
    discover: discover.length ? discover : undefined,
    tenantsDir: str("tenants-dir"),
    adminSocket: str("admin-socket"),
    requestTimeout: str("request-timeout"),
    idleTimeout: str("idle-timeout"),
    connectTimeout: str("connect-timeout"),
    bodyTimeout: str("body-timeout"),
    maxHeaderSize: str("max-header-size"),
    maxHeaders: str("max-headers"),
    maxUrlLength: str("max-url-length"),
    metricsListen: str("metrics-listen"),
    metricsTenantLimit: str("metrics-tenant-limit"),
    mode: str("mode"),
    tlsCert: str("tls-cert"),
    tlsKey: str("tls-key"),
    upstreamProxyProtocol: str("upstream-proxy-protocol"),
    upstreamCa: str("upstream-ca"),
    upstreamInsecure: rawArgs.includes("--no-upstream-insecure") ? false : rawArgs.includes("--upstream-insecure") ? true : undefined,
    ingressListen: ingressListen.length ? ingressListen : undefined,
    ingressHost: ingressHost.length ? ingressHost : undefined,
    ingressBackend: str("ingress-backend"),
    ingressTlsBackend: str("ingress-tls-backend"),
  };
}

function canonicalName(flag: string, defs: Record<string, { alias?: string }>): string {
  const bare = flag.replace(/^-+/, "").replace(/^no-/, "");
  for (const [name, def] of Object.entries(defs)) if (name === bare || def.alias === bare) return name;
  return bare;
}

/**
 * The admin socket and tenants directory a command talks to: its flags, else the config file's
 * [daemon] table (when --config is given), else the defaults. Relative paths become absolute.
 */
export function daemonPaths(args: Record<string, unknown>): { socket: string; tenantsDir: string } {
  const str = (k: string) => (typeof args[k] === "string" ? (args[k] as string) : undefined);
  let socket = str("admin-socket");
  let tenantsDir = str("tenants-dir");
  const file = str("config");
  if (file && (!socket || !tenantsDir)) {
    const { config } = loadLayered({ file });
    socket ??= config.adminSocket;
    tenantsDir ??= config.tenantsDir;
  }
  return { socket: resolve(socket ?? DEFAULT_ADMIN_SOCKET), tenantsDir: resolve(tenantsDir ?? DEFAULT_TENANTS_DIR) };
}
