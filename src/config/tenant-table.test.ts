// Unit tests for one tenant as a table: checks relative to the table, canonical form, and the file round trip.
import { describe, expect, test } from "bun:test";
import { ConfigError } from "../errors.ts";
import { Invalid } from "./layer.ts";
import { checkTenantTable, normalizeTenantTable, parseTenantFile, tenantTableToToml } from "./tenant-table.ts";

describe("checkTenantTable", () => {
  test("max_connections is a tenant key; errors point inside the table", () => {
    expect(checkTenantTable("acme", { netns: "acme", max_connections: 25 }).layer.maxConnections).toBe(25);
    const err = (table: unknown) => {
      try {
        checkTenantTable("acme", table);
      } catch (e) {
        expect(e).toBeInstanceOf(Invalid);
        return e as Invalid;
      }
      throw new Error("expected checkTenantTable to throw");
    };
    expect(err({ netns: "acme", max_connections: 0 })).toMatchObject({ at: ["max_connections"], message: "max_connections 0 is not an integer from 1 to 1000000, like 1000" });
    expect(err({ netns: "acme", max_connections: "10" }).at).toEqual(["max_connections"]);
    expect(err({ netns: "acme", max_conections: 10 }).message).toContain("did you mean 'max_connections'?");
  });
});

describe("normalizeTenantTable / tenantTableToToml / parseTenantFile", () => {
  const table = { headers: { "X-Plan": "gold" }, max_connections: 200, listen: "127.0.0.1:8080", upstream_timeout: "5s", netns: "acme" };

  test("max_connections keeps its place in the canonical order, and the file reads back as the same table", () => {
    const normal = normalizeTenantTable(table);
    expect(Object.keys(normal)).toEqual(["netns", "listen", "upstream_timeout", "max_connections", "headers"]);
    expect(normal).toEqual({ netns: "acme", listen: ["127.0.0.1:8080"], upstream_timeout: "5s", max_connections: 200, headers: { "X-Plan": "gold" } });
    const text = tenantTableToToml("acme", table);
    expect(text).toContain("max_connections = 200\n");
    const back = parseTenantFile("acme.toml", "acme", text);
    expect(back.table).toEqual(normal);
    expect(normalizeTenantTable(back.table)).toEqual(normal);
    expect(back.tenant.layer.maxConnections).toBe(200);
  });

  test("a bad max_connections in a file names the file, the line and the key", () => {
    const e = (() => {
      try {
        parseTenantFile("/d/acme.toml", "acme", 'netns = "acme"\nmax_connections = 0\n');
      } catch (err) {
        return err as ConfigError;
      }
    })();
    expect(e).toBeInstanceOf(ConfigError);
    expect(e?.message).toBe("/d/acme.toml:2: max_connections: max_connections 0 is not an integer from 1 to 1000000, like 1000");
  });
});
