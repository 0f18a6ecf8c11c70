// Unit tests for the admin app's routes, status codes and error bodies, through app.request with a fake daemon.
import { afterEach, beforeEach, describe, expect, spyOn, test } from "bun:test";
import { logger } from "../log.ts";
import { createAdminApp, MAX_BODY_BYTES } from "./server.ts";
import { ControlError } from "../control/errors.ts";
import { type DaemonControl, type ErrorBody, type PutResult, type ReloadResult, type StatusView, type TenantView } from "./types.ts";

const tenant = (name: string, extra: Partial<TenantView> = {}): TenantView => ({
  name,
  netns: `/run/netns/${name}`,
  listen: ["127.0.0.1:8080"],
  upstream: "http://127.0.0.1:9000",
  state: "serving",
  source: "tenants-dir",
  headers: {},
  tenant_header: "X-Nsproxy-Tenant",
  upstream_timeout_ms: 30000,
  max_connections: 1000,
  mode: "http",
  ...extra,
});

const STATUS: StatusView = {
  version: "0.1.0",
  pid: 4242,
  uptime_seconds: 12,
  workers: 2,
  config: "/etc/nsproxy/nsproxy.toml",
  tenants_dir: "/etc/nsproxy/tenants.d",
  admin_socket: "/run/nsproxy/admin.sock",
  tenants: { total: 3, serving: 2, waiting: 0, failed: 1 },
};

const RELOADED: ReloadResult = { result: "reloaded", added: ["new"], removed: [], replaced: ["acme"], unchanged: 2, skipped: [] };

/** A DaemonControl that records its calls; each test may replace a method to make it answer otherwise. */
function fakeControl() {
  const calls: unknown[][] = [];
  const tenants = [tenant("zeta"), tenant("acme"), tenant("globex", { state: "failed", error: "ENOENT: no namespace file", source: "config" })];
  const control: DaemonControl = {
    status: () => (calls.push(["status"]), STATUS),
    tenants: () => (calls.push(["tenants"]), tenants),
    putTenant: async (name, input) => {
      calls.push(["putTenant", name, input]);
      const exists = tenants.some((t) => t.name === name);
      return { result: exists ? "replaced" : "created", tenant: tenant(name) } satisfies PutResult;
    },
    deleteTenant: async (name) => (calls.push(["deleteTenant", name]), tenants.some((t) => t.name === name)),
    reload: async () => (calls.push(["reload"]), RELOADED),
  };
  return { control, calls };
}

let fake: ReturnType<typeof fakeControl>;
let app: ReturnType<typeof createAdminApp>;
beforeEach(() => {
  fake = fakeControl();
  app = createAdminApp(fake.control);
});

const put = (path: string, body: string) => app.request(path, { method: "PUT", body, headers: { "content-type": "application/json" } });

const errorOf = async (res: Response) => (await res.json()) as ErrorBody;

async function expectJson(res: Response, status: number, body: unknown) {
  expect(res.headers.get("content-type")).toBe("application/json");
  expect({ status: res.status, body: await res.json() }).toEqual({ status, body });
}

