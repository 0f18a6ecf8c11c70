// Runtime settings the window rule depends on, applied by re-executing before anything else runs.
//
// JavaScriptCore starts some of its threads lazily, from whichever thread first needs them: the
// parallel GC markers ("HeapHelper"), the concurrent JIT compilers ("JITWorker") and the concurrent
// collector. A new thread inherits the network namespace of the thread that creates it, so one started
// by a garbage collection or a compilation that happens to run while a worker is inside a tenant's
// namespace (the window) stays in that namespace: it pins the namespace after its container is gone
// and breaks the thread invariant. Measured on Bun 1.4.4: 300 tenants x 2 addresses x 2 workers left a
// HeapHelper thread in a tenant namespace in 6 of 6 starts; with these settings, 0 of 6. The settings
// make marking and JIT compilation run on the thread that asks, so no such thread is created at all.
//
// They must be in the environment before the runtime initialises, hence the exec (same PID). The settings are
// the runtime's (src/runtime/bun/runtime.ts); Deno needs none (src/runtime/deno/runtime.ts), so it is never re-executed.
import { readFileSync } from "node:fs";
import { logger } from "../log.ts";
import { execWithEnv, NativeError } from "../netns/native.ts";
import { runtime } from "./index.ts";

const WINDOW_SAFE_ENV = runtime.windowSafeEnv;

declare const NSPROXY_BUILD_VERSION: string | undefined;

export function windowSafeRuntime(): boolean {
  return Object.entries(WINDOW_SAFE_ENV).every(([k, v]) => process.env[k] === v);
}

/**
 * The environment the re-executed process gets: the window-safe settings, the mark that it was re-executed, and
 * the library --lib-dir wrote (Bun's workers read the environment the process started with, not process.env).
 */
export function reexecEnv(): Record<string, string> {
  const lib = process.env.NSPROXY_LIBNETNS;
  return { ...WINDOW_SAFE_ENV, NSPROXY_NO_REEXEC: "1", ...(lib ? { NSPROXY_LIBNETNS: lib } : {}) };
}

/**
 * The arguments that start this program again. Compiled, argv is [bun, /$bunfs/root/…, args…] and the executable is
 * the program itself; from source it is [bun, src/cli.ts, args…]. Deno's process.argv leaves out its own flags
 * (run -A --unstable-net), so there the kernel's copy of the command line is used.
 */
export function selfArgv(): string[] {
  if (runtime.name === "deno") return readFileSync("/proc/self/cmdline", "utf8").split("\0").slice(0, -1);
  const compiled = typeof NSPROXY_BUILD_VERSION === "string";
  return compiled ? [process.execPath, ...process.argv.slice(2)] : [process.execPath, process.argv[1]!, ...process.argv.slice(2)];
}

/** Re-execute this process with the window-safe settings unless it already has them. */
export function ensureWindowSafeRuntime(): void {
  if (windowSafeRuntime() || process.env.NSPROXY_NO_REEXEC === "1") return;
  try {
    execWithEnv(process.execPath, selfArgv(), reexecEnv());
  } catch (err) {
    if (!(err instanceof NativeError)) throw err; // the C library could not be loaded: that error says where and why
    logger.warn(`could not re-execute with window-safe runtime settings (${(err as Error).message}); threads may stray into tenant namespaces`);
  }
}
