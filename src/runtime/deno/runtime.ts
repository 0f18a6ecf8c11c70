// The Runtime for Deno 2 (run with -A --unstable-net): Deno.listen/connect, Deno.dlopen, Deno.serve, a unix-socket HttpClient, module workers.
import { existsSync } from "node:fs";
import { constants } from "node:os";
import { dial, dialFd, listenTcp, tlsVersionOf } from "./net.ts";
import { DIST_LIB, loadNetns } from "./ffi.ts";
import type { HttpServer, Runtime, ServeAt } from "../types.ts";

function serveHttp(at: ServeAt, fetch: (req: Request) => Response | Promise<Response>): HttpServer {
  const abort = new AbortController();
  const server = Deno.serve({
    ...("unix" in at ? { path: at.unix } : { hostname: at.hostname, port: at.port, reusePort: at.reusePort === true }),
    handler: (req) => fetch(req),
    // Deno prints "Listening on …" to stdout unless told where the news goes.
    onListen: () => {},
    onError: () => Response.json({ error: "internal error" }, { status: 500 }),
    signal: abort.signal,
  });
  return {
    async stop(force) {
      // shutdown() lets requests in flight finish; the abort closes what is still open. Either way Deno
      // unlinks the unix socket path it bound, as Bun does.
      if (force) abort.abort();
      else await server.shutdown();
      await server.finished;
    },
  };
}

const errnoByNumber = new Map<number, string>(Object.entries(constants.errno).map(([k, v]) => [v as number, k]));

/** Deno's fetch says "… (os error 111)"; the admin client reads `code` as Bun and Node give it (ECONNREFUSED). */
function withCode(err: unknown): unknown {
  const text = `${(err as Error)?.message ?? ""} ${((err as Error)?.cause as Error | undefined)?.message ?? ""}`;
  const m = /\(os error (\d+)\)/.exec(text);
  const code = m ? errnoByNumber.get(Number(m[1])) : undefined;
  if (code && err && typeof err === "object") Object.assign(err, { code });
  return err;
}

/**
 * One client per request, closed before returning: the body is read first (admin answers are small), so
 * the Response handed back needs no connection. Deno's fetch sends the absolute URL as the request target
 * over a unix socket (it is a "proxy" to Deno); the admin app routes on the path either way.
 */
async function fetchUnix(socketPath: string, url: string, init: RequestInit = {}): Promise<Response> {
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socketPath } });
  try {
    const res = await fetch(url, { ...init, client });
    const body = await res.arrayBuffer();
    return new Response(res.status === 204 || res.status === 304 ? null : body, { status: res.status, statusText: res.statusText, headers: res.headers });
  } catch (err) {
    throw withCode(err);
  } finally {
    client.close();
  }
}

/**
 * A Deno worker dispatches no "close" event, and an uncaught error in it is thrown again in the parent
 * unless the "error" event is cancelled (the whole daemon would exit). So: errors are cancelled here (the
 * pool listens to them too, and terminates the worker), and "close" is dispatched after terminate(), after
 * an error, and when the thread ends by itself (process.exit in the worker): its id comes in the worker's
 * first message ({ type: "ready", tid }), and the thread's /proc entry is watched.
 */
function startWorker(url: string | URL): Worker {
  const w = new Worker(url, { type: "module" });
  let closed = false;
  let watch: ReturnType<typeof setInterval> | undefined;
  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(watch);
    w.dispatchEvent(new Event("close"));
  };
  w.addEventListener("error", (ev) => {
    ev.preventDefault();
    setTimeout(close); // after the pool's own error listener has said why
  });
  w.addEventListener("message", (ev: MessageEvent) => {
    const tid = (ev.data as { type?: string; tid?: unknown } | undefined)?.type === "ready" ? (ev.data as { tid: unknown }).tid : undefined;
    if (typeof tid !== "number" || tid <= 0 || watch) return;
    watch = setInterval(() => existsSync(`/proc/self/task/${tid}`) || close(), 250);
  });
  const terminate = w.terminate.bind(w);
  w.terminate = () => {
    terminate();
    setTimeout(close);
  };
  return w;
}

export const runtime: Runtime = {
  name: "deno",
  listenTcp,
  dial,
  dialFd,
  tlsVersionOf,
  loadNetns,
  netnsLibFile: DIST_LIB,
  serveHttp,
  fetchUnix,
  startWorker,
  // V8's helper threads (GC markers, compilers) are a pool made when the process starts, not from a worker,
  // and Deno.listen/listenTls create their socket on the calling thread. Measured with test/threads.test.ts
  // (300 tenants x 2 addresses x 2 workers, default settings): no thread in a tenant namespace, run after run.
  windowSafeEnv: {},
  // DenoSocket and NodeSocket queue the buffer itself until Deno's promise-based write has sent it.
  writeCopies: false,
};
