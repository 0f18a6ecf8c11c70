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
import { logger } from "../log.ts";
import { execWithEnv } from "../netns/native.ts";
import { runtime } from "./index.ts";

const WINDOW_SAFE_ENV = runtime.windowSafeEnv;

declare const NSPROXY_BUILD_VERSION: string | undefined;

export function windowSafeRuntime(): boolean {
  return Object.entries(WINDOW_SAFE_ENV).every(([k, v]) => process.env[k] === v);
}

/** Re-execute this process with the window-safe settings unless it already has them. */
export function ensureWindowSafeRuntime(): void {
  if (windowSafeRuntime() || process.env.NSPROXY_NO_REEXEC === "1") return;
  // Compiled, argv is [bun, /$bunfs/root/…, args…] and the executable is the program itself;
  // from source it is [bun, src/cli.ts, args…].
  const compiled = typeof NSPROXY_BUILD_VERSION === "string";
  const argv = compiled ? [process.execPath, ...process.argv.slice(2)] : [process.execPath, process.argv[1]!, ...process.argv.slice(2)];
  try {
    execWithEnv(process.execPath, argv, { ...WINDOW_SAFE_ENV, NSPROXY_NO_REEXEC: "1" });
  } catch (err) {
    logger.warn(`could not re-execute with window-safe runtime settings (${(err as Error).message}); threads may stray into tenant namespaces`);
  }
}
