// Pinned worker: one OS thread for its whole life, holding the listeners of every tenant (one per address).
import type { Server } from "bun";
import type { TenantSpec } from "../config/types.ts";
import { openOwnNetns } from "../netns/native.ts";
import { type AccessSink, stdoutAccessLog } from "../proxy/access-log.ts";
import { createProxyApp, type ProxyEnv } from "../proxy/forward.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";
import { ListenError, listenInside, type ServeOptions, StrandedError } from "./window.ts";

declare const self: Worker;

// The namespace this thread had when it started is home; opened now, before any setns.
const homeFd = openOwnNetns();
let access: AccessSink | undefined;
/** One proxy app for every tenant of this worker (made at init, when the access log is known). */
let app = createProxyApp();
let strandTenant: string | undefined;
let replaceGraceMs = 10_000;
const tenants = new Map<string, Server<unknown>[]>();
let stranded = false;

/** While a batch is handled, answers given at once are collected and sent back as one message. */
let collected: FromWorker[] | undefined;
const post = (msg: FromWorker) => (collected ? collected.push(msg) : self.postMessage(msg));

function serveOptions(spec: TenantSpec): ServeOptions {
  // Bun's idle timeout would cut a client waiting on a slow upstream; keep it above the upstream timeout.
  const idleTimeout = Math.min(255, Math.max(10, Math.ceil(spec.upstreamTimeoutMs / 1000) + 5));
  return {
    idleTimeout,
    // Bodies stream through; the default 128 MB cap would refuse large uploads.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    development: false,
    fetch(req: Request, server: Server<unknown>) {
      const env: ProxyEnv = { tenant: spec, clientAddress: server.requestIP(req)?.address ?? "" };
      return app.fetch(req, env);
    },
    error(err: Error) {
      return new Response(`nsproxy: internal error: ${err.message}\n`, { status: 500 });
    },
  } as ServeOptions;
}

function attach(spec: TenantSpec, nsFd: number): void {
  const opts = serveOptions(spec);
  const fresh: Server<unknown>[] = [];
  try {
    for (const addr of spec.listen) fresh.push(listenInside(nsFd, homeFd, addr, opts));
    if (spec.name === strandTenant) throw new StrandedError("setns back to own namespace: injected fault (NSPROXY_FAULT_STRAND_TENANT)");
  } catch (err) {
    for (const s of fresh) s.stop(true);
    throw err;
  }
  // A re-attach binds the new sockets first (SO_REUSEPORT lets both exist), then retires the old ones:
  // they stop accepting at once, and their requests in flight may finish within the grace period.
  const old = tenants.get(spec.name);
  tenants.set(spec.name, fresh);
  if (old) void retire(old, replaceGraceMs);
}

/** Stop accepting now; close what is still open after the grace period. */
function retire(servers: Server<unknown>[], graceMs: number): Promise<void> {
  const drained = Promise.all(servers.map((s) => s.stop(false))).then(() => undefined);
  const forced = new Promise<void>((resolve) =>
    setTimeout(() => {
      for (const s of servers) s.stop(true);
      resolve();
    }, graceMs).unref?.(),
  );
  return Promise.race([drained, forced]);
}

async function handle(msg: ToWorker): Promise<void> {
  if (stranded) return;
  switch (msg.type) {
    case "batch": {
      // Each message runs to its first await in order, as separate messages would; what they answer
      // synchronously goes back in one message (a stop's answer, after its grace, goes on its own).
      const answers: FromWorker[] = [];
      collected = answers;
      try {
        for (const m of msg.messages) void handle(m);
      } finally {
        collected = undefined;
      }
      if (answers.length) self.postMessage(answers.length === 1 ? answers[0] : { type: "batch", messages: answers });
      return;
    }
    case "init":
      access = msg.options.accessLog ? stdoutAccessLog(msg.options.logFormat) : undefined;
      app = createProxyApp(access);
      strandTenant = msg.options.strandTenant;
      replaceGraceMs = msg.options.replaceGraceMs;
      return;
    case "attach":
      try {
        attach(msg.spec, msg.nsFd);
        post({ type: "done", id: msg.id });
      } catch (err) {
        if (err instanceof StrandedError) {
          stranded = true;
          post({ type: "fatal", message: err.message });
          return;
        }
        const e = err as Error & { code?: string };
        post({ type: "failed", id: msg.id, message: e.message, code: e.code ?? "ERROR", listen: err instanceof ListenError ? err.listen : undefined });
      }
      return;
    case "detach": {
      const servers = tenants.get(msg.name);
      tenants.delete(msg.name);
      post({ type: "done", id: msg.id });
      if (servers) await retire(servers, msg.graceMs);
      return;
    }
    case "stop": {
      const all = [...tenants.values()].flat();
      tenants.clear();
      await retire(all, msg.graceMs);
      access?.flush();
      post({ type: "done", id: msg.id });
      return;
    }
  }
}

self.onmessage = (ev: MessageEvent<ToWorker>) => void handle(ev.data);
post({ type: "ready" });
