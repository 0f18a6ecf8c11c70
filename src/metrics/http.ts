// The metrics listener (--metrics-listen): /metrics, /healthz and /readyz on a TCP address in the host namespace, nothing else.
import { Hono } from "hono";
import { CONTENT_TYPE } from "./exposition.ts";

export interface MetricsControl {
  metrics(): string;
  /** The start-up attach pass is done and the daemon is not shutting down. */
  ready(): boolean;
}

export function createMetricsApp(control: MetricsControl): Hono {
  const app = new Hono();
  app.get("/metrics", (c) => c.body(control.metrics(), 200, { "content-type": CONTENT_TYPE }));
  app.get("/healthz", (c) => c.text("ok\n"));
  app.get("/readyz", (c) => (control.ready() ? c.text("ready\n") : c.text("not ready\n", 503)));
  app.notFound((c) => c.text("not found: this listener serves /metrics, /healthz and /readyz\n", 404));
  app.onError((err, c) => c.text(`internal error: ${err.message}\n`, 500));
  return app;
}
