// The window: the only code that runs while a thread is inside a tenant's network namespace.
import type { ListenAddr } from "../config/types.ts";
import { enterNetnsRaw, errnoName, errorText, migrateReqOnRaw, probeBindRaw } from "../netns/native.ts";

/** Could not listen: errno of the precise reason when the probe found one. */
export class ListenError extends Error {
  constructor(
    readonly listen: string,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ListenError";
  }
}

/** Returning home failed: this thread's namespace is no longer the process's. Fatal for the worker. */
export class StrandedError extends Error {
  override name = "StrandedError";
}

/**
 * Create a listening socket for `addr` inside the namespace open at `nsFd` (with `listen`, which must
 * create it synchronously on this thread: Bun.listen), then return to `homeFd`.
 *
 * Between the two setns calls this thread is in the tenant's namespace, and anything created there
 * stays there: a thread started now (by logging, fetch, a timer's first use, a promise continuation
 * running other code) would live in the tenant namespace for good. So the window holds nothing but
 * the listen call, one sysctl write in C (tcp_migrate_req, so a replaced listener's queued connections
 * move to the new one), and on failure a socket+bind probe (plain syscalls) for the exact errno. No
 * await, no logging, no allocation of threads.
 */
export function listenInside<L>(nsFd: number, homeFd: number, addr: ListenAddr, listen: (host: string, port: number) => L, migrate = false): L {
  const entered = enterNetnsRaw(nsFd);
  if (entered < 0) throw new ListenError(addr.text, "ENTER", `setns: ${errorText(-entered)}`);
  // ---- window open ----
  let server: L | undefined;
  let failure: unknown;
  let probe = 0;
  try {
    server = listen(addr.host, addr.port);
    // Only when old listeners are about to close (a re-attach): the write costs ~50 us with 1000
    // namespaces and ~2.7 ms with 10,000 (measured: a start-up of 10,000 took 28 s instead of 0.7).
    if (migrate) migrateReqOnRaw(); // best effort: kernels before 5.14 have no such setting
  } catch (err) {
    failure = err;
    probe = probeBindRaw(addr.host, addr.port);
  }
  const back = enterNetnsRaw(homeFd);
  // ---- window closed (if back === 0) ----
  if (back < 0) throw new StrandedError(`setns back to own namespace: ${errorText(-back)}`);
  if (server) return server;
  if (probe < 0) {
    throw new ListenError(addr.text, errnoName(-probe), `listen ${addr.text}: ${errorText(-probe)}`);
  }
  const msg = failure instanceof Error ? failure.message : String(failure);
  throw new ListenError(addr.text, (failure as { code?: string })?.code ?? "ELISTEN", `listen ${addr.text}: ${msg}`);
}
