// The admin interface: a Hono app serving JSON under /v1 over the daemon's DaemonControl (the socket is socket.ts).
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { badTenantName, isValidTenantName } from "../config/values.ts";
import { logger } from "../log.ts";
import { CONTENT_TYPE as METRICS_CONTENT_TYPE } from "../metrics/exposition.ts";
import { ControlError, type ControlErrorKind } from "../control/errors.ts";
import { AdminError, type DaemonControl, type ErrorBody, type TenantView } from "./types.ts";

/** Body of a successful DELETE /v1/tenants/NAME. */
export interface DeleteResult {
  result: "deleted";
  name: string;
}

export const MAX_BODY_BYTES = 1024 * 1024;

const ENDPOINTS = "see /v1/status, /v1/tenants, /v1/reload, /v1/upgrade, /v1/stats, /metrics";

// Indented, with a final newline: people read these through `curl --unix-socket`.
function json(c: Context, body: unknown, status: ContentfulStatusCode = 200, headers?: Record<string, string>): Response {
  return c.body(`${JSON.stringify(body, null, 2)}\n`, status, { "content-type": "application/json", ...headers });
}

function errorBody(error: string, field?: string): ErrorBody {
  return field === undefined ? { error } : { error, field };
}

function noTenant(name: string): AdminError {
  return new AdminError(404, `no tenant '${name}'`);
}

/** The body of a PUT: a JSON object, or a 400 that says why not. Its keys are the daemon's to check. */
function parseObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AdminError(400, `body is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new AdminError(400, "body must be a JSON object", "");
  }
  return value as Record<string, unknown>;
}

/** The HTTP status of each kind of refusal the daemon gives. */
const STATUS_OF: Record<ControlErrorKind, 400 | 409 | 500 | 503> = { invalid: 400, conflict: 409, rejected: 400, unavailable: 503, failed: 500 };

// Byte order, not locale order: the listing must not change with the daemon's environment.
const byName = (a: TenantView, b: TenantView) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export function createAdminApp(control: DaemonControl): Hono {
  const app = new Hono();

  // Hono hands only Error instances to onError; anything else thrown would escape it, so wrap it here.
  app.use("*", async (_c, next) => {
    try {
      await next();
    } catch (err) {
      throw err instanceof Error ? err : new Error(String(err));
    }
  });
  // During and after an upgrade, no connection is kept: the client's next request must find whichever daemon holds the path then.
  app.use("*", async (c, next) => {
    await next();
    if (control.upgrading?.()) c.header("connection", "close");
  });
  app.use(
    "*",
    bodyLimit({ maxSize: MAX_BODY_BYTES, onError: (c) => json(c, errorBody(`body is larger than ${MAX_BODY_BYTES} bytes`), 413) }),
  );

  app.get("/v1/status", (c) => json(c, control.status()));
  app.all("/v1/status", notAllowed("GET, HEAD"));

  app.get("/v1/tenants", (c) => json(c, [...control.tenants()].sort(byName)));
  app.all("/v1/tenants", notAllowed("GET, HEAD"));

  app.get("/v1/tenants/:name", (c) => {
    const name = c.req.param("name");
    const tenant = control.tenants().find((t) => t.name === name);
    if (!tenant) throw noTenant(name);
    return json(c, tenant);
  });
  app.put("/v1/tenants/:name", async (c) => {
    const name = c.req.param("name");
    if (!isValidTenantName(name)) throw new AdminError(400, badTenantName(name, "in the path"), "name");
    const result = await control.putTenant(name, parseObject(await c.req.text()));
    if (result.result === "created") return json(c, result, 201, { location: `/v1/tenants/${name}` });
    return json(c, result);
  });
  app.delete("/v1/tenants/:name", async (c) => {
    const name = c.req.param("name");
    // ?owner=cni:ID: only while the tenant is still that owner's (409 otherwise).
    const owner = c.req.query("owner");
    if (!(await control.deleteTenant(name, owner))) throw noTenant(name);
    return json(c, { result: "deleted", name } satisfies DeleteResult);
  });
  app.all("/v1/tenants/:name", notAllowed("GET, HEAD, PUT, DELETE"));

  app.post("/v1/reload", async (c) => json(c, await control.reload()));
  app.all("/v1/reload", notAllowed("POST"));

  app.post("/v1/upgrade", async (c) => {
    if (!control.upgrade) throw new AdminError(404, "no upgrade here");
    const text = await c.req.text();
    const body = text.trim() === "" ? {} : parseObject(text);
    if (body.binary !== undefined && (typeof body.binary !== "string" || body.binary === "")) throw new AdminError(400, "binary must be a path", "binary");
    return json(c, await control.upgrade(body.binary as string | undefined));
  });
  app.all("/v1/upgrade", notAllowed("POST"));

  app.get("/v1/stats", (c) => {
    if (!control.stats) throw new AdminError(404, "no stats here");
    return json(c, control.stats());
  });
  app.all("/v1/stats", notAllowed("GET, HEAD"));

  app.get("/metrics", (c) => {
    if (!control.metrics) throw new AdminError(404, "no metrics here");
    return c.body(control.metrics(), 200, { "content-type": METRICS_CONTENT_TYPE });
  });
  app.all("/metrics", notAllowed("GET, HEAD"));

  app.notFound((c) => json(c, errorBody(`no such endpoint: ${c.req.method} ${c.req.path}; ${ENDPOINTS}`), 404));

  app.onError((err, c) => {
    if (err instanceof AdminError) return json(c, errorBody(err.message, err.field), err.status);
    if (err instanceof ControlError) return json(c, errorBody(err.message, err.field), STATUS_OF[err.kind]);
    // Unexpected: the client gets the message only; the log gets the rest (the stack with --verbose).
    const message = err.message || "internal error";
    logger.error(`admin: ${c.req.method} ${c.req.path} failed:`, err);
    return json(c, errorBody(message), 500);
  });

  return app;
}

/** The handler registered after a path's own methods: it answers every other method. */
function notAllowed(allow: string) {
  return (c: Context) => {
    if (c.req.method === "OPTIONS") return c.body(null, 204, { allow });
    return json(c, errorBody(`method ${c.req.method} is not allowed on ${c.req.path}; allowed: ${allow}`), 405, { allow });
  };
}
