// Unit tests for loadConfig and summarize on valid input: merging, defaults and precedence (errors: load-errors.test.ts).
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_ENGINE, DEFAULT_METRICS_TENANT_LIMIT, type FlagOverrides, loadConfig, summarize } from "./load.ts";

const load = (source: string, flags?: FlagOverrides) => loadConfig({ file: "file.toml", source, flags });

const ACME = `[tenants.acme]
netns = "acme"
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:9000"
`;

describe("loadConfig: valid files", () => {
  test("a full file", () => {
    const cfg = load(`[daemon]
workers = 3
shutdown_grace = "2s"
log_format = "json"
access_log = false

[defaults]
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:9000"
tenant_header = "X-Tenant"
upstream_timeout = 5
max_connections = 50
headers = { "X-Env" = "prod", "X-Keep" = "1" }

[tenants.zeta]
netns = "/proc/42/ns/net"

[tenants.acme]
netns = "acme"
listen = ["127.0.0.1:8080", "[::1]:8080"]
upstream = "unix:/run/app.sock:/v1"
headers = { "x-env" = "dev" }
max_connections = 7
`);
    expect(cfg).toMatchObject({ workers: 3, shutdownGraceMs: 2000, logFormat: "json", accessLog: false, file: "file.toml" });
    expect(cfg.tenants.map((t) => t.name)).toEqual(["acme", "zeta"]);
    const [acme, zeta] = cfg.tenants;
    expect(acme).toEqual({
      source: "config",
      name: "acme",
      netns: "/run/netns/acme",
      listen: [
        { host: "127.0.0.1", port: 8080, text: "127.0.0.1:8080" },
        { host: "::1", port: 8080, text: "[::1]:8080" },
      ],
      upstream: { origin: "http://localhost", prefix: "/v1", unix: "/run/app.sock", text: "unix:/run/app.sock:/v1" },
      tenantHeader: "X-Tenant",
      // The tenant's x-env replaces [defaults]' X-Env: names compare case-insensitively.
      headers: { "x-env": "dev", "X-Keep": "1" },
      upstreamTimeoutMs: 5000,
      maxConnections: 7,
      ingressMaxConnections: 1000,
    });
    expect(zeta).toMatchObject({ netns: "/proc/42/ns/net", upstream: { origin: "http://127.0.0.1:9000" }, headers: { "X-Env": "prod", "X-Keep": "1" }, maxConnections: 50 });
  });

  test("built-in defaults", () => {
    const cfg = load(ACME);
    expect(cfg.shutdownGraceMs).toBe(10_000);
    expect(cfg.logFormat).toBe("text");
    expect(cfg.accessLog).toBe(true);
    expect(cfg.workers).toBeGreaterThanOrEqual(1);
    expect(cfg.tenants[0]).toMatchObject({ tenantHeader: "X-Nsproxy-Tenant", upstreamTimeoutMs: 30_000, maxConnections: 1000, headers: {} });
    expect(cfg.engine).toEqual(DEFAULT_ENGINE);
    expect(DEFAULT_ENGINE).toEqual({
      requestTimeoutMs: 10_000,
      idleTimeoutMs: 60_000,
      connectTimeoutMs: 5_000,
      bodyTimeoutMs: 60_000,
      maxHeaderBytes: 16_384,
      maxHeaders: 100,
      maxTargetBytes: 8192,
    });
    // No metrics listener unless one is asked for.
    expect(cfg.metrics).toEqual({ tenantLimit: 1000 });
    expect("listen" in cfg.metrics).toBe(false);
    expect(DEFAULT_METRICS_TENANT_LIMIT).toBe(1000);
  });

  test("metrics settings from [daemon]", () => {
    expect(load('[daemon]\nmetrics_listen = "127.0.0.1:9464"\nmetrics_tenant_limit = 50\n').metrics).toEqual({
      listen: { host: "127.0.0.1", port: 9464, text: "127.0.0.1:9464" },
      tenantLimit: 50,
    });
    expect(load('[daemon]\nmetrics_listen = "[::1]:9464"\n').metrics).toEqual({ listen: { host: "::1", port: 9464, text: "[::1]:9464" }, tenantLimit: 1000 });
    // 0 always aggregates; the top of the range is accepted.
    expect(load("[daemon]\nmetrics_tenant_limit = 0\n").metrics).toEqual({ tenantLimit: 0 });
    expect(load("[daemon]\nmetrics_tenant_limit = 1000000\n").metrics.tenantLimit).toBe(1_000_000);
  });

  test("engine settings from [daemon]", () => {
    const cfg = load(`[daemon]
request_timeout = "2s"
idle_timeout = 30
connect_timeout = "250ms"
body_timeout = "2m"
max_header_size = 32768
max_headers = 50
max_url_length = 32768
`);
    expect(cfg.engine).toEqual({
      requestTimeoutMs: 2000,
      idleTimeoutMs: 30_000,
      connectTimeoutMs: 250,
      bodyTimeoutMs: 120_000,
      maxHeaderBytes: 32_768,
      maxHeaders: 50,
      maxTargetBytes: 32_768,
    });
  });

  test("an unset max_url_length follows a smaller max_header_size down", () => {
    expect(load("[daemon]\nmax_header_size = 4096\n").engine).toMatchObject({ maxHeaderBytes: 4096, maxTargetBytes: 4096 });
    expect(load("[daemon]\nmax_header_size = 1024\nmax_url_length = 64\n").engine).toMatchObject({ maxHeaderBytes: 1024, maxTargetBytes: 64 });
  });

  test("zero tenants is not an error here", () => {
    expect(load("").tenants).toEqual([]);
    expect(loadConfig({}).tenants).toEqual([]);
    expect(loadConfig({}).file).toBeUndefined();
  });

  test("reads the file from disk", () => {
    const dir = mkdtempSync(join(tmpdir(), "nsproxy-config-"));
    const file = join(dir, "nsproxy.toml");
    writeFileSync(file, ACME);
    try {
      const cfg = loadConfig({ file });
      expect(cfg.file).toBe(file);
      expect(cfg.tenants[0]?.name).toBe("acme");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("loadConfig: precedence", () => {
  const file = `[daemon]
workers = 2
log_format = "json"

[defaults]
listen = "127.0.0.1:1000"
upstream = "http://127.0.0.1:1"
upstream_timeout = "1s"

[tenants.own]
netns = "own"
upstream = "http://127.0.0.1:3"

[tenants.inherit]
netns = "inherit"
listen = "127.0.0.1:3000"
`;

  test("built-in < [defaults] < flags < [tenants.NAME]", () => {
    const cfg = load(file, { upstream: "http://127.0.0.1:2", upstreamTimeout: "2s", workers: "4", netns: ["flagged"] });
    const by = Object.fromEntries(cfg.tenants.map((t) => [t.name, t]));
    // The tenant table wins over the flag.
    expect(by.own?.upstream?.origin).toBe("http://127.0.0.1:3");
    expect(by.own?.listen[0]?.text).toBe("127.0.0.1:1000");
    // The flag wins over [defaults].
    expect(by.inherit?.upstream?.origin).toBe("http://127.0.0.1:2");
    expect(by.inherit?.listen[0]?.text).toBe("127.0.0.1:3000");
    expect(by.inherit?.upstreamTimeoutMs).toBe(2000);
    // --netns tenants take the merged defaults.
    expect(by.flagged).toMatchObject({ netns: "/run/netns/flagged", upstream: { origin: "http://127.0.0.1:2" }, listen: [{ port: 1000 }] });
    // Flags also win over [daemon]; unset flags leave the file's value.
    expect(cfg.workers).toBe(4);
    expect(cfg.logFormat).toBe("json");
  });

  test("max_connections: built-in < [defaults] < --max-connections < [tenants.NAME]", () => {
    const src = `[defaults]\nlisten = "127.0.0.1:1"\nupstream = "http://127.0.0.1:1"\nmax_connections = 10\n\n[tenants.own]\nnetns = "own"\nmax_connections = 30\n\n[tenants.inherit]\nnetns = "inherit"\nlisten = "127.0.0.1:2"\n`;
    const conns = (cfg: ReturnType<typeof load>) => Object.fromEntries(cfg.tenants.map((t) => [t.name, t.maxConnections]));
    expect(conns(load(src))).toEqual({ inherit: 10, own: 30 });
    expect(conns(load(src, { maxConnections: "20", netns: ["flagged"] }))).toEqual({ flagged: 20, inherit: 20, own: 30 });
    expect(loadConfig({ flags: { listen: ["127.0.0.1:1"], upstream: "http://x:1", netns: ["a"], maxConnections: "5" } }).tenants[0]?.maxConnections).toBe(5);
  });

  test("engine flags win over [daemon]; unset ones leave the file's value", () => {
    const src = `[daemon]\nrequest_timeout = "2s"\nidle_timeout = "3s"\nmax_header_size = 8192\nmax_headers = 20\nmax_url_length = 1024\n`;
    const cfg = load(src, { requestTimeout: "1.5", connectTimeout: "100ms", bodyTimeout: "5m", maxHeaderSize: "65536", maxUrlLength: "4096" });
    expect(cfg.engine).toEqual({
      requestTimeoutMs: 1500,
      idleTimeoutMs: 3000,
      connectTimeoutMs: 100,
      bodyTimeoutMs: 300_000,
      maxHeaderBytes: 65_536,
      maxHeaders: 20,
      maxTargetBytes: 4096,
    });
    expect(load(src, { maxHeaders: "10000" }).engine.maxHeaders).toBe(10_000);
  });

  test("metrics flags win over [daemon]; unset ones leave the file's value", () => {
    const src = '[daemon]\nmetrics_listen = "127.0.0.1:9464"\nmetrics_tenant_limit = 20\n';
    expect(load(src, { metricsListen: "[::1]:9100" }).metrics).toEqual({ listen: { host: "::1", port: 9100, text: "[::1]:9100" }, tenantLimit: 20 });
    expect(load(src, { metricsTenantLimit: "0" }).metrics).toEqual({ listen: { host: "127.0.0.1", port: 9464, text: "127.0.0.1:9464" }, tenantLimit: 0 });
    expect(loadConfig({ flags: { metricsListen: "0.0.0.0:9464", metricsTenantLimit: "5" } }).metrics).toEqual({
      listen: { host: "0.0.0.0", port: 9464, text: "0.0.0.0:9464" },
      tenantLimit: 5,
    });
  });

  test("[defaults] alone, and flags alone", () => {
    expect(load(file).tenants.find((t) => t.name === "inherit")?.upstream?.origin).toBe("http://127.0.0.1:1");
    const cfg = loadConfig({ flags: { listen: ["127.0.0.1:1", "[::1]:1"], upstream: "http://127.0.0.1:2", netns: ["a", "b=/run/netns/x"], accessLog: false, shutdownGrace: "0.5" } });
    expect(cfg.tenants.map((t) => [t.name, t.netns, t.listen.length])).toEqual([
      ["a", "/run/netns/a", 2],
      ["b", "/run/netns/x", 2],
    ]);
    expect(cfg.accessLog).toBe(false);
    expect(cfg.shutdownGraceMs).toBe(500);
  });
});

describe("summarize", () => {
  test("a header line with counts, then one aligned line per tenant", () => {
    const cfg = load(`${ACME}\n[tenants.b]\nnetns = "/proc/7/ns/net"\nupstream = "unix:/run/b.sock"\nlisten = ["127.0.0.1:1", "[::1]:1"]\n[daemon]\nworkers = 2\n`);
    expect(summarize(cfg)).toEqual([
      "2 tenants, 3 listeners, 2 workers, log text, access log on (from file.toml)",
      "acme  /run/netns/acme  127.0.0.1:8080 -> http://127.0.0.1:9000",
      "b     /proc/7/ns/net   127.0.0.1:1, [::1]:1 -> unix:/run/b.sock",
    ]);
  });
});

describe("TLS, TCP mode and PROXY v2 settings resolve per tenant", () => {
  const base = `[tenants.acme]\nnetns = "acme"\n`;
  test("{tenant} in tls_cert/tls_key is the tenant's name; only tenants with https:// listeners get a pair", () => {
    const c = loadConfig({
      source: `[defaults]\nlisten = ["https://169.254.169.254", "127.0.0.1:8080"]\nupstream = "http://127.0.0.1:9000"\ntls_cert = "/etc/certs/{tenant}.crt"\ntls_key = "/etc/certs/{tenant}.key"\n${base}[tenants.plain]\nnetns = "plain"\nlisten = "127.0.0.1:8080"\n`,
    });
    const acme = c.tenants.find((t) => t.name === "acme")!;
    expect(acme.tls).toEqual({ cert: "/etc/certs/acme.crt", key: "/etc/certs/acme.key" });
    expect(acme.listen[0]).toMatchObject({ port: 443, tls: true });
    expect(c.tenants.find((t) => t.name === "plain")!.tls).toBeUndefined();
  });
  test("an https:// listener without tls_cert, or a cert without a key, is refused naming the key", () => {
    expect(() => loadConfig({ source: `${base}listen = "https://127.0.0.1:443"\nupstream = "http://127.0.0.1:9000"\n`, file: undefined })).toThrow(
      /tenant 'acme' listens on https:\/\/127.0.0.1:443 but has no tls_cert/,
    );
    expect(() => loadConfig({ source: `${base}listen = "https://127.0.0.1:443"\nupstream = "http://127.0.0.1:9000"\ntls_cert = "/a.crt"\n` })).toThrow(/has no tls_key/);
  });
  test("mode and upstream scheme must agree", () => {
    const tcp = loadConfig({ source: `${base}listen = "127.0.0.1:5432"\nupstream = "tcp://127.0.0.1:5432"\nmode = "tcp"\nupstream_proxy_protocol = "v2"\n` }).tenants[0]!;
    expect(tcp.mode).toBe("tcp");
    expect(tcp.proxyProtocol).toBe("v2");
    expect(() => loadConfig({ source: `${base}listen = "127.0.0.1:5432"\nupstream = "http://127.0.0.1:5432"\nmode = "tcp"\n` })).toThrow(/mode = "tcp" but upstream http:\/\/127.0.0.1:5432 is http:\/\//);
    expect(() => loadConfig({ source: `${base}listen = "127.0.0.1:5432"\nupstream = "tcp://127.0.0.1:5432"\n` })).toThrow(/is tcp:\/\/, which needs mode = "tcp"/);
    expect(() => loadConfig({ source: `${base}listen = "127.0.0.1:5432"\nupstream = "unix:/run/pg.sock:/x"\nmode = "tcp"\n` })).toThrow(/cannot have a path prefix/);
  });
  test("upstream_ca and upstream_insecure apply to https:// upstreams; flags set them too", () => {
    const c = loadConfig({ source: `${base}listen = "127.0.0.1:8080"\nupstream = "https://api.internal"\nupstream_ca = "/etc/ca.pem"\nupstream_insecure = true\n` });
    expect(c.tenants[0]).toMatchObject({ upstreamCa: "/etc/ca.pem", upstreamInsecure: true });
    const f = loadConfig({ source: base, flags: { listen: ["https://127.0.0.1:443"], upstream: "tcp://127.0.0.1:6379", mode: "tcp", tlsCert: "/c/{tenant}.pem", tlsKey: "/k/{tenant}.pem" } });
    expect(f.tenants[0]).toMatchObject({ mode: "tcp", tls: { cert: "/c/acme.pem", key: "/k/acme.pem" } });
    expect(() => loadConfig({ source: base, flags: { listen: ["127.0.0.1:1"], upstream: "http://127.0.0.1:2", upstreamProxyProtocol: "v1" } })).toThrow(/--upstream-proxy-protocol.*version 1 is not offered/);
  });
});

describe("ingress settings", () => {
  test("an ingress-only tenant needs no listen/upstream; {tenant} in ingress_hosts; ingress_listen kinds", () => {
    const c = loadConfig({
      source:
        `[daemon]\ningress_listen = ["127.0.0.1:80", "http://[::1]:8080", "sni://0.0.0.0:443"]\n` +
        `[defaults]\ningress_hosts = ["{tenant}.example.com"]\ningress_backend = "127.0.0.1:3000"\n` +
        `[tenants.acme]\nnetns = "acme"\n[tenants.web]\nnetns = "web"\ningress_hosts = ["Web.Example.com", "*.web.example.com"]\nlisten = "127.0.0.1:8080"\nupstream = "http://127.0.0.1:9000"\n`,
    });
    expect(c.ingressListen.map((l) => [l.kind, l.host, l.port])).toEqual([["http", "127.0.0.1", 80], ["http", "::1", 8080], ["sni", "0.0.0.0", 443]]);
    const acme = c.tenants.find((t) => t.name === "acme")!;
    expect(acme).toMatchObject({ listen: [], upstream: undefined, ingress: { hosts: ["acme.example.com"], backend: { host: "127.0.0.1", port: 3000 } } });
    expect(c.tenants.find((t) => t.name === "web")!.ingress?.hosts).toEqual(["web.example.com", "*.web.example.com"]);
  });
  test("refusals: a host claimed twice, hosts without a backend, an https:// ingress listener, a backend with a scheme", () => {
    const two = `[tenants.a]\nnetns = "a"\ningress_hosts = ["x.example"]\ningress_backend = "127.0.0.1:1"\n[tenants.b]\nnetns = "b"\ningress_hosts = ["X.example"]\ningress_backend = "127.0.0.1:1"\n`;
    expect(() => loadConfig({ source: two })).toThrow(/ingress host x.example is claimed by tenants 'a' and 'b'/);
    expect(() => loadConfig({ source: `[tenants.a]\nnetns = "a"\ningress_hosts = ["x.example"]\n` })).toThrow(/has ingress_hosts but no ingress_backend/);
    expect(() => loadConfig({ source: `[daemon]\ningress_listen = "https://0.0.0.0:443"\n` })).toThrow(/ingress does not terminate TLS; use "sni:\/\/ADDR"/);
    expect(() => loadConfig({ source: `[tenants.a]\nnetns = "a"\ningress_hosts = ["x.example"]\ningress_backend = "http://127.0.0.1:3000"\n` })).toThrow(/without a scheme/);
    expect(() => loadConfig({ source: `[tenants.a]\nnetns = "a"\ningress_hosts = ["*.*.x"]\ningress_backend = "127.0.0.1:1"\n` })).toThrow(/only one leading/);
  });
});
