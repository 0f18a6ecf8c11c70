// The Runtime for Bun: Bun.listen/connect (net.ts), bun:ffi (ffi.ts), Bun.serve, fetch's `unix` option, Bun's Worker.
import { dial, dialFd, listenTcp, tlsVersionOf } from "./net.ts";
import { loadNetns, NETNS_LIB_FILE } from "./ffi.ts";
import type { HttpServer, Runtime, ServeAt } from "../types.ts";

function serveHttp(at: ServeAt, fetch: (req: Request) => Response | Promise<Response>): HttpServer {
  const server = Bun.serve({
    ...at,
    fetch,
    // The app answers its own errors; should one escape, Bun's development page would show the stack.
    development: false,
    error: () => Response.json({ error: "internal error" }, { status: 500 }),
  } as Parameters<typeof Bun.serve>[0]);
  return { stop: (force) => server.stop(force) };
}

export const runtime: Runtime = {
  name: "bun",
  listenTcp,
  dial,
  dialFd,
  tlsVersionOf,
  loadNetns,
  netnsLibFile: NETNS_LIB_FILE,
  serveHttp,
  fetchUnix: (socketPath, url, init) => fetch(url, { ...init, unix: socketPath }),
  startWorker: (url) => new Worker(url),
  // JavaScriptCore starts its GC marker and JIT threads lazily, from whichever thread needs them first (see ../window-safe.ts).
  windowSafeEnv: {
    BUN_JSC_numberOfGCMarkers: "1",
    BUN_JSC_useConcurrentJIT: "0",
    BUN_JSC_useConcurrentGC: "0",
  },
  // What write() takes goes to the kernel (or TLS's own buffer) before it returns; the rest is not kept.
  writeCopies: true,
};
