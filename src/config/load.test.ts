// Unit tests for loadConfig and summarize on valid input: merging, defaults and precedence (errors: load-errors.test.ts).
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type FlagOverrides, loadConfig, summarize } from "./load.ts";

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
headers = { "X-Env" = "prod", "X-Keep" = "1" }

[tenants.zeta]
netns = "/proc/42/ns/net"

[tenants.acme]
netns = "acme"
listen = ["127.0.0.1:8080", "[::1]:8080"]
upstream = "unix:/run/app.sock:/v1"
headers = { "x-env" = "dev" }
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
    });
    expect(zeta).toMatchObject({ netns: "/proc/42/ns/net", upstream: { origin: "http://127.0.0.1:9000" }, headers: { "X-Env": "prod", "X-Keep": "1" } });
  });

  test("built-in defaults", () => {
    const cfg = load(ACME);
    expect(cfg.shutdownGraceMs).toBe(10_000);
    expect(cfg.logFormat).toBe("text");
    expect(cfg.accessLog).toBe(true);
    expect(cfg.workers).toBeGreaterThanOrEqual(1);
    expect(cfg.tenants[0]).toMatchObject({ tenantHeader: "X-Nsproxy-Tenant", upstreamTimeoutMs: 30_000, headers: {} });
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
    expect(by.own?.upstream.origin).toBe("http://127.0.0.1:3");
    expect(by.own?.listen[0]?.text).toBe("127.0.0.1:1000");
    // The flag wins over [defaults].
    expect(by.inherit?.upstream.origin).toBe("http://127.0.0.1:2");
    expect(by.inherit?.listen[0]?.text).toBe("127.0.0.1:3000");
    expect(by.inherit?.upstreamTimeoutMs).toBe(2000);
    // --netns tenants take the merged defaults.
    expect(by.flagged).toMatchObject({ netns: "/run/netns/flagged", upstream: { origin: "http://127.0.0.1:2" }, listen: [{ port: 1000 }] });
    // Flags also win over [daemon]; unset flags leave the file's value.
    expect(cfg.workers).toBe(4);
    expect(cfg.logFormat).toBe("json");
  });

  test("[defaults] alone, and flags alone", () => {
    expect(load(file).tenants.find((t) => t.name === "inherit")?.upstream.origin).toBe("http://127.0.0.1:1");
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
