// Unit tests for loadConfig's errors: each kind, pointing at file:line and key, or at the flag.
import { describe, expect, test } from "bun:test";
import { ConfigError } from "../errors.ts";
import { type FlagOverrides, loadConfig } from "./load.ts";

const load = (source: string, flags?: FlagOverrides) => loadConfig({ file: "file.toml", source, flags });

/** The ConfigError a load throws, so tests can assert on where, key and message separately. */
function fail(source: string | undefined, flags?: FlagOverrides): ConfigError {
  try {
    loadConfig({ ...(source !== undefined ? { file: "file.toml", source } : {}), flags });
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected loadConfig to throw");
}

const ACME = `[tenants.acme]
netns = "acme"
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:9000"
`;

describe("loadConfig: errors point at file:line and key", () => {
  test("TOML syntax error uses smol-toml's line", () => {
    const e = fail(`${ACME}\nbad = = 1\n`);
    expect(e.where).toBe("file.toml:6");
    expect(e.message).toStartWith("file.toml:6: invalid TOML:");
    expect(e.exitCode).toBe(2);
  });

  test("a string left open is 'unterminated string' at its line, not smol-toml's control character", () => {
    const open = fail('[tenants.acme]\nnetns = "acme\nlisten = "127.0.0.1:8080"\n');
    expect(open.message).toStartWith(`file.toml:2: invalid TOML: unterminated string: a quoted value must end on the line it starts (""" or \'\'\' for several lines)`);
    expect(fail("[tenants.acme]\r\nnetns = 'acme\r\n").message).toStartWith("file.toml:2: invalid TOML: unterminated string:");
    expect(fail('[tenants.acme]\nnetns = "acme').message).toStartWith("file.toml:2: invalid TOML: unterminated string:");
    expect(fail('a = """abc\n').message).toStartWith('file.toml:1: invalid TOML: unterminated string: no closing """ before the end of the file');
    // A real control character inside a closed string keeps smol-toml's word for it.
    expect(fail('a = "ab\u0001c"\n').message).toStartWith("file.toml:1: invalid TOML: control characters are not allowed in strings");
  });

  test("unknown key on line 7 with a suggestion", () => {
    const e = fail(`[defaults]
listen = "127.0.0.1:8080"

[tenants.acme]
netns = "acme"
# upstream below is misspelt
upstrem = "http://127.0.0.1:9000"
`);
    expect(e.message).toContain("file.toml:7");
    expect(e.message).toContain("tenants.acme.upstrem");
    expect(e.message).toContain("unknown key 'upstrem' in [tenants.acme]; did you mean 'upstream'?");
    expect(e.key).toBe("tenants.acme.upstrem");
  });

  test("unknown keys elsewhere", () => {
    expect(fail("[tenant.acme]\nnetns = 'a'\n").message).toBe("file.toml:1: tenant: unknown key 'tenant' at the top level; did you mean 'tenants'?");
    expect(fail("[defaults]\nworkers = 2\n").message).toContain("file.toml:2: defaults.workers: unknown key 'workers' in [defaults]; it belongs in [daemon]");
    expect(fail("[daemon]\naccess-log = true\n").message).toContain("did you mean 'access_log'?");
    expect(fail("[defaults]\nnetns = 'x'\n").message).toContain("netns is set per tenant");
    const typo = fail(`${ACME}max_conections = 10\n`);
    expect(typo.message).toBe("file.toml:5: tenants.acme.max_conections: unknown key 'max_conections' in [tenants.acme]; did you mean 'max_connections'?");
    expect(fail("[daemon]\nmax_connections = 10\n").message).toContain("daemon.max_connections: unknown key 'max_connections' in [daemon]; it belongs in [defaults] or [tenants.NAME]");
    expect(fail("[defaults]\nmax_header_size = 4096\n").message).toContain("defaults.max_header_size: unknown key 'max_header_size' in [defaults]; it belongs in [daemon]");
    expect(fail("[daemon]\nrequest_timout = '1s'\n").message).toContain("did you mean 'request_timeout'?");
    expect(fail('[daemon]\nworkers = 2\nmetrics_lisen = "127.0.0.1:9464"\n').message).toBe(
      "file.toml:3: daemon.metrics_lisen: unknown key 'metrics_lisen' in [daemon]; did you mean 'metrics_listen'?",
    );
    expect(fail("[defaults]\nmetrics_tenant_limit = 10\n").message).toContain("defaults.metrics_tenant_limit: unknown key 'metrics_tenant_limit' in [defaults]; it belongs in [daemon]");
  });

  test("bad max_connections", () => {
    expect(fail(`${ACME}max_connections = 0\n`).message).toBe("file.toml:5: tenants.acme.max_connections: max_connections 0 is not an integer from 1 to 1000000, like 1000");
    expect(fail("[defaults]\n\nmax_connections = 1000001\n").message).toStartWith("file.toml:3: defaults.max_connections: max_connections 1000001 is not an integer");
    expect(fail("[defaults]\nmax_connections = 1.5\n").key).toBe("defaults.max_connections");
    expect(fail("[defaults]\nmax_connections = '10'\n").message).toContain('max_connections must be an integer, not string "10"');
  });

  test("bad engine settings", () => {
    expect(fail('[daemon]\nrequest_timeout = "0s"\n').message).toBe('file.toml:2: daemon.request_timeout: request_timeout must be longer than 0, like "10s"');
    expect(fail("[daemon]\n\nidle_timeout = 0\n").message).toBe('file.toml:3: daemon.idle_timeout: idle_timeout must be longer than 0, like "60s"');
    expect(fail('[daemon]\nconnect_timeout = "soon"\n').message).toContain('file.toml:2: daemon.connect_timeout: duration "soon"');
    expect(fail("[daemon]\nbody_timeout = -1\n").key).toBe("daemon.body_timeout");
    expect(fail("[daemon]\nmax_header_size = 512\n").message).toBe("file.toml:2: daemon.max_header_size: max_header_size 512 is not an integer from 1024 to 1048576, like 16384");
    expect(fail("[daemon]\nmax_headers = 7\n").message).toContain("daemon.max_headers: max_headers 7 is not an integer from 8 to 10000");
    expect(fail("[daemon]\nmax_headers = '100'\n").message).toContain('max_headers must be an integer, not string "100"');
    expect(fail("[daemon]\nmax_url_length = 63\n").message).toContain("daemon.max_url_length: max_url_length 63 is not an integer from 64 to");
  });

  test("bad metrics settings", () => {
    expect(fail('[daemon]\n\nmetrics_listen = "nope"\n').message).toBe(
      'file.toml:3: daemon.metrics_listen: listen address "nope" is not HOST:PORT; write it like "127.0.0.1:8080" or "[::1]:8080"',
    );
    expect(fail('[daemon]\nmetrics_listen = "localhost:9464"\n').message).toContain('file.toml:2: daemon.metrics_listen: listen address "localhost:9464": host "localhost" is not an IPv4 literal');
    expect(fail('[daemon]\nmetrics_listen = "::1:9464"\n').message).toContain("put IPv6 addresses in brackets");
    expect(fail('[daemon]\nmetrics_listen = "127.0.0.1:0"\n').key).toBe("daemon.metrics_listen");
    expect(fail("[daemon]\nmetrics_listen = 9464\n").message).toBe('file.toml:2: daemon.metrics_listen: metrics_listen must be a string, like "127.0.0.1:9464", not integer 9464');
    expect(fail("[daemon]\nmetrics_tenant_limit = -1\n").message).toBe(
      "file.toml:2: daemon.metrics_tenant_limit: metrics_tenant_limit -1 is not an integer from 0 to 1000000, like 1000",
    );
    expect(fail("[daemon]\nmetrics_tenant_limit = 1000001\n").key).toBe("daemon.metrics_tenant_limit");
    expect(fail("[daemon]\nmetrics_tenant_limit = 2.5\n").key).toBe("daemon.metrics_tenant_limit");
    expect(fail("[daemon]\nmetrics_tenant_limit = '10'\n").message).toContain('metrics_tenant_limit must be an integer, not string "10"');
  });

  test("max_url_length larger than max_header_size", () => {
    const e = fail("[daemon]\nmax_url_length = 8192\nmax_header_size = 4096\n");
    expect(e.message).toBe(
      "file.toml:2: daemon.max_url_length: max_url_length 8192 is larger than max_header_size 4096: the request target is part of the request head; lower max_url_length or raise max_header_size",
    );
    expect(fail("[daemon]\nmax_url_length = 20000\n").message).toContain("max_url_length 20000 is larger than the default max_header_size 16384");
    expect(fail("[daemon]\nmax_url_length = 8192\n", { maxHeaderSize: "2048" }).message).toContain("file.toml:2: daemon.max_url_length: max_url_length 8192 is larger than --max-header-size 2048");
    expect(fail(undefined, { maxUrlLength: "20000", maxHeaderSize: "16384" }).message).toStartWith("--max-url-length: --max-url-length 20000 is larger than --max-header-size 16384");
  });

  test("wrong types", () => {
    expect(fail(`${ACME}workers = 1\n`).key).toBe("tenants.acme.workers");
    const e = fail("[daemon]\n\nworkers = \"2\"\n");
    expect(e.message).toBe('file.toml:3: daemon.workers: workers must be an integer, not string "2"');
    expect(fail("[daemon]\naccess_log = 'yes'\n").message).toContain("access_log must be true or false");
    expect(fail("[defaults]\nlisten = 8080\n").message).toContain("file.toml:2: defaults.listen: listen must be a string or a non-empty array of strings");
    expect(fail("[defaults]\nlisten = []\n").key).toBe("defaults.listen");
    expect(fail("[[tenants]]\nnetns = 'a'\n").message).toContain("file.toml:1: tenants: tenants must be a table of tenants");
    expect(fail("[tenants]\nupstream = 'http://x:1'\n").message).toContain("would be a tenant");
    expect(fail("[daemon]\nworkers = 0\n").message).toContain("daemon.workers: workers 0 is not an integer from 1 to 256");
    expect(fail("[daemon]\nlog_format = 'xml'\n").message).toContain('log format "xml" is not "text" or "json"');
  });

  test("bad tenant table", () => {
    expect(fail('[tenants."b@d"]\nnetns = "x"\n').message).toContain('file.toml:1: tenants."b@d": tenant name "b@d"');
    expect(fail("[tenants.acme]\nlisten = '127.0.0.1:1'\n").message).toContain("file.toml:1: tenants.acme.netns: tenant 'acme' has no netns");
    expect(fail("[tenants.acme]\n\nnetns = 'web=acme'\n").message).toContain("file.toml:3: tenants.acme.netns:");
    expect(fail("[tenants.acme]\nnetns = './acme'\n").message).toContain("relative path");
  });

  test("bad listen", () => {
    const e = fail(`[tenants.acme]
netns = "acme"
upstream = "http://127.0.0.1:9000"
listen = [
  "127.0.0.1:8080",
  "localhost:8080",
]
`);
    expect(e.message).toContain('file.toml:4: tenants.acme.listen: listen address "localhost:8080"');
  });

  test("bad upstream", () => {
    const e = fail(ACME.replace('"http://127.0.0.1:9000"', '"http://127.0.0.1:9000/?x=1"'));
    expect(e.message).toContain("file.toml:4: tenants.acme.upstream: upstream \"http://127.0.0.1:9000/?x=1\" has a query string");
  });

  test("bad durations", () => {
    expect(fail(`${ACME}upstream_timeout = "30 seconds"\n`).message).toContain('file.toml:5: tenants.acme.upstream_timeout: duration "30 seconds"');
    expect(fail("[daemon]\nshutdown_grace = -1\n").message).toContain("file.toml:2: daemon.shutdown_grace: duration -1");
    expect(fail("[defaults]\nupstream_timeout = 0\n").message).toContain("upstream_timeout must be longer than 0");
  });

  test("duplicate tenants", () => {
    const e = fail(ACME, { netns: ["/var/run/netns/acme"] });
    expect(e.where).toBe("file.toml:1");
    expect(e.message).toContain("tenant 'acme' (from --netns /var/run/netns/acme) is already defined in the config file as [tenants.acme]");
    expect(fail(undefined, { netns: ["x", "x=/proc/1/ns/net"] }).message).toBe("--netns: tenant 'x' is given twice: --netns x and --netns x=/proc/1/ns/net");
  });

  test("two tenants on one address in one namespace", () => {
    const e = fail(`${ACME}
[tenants.beta]
netns = "/run/netns/acme"
upstream = "http://127.0.0.1:9001"
listen = ["[::1]:80", "127.0.0.1:8080"]
`);
    expect(e.message).toContain("file.toml:9: tenants.beta.listen: tenants 'acme' and 'beta' both listen on 127.0.0.1:8080 in /run/netns/acme");
    // Different namespaces may share an address; one tenant may not list an address twice.
    expect(load(`${ACME}\n[tenants.beta]\nnetns = "beta"\nupstream = "http://x:1"\nlisten = "127.0.0.1:8080"\n`).tenants).toHaveLength(2);
    expect(fail(ACME.replace('"127.0.0.1:8080"', '["[::1]:1", "[0:0::1]:1"]')).message).toContain("tenant 'acme' lists [0:0::1]:1 twice");
    expect(fail(undefined, { netns: ["a=/run/netns/n", "b=n"], listen: ["127.0.0.1:1"], upstream: "http://x:1" }).where).toBe("--netns");
    // A wildcard covers the addresses of its family (and [::] covers IPv4: nsproxy listens dual-stack).
    const wild = (a: string, b: string) => fail(`${ACME.replace('"127.0.0.1:8080"', `"${a}"`)}\n[tenants.beta]\nnetns = "acme"\nupstream = "http://x:1"\nlisten = "${b}"\n`);
    expect(wild("0.0.0.0:8300", "127.0.0.1:8300").message).toContain("tenants.beta.listen: tenants 'acme' and 'beta' both listen on 127.0.0.1:8300 (0.0.0.0:8300 covers it) in /run/netns/acme");
    expect(wild("[::]:8300", "127.0.0.1:8300").message).toContain("([::]:8300 covers it)");
    expect(load(`${ACME.replace('"127.0.0.1:8080"', '"0.0.0.0:8300"')}\n[tenants.beta]\nnetns = "acme"\nupstream = "http://x:1"\nlisten = "[::1]:8300"\n`).tenants).toHaveLength(2);
  });

  test("missing upstream or listen", () => {
    const e = fail("[defaults]\nlisten = '127.0.0.1:1'\n\n[tenants.acme]\nnetns = 'acme'\n");
    expect(e.where).toBe("file.toml:4");
    expect(e.key).toBe("tenants.acme.upstream");
    expect(e.message).toContain("tenant 'acme' has no upstream; set upstream = \"http://127.0.0.1:9000\" in [tenants.acme] or [defaults], or pass --upstream");
    expect(fail("[tenants.acme]\nnetns = 'acme'\n").message).toContain("tenant 'acme' has no listen;");
    const f = fail(undefined, { netns: ["acme"], upstream: "http://x:1" });
    expect(f.message).toStartWith("--netns: tenant 'acme' (from --netns acme) has no listen; pass --listen 127.0.0.1:8080");
  });

  test("bad headers", () => {
    expect(fail(`${ACME}headers = { "X Y" = "1" }\n`).message).toContain('file.toml:5: tenants.acme.headers."X Y": static header "X Y" is not a valid header name');
    expect(fail(`${ACME}headers = { "X-A" = "a\\nb" }\n`).message).toContain("tenants.acme.headers.X-A: header X-A value");
    expect(fail(`${ACME}headers = { "X-A" = "1", "x-a" = "2" }\n`).message).toContain("is set twice");
    expect(fail(`${ACME}headers = { Connection = "close" }\n`).message).toContain("manages itself");
    expect(fail(`${ACME}headers = { "X-A" = 1 }\n`).message).toContain("X-A must be a string, not integer 1");
    expect(fail(`${ACME}tenant_header = "Transfer-Encoding"\n`).key).toBe("tenants.acme.tenant_header");
    expect(fail(`${ACME}tenant_header = "Host"\n`).message).toContain('tenant_header "Host" is a header the proxy manages itself');
    const clash = fail(`[defaults]\nheaders = { "x-nsproxy-tenant" = "spoof" }\n\n${ACME}`);
    expect(clash.message).toContain("file.toml:2: defaults.headers.x-nsproxy-tenant: tenant 'acme': static header 'x-nsproxy-tenant' has the same name as the tenant header");
  });

  test("flag errors name the flag", () => {
    expect(fail(undefined, { upstream: "nope" }).message).toStartWith('--upstream: upstream "nope"');
    expect(fail(undefined, { listen: ["1.2.3.4"] }).where).toBe("--listen");
    expect(fail(undefined, { netns: ["../x"] }).where).toBe("--netns");
    expect(fail(undefined, { workers: "lots" }).where).toBe("--workers");
    expect(fail(undefined, { upstreamTimeout: "0" }).where).toBe("--upstream-timeout");
    expect(fail(undefined, { shutdownGrace: "soon" }).where).toBe("--shutdown-grace");
    expect(fail(undefined, { logFormat: "xml" }).where).toBe("--log-format");
    expect(fail(undefined, { tenantHeader: "Upgrade" }).where).toBe("--tenant-header");
    expect(fail(undefined, { maxConnections: "0" }).message).toBe('--max-connections: max_connections "0" is not an integer from 1 to 1000000, like 1000');
    expect(fail(undefined, { maxConnections: "many" }).where).toBe("--max-connections");
    expect(fail(undefined, { requestTimeout: "0s" }).message).toBe('--request-timeout: the request timeout must be longer than 0, like "10s"');
    expect(fail(undefined, { idleTimeout: "0" }).where).toBe("--idle-timeout");
    expect(fail(undefined, { connectTimeout: "later" }).where).toBe("--connect-timeout");
    expect(fail(undefined, { bodyTimeout: "0ms" }).where).toBe("--body-timeout");
    expect(fail(undefined, { maxHeaderSize: "1023" }).message).toStartWith('--max-header-size: max_header_size "1023" is not an integer from 1024 to 1048576');
    expect(fail(undefined, { maxHeaders: "lots" }).where).toBe("--max-headers");
    expect(fail(undefined, { maxUrlLength: "10" }).where).toBe("--max-url-length");
    expect(fail(undefined, { metricsListen: "nope" }).message).toStartWith('--metrics-listen: listen address "nope" is not HOST:PORT');
    expect(fail(undefined, { metricsListen: "localhost:9464" }).where).toBe("--metrics-listen");
    expect(fail(undefined, { metricsTenantLimit: "-1" }).message).toBe('--metrics-tenant-limit: metrics_tenant_limit "-1" is not an integer from 0 to 1000000, like 1000');
    expect(fail(undefined, { metricsTenantLimit: "lots" }).where).toBe("--metrics-tenant-limit");
  });

  test("unreadable file names the file and the reason", () => {
    const e = (() => {
      try {
        loadConfig({ file: "/nonexistent/nsproxy.toml" });
      } catch (err) {
        return err as ConfigError;
      }
    })();
    expect(e).toBeInstanceOf(ConfigError);
    expect(e?.message).toBe("/nonexistent/nsproxy.toml: cannot read config file: no such file (ENOENT)");
  });

  test("a key of 30,000 dotted parts is refused at its line before any parser builds it", () => {
    const e = fail(`[daemon]\nworkers = 2\n\n${Array.from({ length: 30_000 }, () => "a").join(".")} = 1\n`);
    expect(e.where).toBe("file.toml:4");
    expect(e.message).toStartWith("file.toml:4: a key nested deeper than 16 levels");
  });
});
