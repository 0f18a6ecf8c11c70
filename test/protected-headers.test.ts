// Header names the proxy keeps to itself, end to end: refused at `tenant add` (400 naming the field, exit 2), `check`, `run` and `reload` (the old config stays), and a client's copies of a static header never reach the upstream.
//
// HAProxy accepts `http-request set-header Host …` or `set-header X-Forwarded-For …`: the operator who writes its
// file is trusted with any field. nsproxy is stricter on purpose: tenant tables also come through the admin API and
// the tenants directory, and a CGI/WSGI upstream reads X_Nsproxy_Tenant as the stamp's own variable.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { AdminClient } from "../src/admin/client.ts";
import { daemonDir, runNsproxy, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("hdr");
afterAll(() => cleanupNetns(prefix));

describe("protected header names (no daemon)", () => {
  test("check and run refuse a config file with a look-alike of the stamp, naming file:line and the header", async () => {
    const file = `${daemonDir()}/bad.toml`;
    const lines = ["[tenants.acme]", 'netns = "acme"', 'listen = "127.0.0.1:8080"', 'upstream = "http://127.0.0.1:9000"', 'headers = { "X-Plan" = "gold", X_Nsproxy_Tenant = "admin" }'];
    writeFileSync(file, `${lines.join("\n")}\n`);
    for (const command of ["check", "run"]) {
      const r = await runNsproxy([command, "--config", file]);
      expect([command, r.code]).toEqual([command, 2]);
      expect(r.stderr).toContain(`${file}:5: tenants.acme.headers.X_Nsproxy_Tenant: tenant 'acme': static header 'X_Nsproxy_Tenant' is a look-alike`);
    }
    for (const [flag, says] of [
      ["X-Forwarded-For", 'tenant_header "X-Forwarded-For" is a header the proxy manages itself'],
      ["x_forwarded_host", 'tenant_header "x_forwarded_host" (an upstream reads "_" as "-": it is "x-forwarded-host")'],
    ]) {
      const r = await runNsproxy(["check", "-n", "acme", "-l", "127.0.0.1:8080", "-u", "http://127.0.0.1:9", "--tenant-header", flag!]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`--tenant-header: ${says}`);
    }
  });
});

describe.skipIf(Boolean(skipReason))("protected header names (live daemon)", () => {
  test("tenant add with a protected header is refused (400 naming the field, exit 2); a bad reload keeps the old config; client copies are dropped", async () => {
    const upstream = startUpstream();
    const dir = daemonDir();
    const socket = `${dir}/admin/admin.sock`;
    const tenantsDir = `${dir}/tenants.d`;
    const flags = ["--admin-socket", socket, "--tenants-dir", tenantsDir];
    const admin = new AdminClient(socket);
    const [a, b] = [addNetns(`${prefix}a`), addNetns(`${prefix}b`)];
    const file = `${dir}/nsproxy.toml`;
    const good = ["[defaults]", 'listen = "127.0.0.1:8190"', `upstream = "http://127.0.0.1:${upstream.port}"`, "[tenants.ha]", `netns = "${a}"`, 'headers = { X_Plan = "gold" }'];
    writeFileSync(file, `${good.join("\n")}\n`);
    const d = startNsproxy(["run", "--config", file, "--no-access-log", ...flags]);
    try {
      await d.waitFor("attached 1/1");
      for (const [header, field] of [
        ["X_Nsproxy_Tenant=admin", "headers.X_Nsproxy_Tenant"],
        ["x-nsproxy-tenant=admin", "headers.x-nsproxy-tenant"],
        ["Host=admin.internal", "headers.Host"],
        ["X-Forwarded-For=10.0.0.1", "headers.X-Forwarded-For"],
        ["forwarded=for=10.0.0.1", "headers.forwarded"],
      ] as const) {
        const name = header.slice(0, header.indexOf("="));
        const cli = await runNsproxy(["tenant", "add", "evil", "--netns", b, "--header", header, ...flags]);
        expect([header, cli.code]).toEqual([header, 2]);
        expect(cli.stderr).toContain(name);
        const put = await admin.putTenant("evil", { netns: `/run/netns/${b}`, headers: { [name]: "admin" } }).catch((e) => e);
        expect([header, put.status, put.field]).toEqual([header, 400, field]);
        expect(put.message).toContain(name);
      }
      const th = await admin.putTenant("evil", { netns: `/run/netns/${b}`, tenant_header: "X_Forwarded_For" }).catch((e) => e);
      expect([th.status, th.field]).toEqual([400, "tenant_header"]);
      expect(existsSync(`${tenantsDir}/evil.toml`)).toBe(false);
      expect((await admin.tenants()).map((t) => t.name)).toEqual(["ha"]);

      // A reload that brings a protected header in [defaults] is rejected whole: the running tenant keeps its spec.
      writeFileSync(file, `${[...good.slice(0, 3), 'headers = { "X-Forwarded-Proto" = "https" }', ...good.slice(3)].join("\n")}\n`);
      const bad = await runNsproxy(["reload", ...flags]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain("reload rejected, the running configuration stays");
      expect(bad.stderr).toContain('nsproxy.toml:4: defaults.headers.X-Forwarded-Proto: static header "X-Forwarded-Proto" is a header the proxy manages itself');

      // The client's own copies of the stamp, of the static header (either spelling) and of X-Forwarded-* are dropped.
      const r = await curlIn(a, "http://127.0.0.1:8190/", ["-H", "X_Nsproxy_Tenant: admin", "-H", "X-Plan: platinum", "-H", "x_plan: platinum", "-H", "X_Forwarded_For: 6.6.6.6"]);
      const echo = JSON.parse(r.body) as Echo;
      expect(echo.rawTenantHeaders).toEqual(["ha"]);
      expect(echo.headers["x_plan"]).toBe("gold");
      expect(echo.headers["x-plan"]).toBeUndefined();
      expect(echo.headers["x_nsproxy_tenant"]).toBeUndefined();
      expect(echo.headers["x_forwarded_for"]).toBeUndefined();
      expect(echo.headers["x-forwarded-proto"]).toBe("http");
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);
});
