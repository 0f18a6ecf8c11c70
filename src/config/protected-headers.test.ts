// Unit tests for the header names the proxy keeps to itself: every protected name and look-alike, in a static header, a tenant_header and a tenant table, and the static header size cap.
//
// HAProxy accepts `http-request set-header Host …` and `set-header X-Forwarded-For …`: there the operator is trusted
// with any field. nsproxy is stricter on purpose: tenant tables arrive through the admin API and the tenants
// directory, and a CGI/WSGI upstream merges X_Nsproxy_Tenant into the stamp's own variable, so a managed name or a
// look-alike of one is refused wherever a header name is read.
import { describe, expect, test } from "bun:test";
import { ConfigError } from "../errors.ts";
import { Invalid } from "./layer.ts";
import { loadConfig, resolveTenant } from "./load.ts";
import { checkTenantTable } from "./tenant-table.ts";
import { checkHeaderName, headerKey, MAX_STATIC_HEADER_BYTES } from "./values.ts";

/** Each protected name as written, with a look-alike an upstream reads as the same field. */
const PROTECTED: [name: string, alike: string][] = [
  ["Host", "HOST"],
  ["Content-Length", "Content_Length"],
  ["Transfer-Encoding", "transfer_encoding"],
  ["Connection", "CONNECTION"],
  ["Keep-Alive", "Keep_Alive"],
  ["Proxy-Connection", "proxy_connection"],
  ["Proxy-Authorization", "PROXY_AUTHORIZATION"],
  ["TE", "te"],
  ["Trailer", "TRAILER"],
  ["Upgrade", "upgrade"],
  ["Forwarded", "FORWARDED"],
  ["X-Forwarded-For", "x-forwarded_for"],
  ["X-Forwarded-Proto", "X_Forwarded_Proto"],
  ["X-Forwarded-Host", "x_forwarded_host"],
  ["X-Forwarded-Port", "X_FORWARDED_PORT"],
  ["X-Forwarded-Anything", "x_forwarded_anything"],
];

const ACME = `[tenants.acme]
netns = "acme"
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:9000"
`;