describe("admin app: routes", () => {
  test("GET /v1/status", async () => {
    await expectJson(await app.request("/v1/status"), 200, STATUS);
  });

  test("GET /v1/tenants lists every tenant sorted by name", async () => {
    const res = await app.request("/v1/tenants");
    expect(res.status).toBe(200);
    const body = (await res.json()) as TenantView[];
    expect(body.map((t) => t.name)).toEqual(["acme", "globex", "zeta"]);
    expect(body[1]).toEqual(tenant("globex", { state: "failed", error: "ENOENT: no namespace file", source: "config" }));
  });

  test("GET /v1/tenants/NAME", async () => {
    await expectJson(await app.request("/v1/tenants/acme"), 200, tenant("acme"));
  });

  test("PUT a new tenant: 201 with a Location; the parsed body reaches the daemon", async () => {
    const input = { netns: "acme2", listen: ["127.0.0.1:8080"], headers: { "X-Plan": "gold" } };
    const res = await put("/v1/tenants/acme2", JSON.stringify(input));
    await expectJson(res, 201, { result: "created", tenant: tenant("acme2") });
    expect(res.headers.get("location")).toBe("/v1/tenants/acme2");
    expect(fake.calls).toEqual([["putTenant", "acme2", input]]);
  });

  test("PUT an existing tenant: 200", async () => {
    await expectJson(await put("/v1/tenants/acme", '{"netns":"acme"}'), 200, { result: "replaced", tenant: tenant("acme") });
  });

  test("PUT without a content type still parses the body", async () => {
    const res = await app.request("/v1/tenants/acme", { method: "PUT", body: '{"netns":"acme"}' });
    expect(res.status).toBe(200);
  });

  test("DELETE /v1/tenants/NAME", async () => {
    await expectJson(await app.request("/v1/tenants/acme", { method: "DELETE" }), 200, { result: "deleted", name: "acme" });
    expect(fake.calls).toEqual([["deleteTenant", "acme"]]);
  });

  test("POST /v1/reload", async () => {
    await expectJson(await app.request("/v1/reload", { method: "POST" }), 200, RELOADED);
    expect(fake.calls).toEqual([["reload"]]);
  });

  test("HEAD is answered like GET, without a body", async () => {
    const res = await app.request("/v1/status", { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
  });

  test("bodies are indented JSON ending in a newline, for people using curl", async () => {
    const text = await (await app.request("/v1/tenants/acme")).text();
    expect(text).toStartWith('{\n  "name": "acme",');
    expect(text).toEndWith("}\n");
  });
});

describe("admin app: errors", () => {
  test("404 for an unknown tenant on GET and DELETE", async () => {
    await expectJson(await app.request("/v1/tenants/nobody"), 404, { error: "no tenant 'nobody'" });
    await expectJson(await app.request("/v1/tenants/nobody", { method: "DELETE" }), 404, { error: "no tenant 'nobody'" });
  });

  test("404 for an unknown endpoint names it and the real ones", async () => {
    const error = "no such endpoint: GET /v2/status; see /v1/status, /v1/tenants, /v1/reload, /v1/upgrade, /v1/stats, /metrics";
    await expectJson(await app.request("/v2/status"), 404, { error });
    expect((await errorOf(await app.request("/", { method: "POST" }))).error).toStartWith("no such endpoint: POST /;");
  });

  test("a body that is not JSON: 400", async () => {
    const res = await put("/v1/tenants/acme", '{"netns": acme}');
    expect(res.status).toBe(400);
    const body = await errorOf(res);
    expect(body.error).toStartWith("body is not valid JSON: ");
    expect(body.field).toBeUndefined();
    expect(fake.calls).toEqual([]);
  });

  test("an empty body: 400", async () => {
    const res = await put("/v1/tenants/acme", "");
    expect(res.status).toBe(400);
    expect((await errorOf(res)).error).toStartWith("body is not valid JSON: ");
  });

  test.each([["[]"], ["null"], ['"acme"'], ["42"]])("JSON that is not an object (%s): 400 with field ''", async (body) => {
    await expectJson(await put("/v1/tenants/acme", body), 400, { error: "body must be a JSON object", field: "" });
    expect(fake.calls).toEqual([]);
  });

  test.each([["-acme"], ["a%2Fb"], ["a b"], ["x".repeat(65)], ["%C3%A9t%C3%A9"]])("a bad tenant name in the path (%s): 400 with field 'name'", async (name) => {
    const res = await put(`/v1/tenants/${name}`, '{"netns":"acme"}');
    expect(res.status).toBe(400);
    const body = await errorOf(res);
    expect(body.field).toBe("name");
    expect(body.error).toContain(JSON.stringify(decodeURIComponent(name)));
    expect(fake.calls).toEqual([]);
  });

  test("the daemon's invalid request is a 400 that keeps its field", async () => {
    fake.control.putTenant = async () => {
      throw new ControlError("invalid", "listen address \"localhost:80\" is not HOST:PORT", "listen");
    };
    await expectJson(await put("/v1/tenants/acme", '{"netns":"acme","listen":"localhost:80"}'), 400, {
      error: 'listen address "localhost:80" is not HOST:PORT',
      field: "listen",
    });
  });

  test("the daemon's conflict is a 409, a rejected reload a 400", async () => {
    fake.control.deleteTenant = async () => {
      throw new ControlError("conflict", "tenant 'globex' comes from the config file; edit it there");
    };
    fake.control.reload = async () => {
      throw new ControlError("rejected", "tenants.acme.upstrem: unknown key", "tenants.acme.upstrem");
    };
    await expectJson(await app.request("/v1/tenants/globex", { method: "DELETE" }), 409, { error: "tenant 'globex' comes from the config file; edit it there" });
    await expectJson(await app.request("/v1/reload", { method: "POST" }), 400, { error: "tenants.acme.upstrem: unknown key", field: "tenants.acme.upstrem" });
  });

  test("an upgrade in progress is a 503 (the client retries), a failed successor a 500 with its own error", async () => {
    fake.control.putTenant = async () => {
      throw new ControlError("unavailable", "upgrade in progress, retry");
    };
    fake.control.upgrade = async () => {
      throw new ControlError("failed", "upgrade failed, pid 4242 keeps serving: config.toml:3: unknown key");
    };
    await expectJson(await put("/v1/tenants/acme", "{}"), 503, { error: "upgrade in progress, retry" });
    await expectJson(await app.request("/v1/upgrade", { method: "POST" }), 500, { error: "upgrade failed, pid 4242 keeps serving: config.toml:3: unknown key" });
  });

  test("POST /v1/upgrade passes the binary on and answers the old and new generation", async () => {
    const result = { old: { pid: 1, version: "1.0.0" }, new: { pid: 2, version: "1.1.0" }, admin_socket: "/run/nsproxy/admin.sock" };
    fake.control.upgrade = async (binary) => (fake.calls.push(["upgrade", binary]), result);
    await expectJson(await app.request("/v1/upgrade", { method: "POST", body: JSON.stringify({ binary: "/opt/nsproxy" }) }), 200, result);
    await expectJson(await app.request("/v1/upgrade", { method: "POST", body: JSON.stringify({ binary: 3 }) }), 400, { error: "binary must be a path", field: "binary" });
    expect(fake.calls).toEqual([["upgrade", "/opt/nsproxy"]]);
  });

  test.each([
    ["/v1/status", "DELETE", "GET, HEAD"],
    ["/v1/tenants", "POST", "GET, HEAD"],
    ["/v1/tenants/acme", "POST", "GET, HEAD, PUT, DELETE"],
    ["/v1/reload", "GET", "POST"],
  ])("%s with %s: 405 with Allow", async (path, method, allow) => {
    const res = await app.request(path, { method });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe(allow);
    expect((await errorOf(res)).error).toBe(`method ${method} is not allowed on ${path}; allowed: ${allow}`);
    expect(fake.calls).toEqual([]);
  });

  test("OPTIONS lists the allowed methods", async () => {
    const res = await app.request("/v1/reload", { method: "OPTIONS" });
    expect(res.status).toBe(204);
    expect(res.headers.get("allow")).toBe("POST");
  });

  test("a body over 1 MiB: 413, whether its length is declared or streamed", async () => {
    const big = JSON.stringify({ netns: "acme", pad: "x".repeat(MAX_BODY_BYTES) });
    const declared = await app.request("/v1/tenants/acme", { method: "PUT", body: big, headers: { "content-length": String(big.length) } });
    await expectJson(declared, 413, { error: `body is larger than ${MAX_BODY_BYTES} bytes` });
    const stream = new Blob([big]).stream();
    const streamed = await app.request("/v1/tenants/acme", { method: "PUT", body: stream, duplex: "half" } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(fake.calls).toEqual([]);
  });

  test("a body just under the limit is accepted", async () => {
    const body = JSON.stringify({ netns: "acme", pad: "x".repeat(MAX_BODY_BYTES - 100) });
    expect((await put("/v1/tenants/acme", body)).status).toBe(200);
  });

  describe("unexpected errors", () => {
    let logged: unknown[][];
    let spy: ReturnType<typeof spyOn>;
    beforeEach(() => {
      logged = [];
      spy = spyOn(logger, "error").mockImplementation(((...args: unknown[]) => void logged.push(args)) as typeof logger.error);
    });
    afterEach(() => spy.mockRestore());

    test("500 with the message only, never a stack; the error is logged", async () => {
      const boom = new Error("worker pool is gone");
      fake.control.status = () => {
        throw boom;
      };
      const res = await app.request("/v1/status");
      const text = await res.text();
      expect(res.status).toBe(500);
      expect(JSON.parse(text)).toEqual({ error: "worker pool is gone" });
      expect(text).not.toContain("server.test.ts");
      expect(text).not.toContain("    at ");
      expect(logged).toEqual([["admin: GET /v1/status failed:", boom]]);
    });

    test("something thrown that is not an Error", async () => {
      fake.control.reload = () => Promise.reject("no reason");
      await expectJson(await app.request("/v1/reload", { method: "POST" }), 500, { error: "no reason" });
      expect(logged.map(([m, e]) => [m, (e as Error).message])).toEqual([["admin: POST /v1/reload failed:", "no reason"]]);
    });
  });
});
