// The window: the only code that runs while a thread is inside a tenant's network namespace.
import type { ListenAddr } from "../config/types.ts";
import { closeFd, enterNetnsRaw, errnoName, errorText, migrateReqOnRaw, openNetTableRaw, probeAloneRaw, probeBindRaw, readAndCloseFd } from "../netns/native.ts";
import { listenersOn } from "../netns/tcp-table.ts";

/** Could not listen: errno of the precise reason when the probe found one. */
export class ListenError extends Error {
  constructor(
    readonly listen: string,
    readonly code: string,
    message: string,
    /** Taken by someone else: the inodes of the sockets listening there (the main thread finds their process). */
    readonly holders?: number[],
  ) {
    super(message);
    this.name = "ListenError";
  }
}

/** Returning home failed: this thread's namespace is no longer the process's. Fatal for the worker. */
export class StrandedError extends Error {
  override name = "StrandedError";
}

const EADDRINUSE = 98;
/** A namespace's TCP tables are read up to this size (~1,700 sockets each): enough to find who listens, bounded whatever a tenant opens. */
const TABLE_MAX = 256 * 1024;

/**
 * Create a listening socket for `addr` inside the namespace open at `nsFd` (with `listen`, which must
 * create it synchronously on this thread: Bun.listen), then return to `homeFd`.
 *
 * Between the two setns calls this thread is in the tenant's namespace, and anything created there
 * stays there: a thread started now (by logging, fetch, a timer's first use, a promise continuation
 * running other code) would live in the tenant namespace for good. So the window holds nothing but
 * plain syscalls in C and the listen call: with `alone`, a bind probe without SO_REUSEPORT first (and,
 * when the address is taken, opening the namespace's TCP tables, read after returning home); then the
 * listen; one sysctl write (tcp_migrate_req, so a replaced listener's queued connections move to the
 * new one); and on failure a socket+bind probe for the exact errno. No await, no logging, no
 * allocation of threads.
 *
 * `alone`: the address must be free of every socket before this listener joins it. Our listeners set
 * SO_REUSEPORT (workers and a replaced tenant's old and new listeners share an address that way), and
 * so does any other nsproxy: without the probe a second daemon would bind beside the first and the
 * kernel would split the tenant's connections between them. The caller passes false only where its own
 * listeners are known to hold the address (see worker.ts attach); a deliberate handover between two
 * generations would be the one other reason.
 */
export function listenInside<L>(nsFd: number, homeFd: number, addr: ListenAddr, listen: (host: string, port: number) => L, migrate = false, alone = false): L {
  const entered = enterNetnsRaw(nsFd);
  if (entered < 0) throw new ListenError(addr.text, "ENTER", `setns: ${errorText(-entered)}`);
  // ---- window open ----
  let server: L | undefined;
  let failure: unknown;
  let probe = 0;
  let taken = 0;
  let tables: number[] = [];
  try {
    if (alone) taken = probeAloneRaw(addr.host, addr.port);
    if (taken === -EADDRINUSE) tables = [openNetTableRaw(false), openNetTableRaw(true)];
    else {
      server = listen(addr.host, addr.port);
      // Only when old listeners are about to close (a re-attach): the write costs ~50 us with 1000
      // namespaces and ~2.7 ms with 10,000 (measured: a start-up of 10,000 took 28 s instead of 0.7).
      if (migrate) migrateReqOnRaw(); // best effort: kernels before 5.14 have no such setting
    }
  } catch (err) {
    failure = err;
    probe = probeBindRaw(addr.host, addr.port);
  }
  const back = enterNetnsRaw(homeFd);
  // ---- window closed (if back === 0) ----
  if (back < 0) {
    for (const fd of tables) if (fd >= 0) closeFd(fd);
    throw new StrandedError(`setns back to own namespace: ${errorText(-back)}`);
  }
  if (server) return server;
  if (taken === -EADDRINUSE) {
    const holders = tables.flatMap((fd) => (fd >= 0 ? listenersOn(readAndCloseFd(fd, TABLE_MAX), addr.host, addr.port) : []));
    throw new ListenError(addr.text, "EADDRINUSE", `listen ${addr.text}: Address already in use in this namespace, by a listener that is not this tenant's`, holders);
  }
  if (probe < 0) {
    throw new ListenError(addr.text, errnoName(-probe), `listen ${addr.text}: ${errorText(-probe)}`);
  }
  const msg = failure instanceof Error ? failure.message : String(failure);
  throw new ListenError(addr.text, (failure as { code?: string })?.code ?? "ELISTEN", `listen ${addr.text}: ${msg}`);
}