function fail(source: string): ConfigError {
  try {
    loadConfig({ file: "t.toml", source });
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected loadConfig to throw");
}

describe("protected header names", () => {
  test("a header key reads any case and \"_\" as \"-\"", () => {
    expect(headerKey("X_Nsproxy_Tenant")).toBe("x-nsproxy-tenant");
    expect(headerKey("x-Forwarded_FOR")).toBe("x-forwarded-for");
  });

  test("every protected name and its look-alike is refused as a static header and as tenant_header", () => {
    for (const [name, alike] of PROTECTED) {
      for (const role of ["static header", "tenant_header"] as const) {
        expect(() => checkHeaderName(name, role)).toThrow(`${role} ${JSON.stringify(name)} is a header the proxy manages itself`);
        expect(() => checkHeaderName(alike, role)).toThrow(`${role} ${JSON.stringify(alike)}`);
        expect(() => checkHeaderName(alike, role)).toThrow("manages itself");
      }
    }
    expect(() => checkHeaderName("x-forwarded_for", "static header")).toThrow('(an upstream reads "_" as "-": it is "x-forwarded-for")');
  });

  test("ordinary names stay allowed, underscores included", () => {
    for (const ok of ["X-Plan", "X_Plan", "X-Nsproxy-Tenant", "Authorization", "X-Forwarded", "Hostname", "X-Host", "Proxy", "X-Real-IP"]) {
      expect(checkHeaderName(ok, "static header")).toBe(ok);
      expect(checkHeaderName(ok, "tenant_header")).toBe(ok);
    }
  });

  test("in a config file: file:line and key name the header", () => {
    const host = fail(`${ACME}headers = { "X-Env" = "prod", Host = "admin.internal" }\n`);
    expect(host.message).toContain('t.toml:5: tenants.acme.headers.Host: static header "Host" is a header the proxy manages itself');
    const xff = fail(`[defaults]\nheaders = { "x-forwarded_for" = "10.0.0.1" }\n\n${ACME}`);
    expect(xff.message).toContain('t.toml:2: defaults.headers.x-forwarded_for: static header "x-forwarded_for"');
    const th = fail(`${ACME}tenant_header = "X-Forwarded-For"\n`);
    expect(th.message).toContain('t.toml:5: tenants.acme.tenant_header: tenant_header "X-Forwarded-For" is a header the proxy manages itself');
    const fwd = fail(`${ACME}tenant_header = "forwarded"\n`);
    expect(fwd.key).toBe("tenants.acme.tenant_header");
  });

  test("the stamp: a static header with the tenant header's name or a look-alike of it is refused, whichever table set each", () => {
    const alike = fail(`${ACME}headers = { X_Nsproxy_Tenant = "admin" }\n`);
    expect(alike.message).toContain(
      "t.toml:5: tenants.acme.headers.X_Nsproxy_Tenant: tenant 'acme': static header 'X_Nsproxy_Tenant' is a look-alike (\"_\" read as \"-\") of the tenant header 'X-Nsproxy-Tenant'",
    );
    // tenant_header in the tenant's table, the look-alike in [defaults]: found once both are merged.
    const merged = fail(`[defaults]\nheaders = { "x_tenant" = "admin" }\n\n${ACME}tenant_header = "X-Tenant"\n`);
    expect(merged.message).toContain("t.toml:2: defaults.headers.x_tenant: tenant 'acme': static header 'x_tenant' is a look-alike");
    // The same names are fine once the tenant header is another name.
    const ok = loadConfig({ file: "t.toml", source: `${ACME}tenant_header = "X-Tenant"\nheaders = { X_Nsproxy_Tenant = "fine" }\n` });
    expect(ok.tenants[0]!.headers).toEqual({ X_Nsproxy_Tenant: "fine" });
  });

  test("two static headers that read as one are set twice; a tenant's look-alike replaces [defaults]' header", () => {
    expect(fail(`${ACME}headers = { "X-Plan" = "a", "X_Plan" = "b" }\n`).message).toContain("header 'X_Plan' is set twice (also as 'X-Plan')");
    const c = loadConfig({ file: "t.toml", source: `[defaults]\nheaders = { "X-Plan" = "base" }\n\n${ACME}headers = { "X_PLAN" = "gold" }\n` });
    expect(c.tenants[0]!.headers).toEqual({ X_PLAN: "gold" });
  });

  test(`static headers of one tenant total at most ${MAX_STATIC_HEADER_BYTES} bytes, [defaults] included`, () => {
    // "X-Big: " + value + CRLF: exactly the cap is allowed, one byte more is not.
    const fits = "v".repeat(MAX_STATIC_HEADER_BYTES - "X-Big: \r\n".length);
    expect(loadConfig({ file: "t.toml", source: `${ACME}headers = { "X-Big" = "${fits}" }\n` }).tenants[0]!.headers["X-Big"]).toBe(fits);
    const big = fail(`${ACME}headers = { "X-Big" = "${fits}v" }\n`);
    expect(big.message).toContain(`t.toml:5: tenants.acme.headers.X-Big: tenant 'acme': static headers up to 'X-Big' come to ${MAX_STATIC_HEADER_BYTES + 1} bytes, more than the ${MAX_STATIC_HEADER_BYTES} allowed`);
    // 900 kB, as an operator's mistake would send it on every request.
    expect(fail(`${ACME}headers = { "X-Big" = "${"x".repeat(900_000)}" }\n`).message).toContain("allowed per tenant");
    // Half in [defaults], half in the tenant: the sum counts.
    const half = "h".repeat(MAX_STATIC_HEADER_BYTES / 2);
    expect(fail(`[defaults]\nheaders = { "X-A" = "${half}" }\n\n${ACME}headers = { "X-B" = "${half}" }\n`).key).toBe("tenants.acme.headers.X-B");
  });

  test("a tenant table (admin request, tenants-dir file) is held to the same rules, naming the field", () => {
    const refuse = (table: Record<string, unknown>): Invalid => {
      try {
        resolveTenant(checkTenantTable("acme", { netns: "acme", listen: "127.0.0.1:8080", upstream: "http://127.0.0.1:9000", ...table }), { headers: new Map(), at: {} }, "tenants-dir");
      } catch (e) {
        expect(e).toBeInstanceOf(Invalid);
        return e as Invalid;
      }
      throw new Error("expected a refusal");
    };
    const stamp = refuse({ headers: { X_Nsproxy_Tenant: "admin" } });
    expect(stamp.message).toContain("static header 'X_Nsproxy_Tenant' is a look-alike");
    expect(stamp.at).toEqual(["headers", "X_Nsproxy_Tenant"]);
    expect(refuse({ headers: { Host: "admin" } }).at).toEqual(["headers", "Host"]);
    expect(refuse({ tenant_header: "X_Forwarded_For" }).at).toEqual(["tenant_header"]);
  });
});
