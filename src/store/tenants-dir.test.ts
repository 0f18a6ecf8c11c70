// Unit tests for the tenants directory: round trip, unchanged detection, atomic writes, bad files skipped, removal.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listTenantFiles, readTenantsDir, removeTenantFile, tenantFilePath, writeTenantFile } from "./tenants-dir.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "nsproxy-tenants-dir-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const GLOBEX = {
  netns: "/var/run/docker/netns/1a2b",
  listen: ["127.0.0.1:8080", "[::1]:8080"],
  upstream: "unix:/run/globex.sock:/v1",
  headers: { "X-Plan": "gold", "X-Env": "prod" },
  upstream_timeout: "5s",
  max_connections: 50,
};

describe("writeTenantFile / readTenantsDir", () => {
  test("round trip: what is written reads back as the same tenant", () => {
    const { file, changed } = writeTenantFile(dir, "globex", GLOBEX);
    expect(changed).toBe(true);
    expect(file).toBe(join(dir, "globex.toml"));
    expect(readFileSync(file, "utf8")).toStartWith("# nsproxy tenant 'globex'");
    expect(statSync(file).mode & 0o777).toBe(0o644);
    const { tenants, skipped } = readTenantsDir(dir);
    expect(skipped).toEqual([]);
    expect(tenants).toHaveLength(1);
    const [t] = tenants;
    expect(t).toMatchObject({ name: "globex", file, table: GLOBEX });
    expect(t!.tenant.netns).toBe("/var/run/docker/netns/1a2b");
    expect(t!.tenant.layer.listen?.map((l) => l.text)).toEqual(["127.0.0.1:8080", "[::1]:8080"]);
    expect(t!.tenant.layer.upstreamTimeoutMs).toBe(5000);
    expect(t!.tenant.layer.maxConnections).toBe(50);
  });

  test("creates a missing directory (and its parents)", () => {
    const nested = join(dir, "a", "tenants.d");
    writeTenantFile(nested, "acme", { netns: "acme" });
    expect(statSync(nested).isDirectory()).toBe(true);
    expect(listTenantFiles(nested)).toEqual([join(nested, "acme.toml")]);
  });

  test("the same table again, in another spelling, changes nothing, not even the mtime", () => {
    const { file } = writeTenantFile(dir, "acme", { netns: "acme", listen: "127.0.0.1:8080", headers: { A: "1", B: "2" } });
    const before = statSync(file);
    // listen as an array and headers in another order normalize to the same table.
    const again = writeTenantFile(dir, "acme", { headers: { B: "2", A: "1" }, listen: ["127.0.0.1:8080"], netns: "acme" });
    expect(again).toEqual({ file, changed: false });
    const after = statSync(file);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(after.ino).toBe(before.ino);
  });

  test("a different table replaces the file", () => {
    const { file } = writeTenantFile(dir, "acme", { netns: "acme" });
    expect(writeTenantFile(dir, "acme", { netns: "acme", upstream: "http://127.0.0.1:9001" }).changed).toBe(true);
    expect(readTenantsDir(dir).tenants[0]!.table).toEqual({ netns: "acme", upstream: "http://127.0.0.1:9001" });
    expect(readFileSync(file, "utf8")).toContain('upstream = "http://127.0.0.1:9001"');
  });

  test("a corrupt existing file is overwritten", () => {
    writeFileSync(join(dir, "acme.toml"), "netns = \n");
    expect(writeTenantFile(dir, "acme", { netns: "acme" }).changed).toBe(true);
    expect(readTenantsDir(dir).skipped).toEqual([]);
  });

  test("atomic write leaves no temp file behind, on success or on failure", () => {
    for (let i = 0; i < 5; i++) writeTenantFile(dir, "acme", { netns: "acme", upstream: `http://127.0.0.1:${9000 + i}` });
    expect(readdirSync(dir)).toEqual(["acme.toml"]);
    // A directory where the file should go makes the rename fail after the temp file was written.
    mkdirSync(join(dir, "beta.toml"));
    expect(() => writeTenantFile(dir, "beta", { netns: "beta" })).toThrow(`cannot write ${join(dir, "beta.toml")}`);
    expect(readdirSync(dir).sort()).toEqual(["acme.toml", "beta.toml"]);
  });

  test("a corrupt or invalid file is skipped with file:line while the others load", () => {
    writeTenantFile(dir, "acme", { netns: "acme" });
    writeFileSync(join(dir, "broken.toml"), 'netns = "broken"\nlisten = [\n');
    writeFileSync(join(dir, "typo.toml"), 'netns = "typo"\n\nupstrem = "http://127.0.0.1:9000"\n');
    writeFileSync(join(dir, "badlisten.toml"), 'netns = "x"\nlisten = "localhost:80"\n');
    writeTenantFile(dir, "zeta", { netns: "/proc/42/ns/net" });
    const { tenants, skipped } = readTenantsDir(dir);
    expect(tenants.map((t) => t.name)).toEqual(["acme", "zeta"]);
    expect(skipped.map((s) => s.file)).toEqual([join(dir, "badlisten.toml"), join(dir, "broken.toml"), join(dir, "typo.toml")]);
    expect(skipped[0]!.error).toStartWith(`${join(dir, "badlisten.toml")}:2: listen: `);
    expect(skipped[1]!.error).toStartWith(`${join(dir, "broken.toml")}:`);
    expect(skipped[1]!.error).toContain("invalid TOML");
    expect(skipped[2]!.error).toStartWith(`${join(dir, "typo.toml")}:3: `);
    expect(skipped[2]!.error).toContain("upstream");
  });
});

describe("listTenantFiles", () => {
  test("only NAME.toml with a valid tenant name; dotfiles, temp files, other suffixes and directories are ignored", () => {
    for (const f of ["acme.toml", "b-2.toml", ".hidden.toml", ".acme.toml.tmp-1-abc", "notes.txt", "acme.toml~", "-bad.toml", "sp ace.toml", `${"x".repeat(65)}.toml`]) {
      writeFileSync(join(dir, f), 'netns = "acme"\n');
    }
    mkdirSync(join(dir, "sub.toml"));
    expect(listTenantFiles(dir)).toEqual([join(dir, "acme.toml"), join(dir, "b-2.toml")]);
    expect(readTenantsDir(dir).tenants.map((t) => t.name)).toEqual(["acme", "b-2"]);
  });

  test("a missing directory holds no tenants", () => {
    expect(listTenantFiles(join(dir, "absent"))).toEqual([]);
    expect(readTenantsDir(join(dir, "absent"))).toEqual({ tenants: [], skipped: [] });
  });
});

describe("removeTenantFile / tenantFilePath", () => {
  test("remove: true once, then false", () => {
    writeTenantFile(dir, "acme", { netns: "acme" });
    expect(removeTenantFile(dir, "acme")).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
    expect(removeTenantFile(dir, "acme")).toBe(false);
    expect(removeTenantFile(join(dir, "absent"), "acme")).toBe(false);
  });

  test("a name that is not a tenant name never becomes a path", () => {
    expect(tenantFilePath("/etc/nsproxy/tenants.d", "acme")).toBe("/etc/nsproxy/tenants.d/acme.toml");
    expect(() => tenantFilePath(dir, "../etc/passwd")).toThrow("is not valid");
    expect(() => writeTenantFile(dir, ".acme", { netns: "acme" })).toThrow("is not valid");
    expect(() => removeTenantFile(dir, "a/b")).toThrow("is not valid");
  });
});
