// The runtime nsproxy runs on, chosen once at start: Deno when `Deno` exists, else Bun. Each side's code is
// loaded only there (bun:ffi and Bun.* never load under Deno, Deno.* never under Bun).
//
// Loaded synchronously, by require: an `await import()` here would make every module that imports this one
// finish evaluating later, and a Bun worker drops the messages that arrive before its `onmessage` is set
// (the pool's first message is sent as the worker starts). `require("./bun/runtime.ts")` is a literal so that
// `bun build --compile` bundles it; Deno has no `require` in a module, so it gets one from node:module (Deno
// loads an ES module through it, synchronously, as Node 22 does).
import { createRequire } from "node:module";
import type { Runtime } from "./types.ts";

export const runtime: Runtime =
  typeof Deno !== "undefined" ? (createRequire(import.meta.url)("./deno/runtime.ts") as typeof import("./deno/runtime.ts")).runtime : (require("./bun/runtime.ts") as typeof import("./bun/runtime.ts")).runtime;

// The data path's calls, as the worker uses them.
export const { listenTcp, dial, dialFd, tlsVersionOf } = runtime;
export type { ClientSink, HttpServer, Listener, ListenerHooks, ListenTls, Peer, Runtime } from "./types.ts";
