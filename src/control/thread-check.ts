// The window rule's invariant checked cheaply at runtime: no thread of this process stays in a tenant namespace.
import { logger } from "../log.ts";
import type { Namespaces, Workers } from "./seams.ts";

export class ThreadCheck {
  /** Attaches in flight: while any is, some worker may be inside a window, so the check waits. */
  private inflight = 0;
  private pending = false;

  constructor(
    private readonly namespaces: Pick<Namespaces, "strayThreads">,
    private readonly workers: Pick<Workers, "stranded">,
  ) {}

  /** An attach starts: a worker may enter a tenant namespace until `end()`. */
  begin(): void {
    this.inflight++;
  }

  end(): void {
    this.inflight--;
    if (this.inflight === 0 && this.pending) this.check();
  }

  /**
   * Only when no attach is in flight: during one, a worker is legitimately inside a tenant namespace
   * for a moment (checking then gave false alarms when many retries ran at once). Nor while a stranded
   * worker is ending: its thread is known to be in a tenant namespace until then. A violation is a
   * bug: say so loudly.
   */
  check(): void {
    if (this.inflight > 0 || this.workers.stranded > 0) {
      this.pending = true;
      return;
    }
    this.pending = false;
    try {
      const first = this.namespaces.strayThreads();
      if (first.length === 0) return;
      // An ingress connect enters a tenant's namespace for a few microseconds (in C, see libnetns.c):
      // a thread seen there once may just be doing that. One still there a moment later is stuck.
      setTimeout(() => {
        try {
          const again = new Set(this.namespaces.strayThreads().map((s) => `${s.tid} ${s.netns}`));
          for (const s of first) if (again.has(`${s.tid} ${s.netns}`)) logger.error(`thread ${s.tid} is in namespace ${s.netns}, not the process's own: this is a bug in nsproxy`);
        } catch {}
      }, 50);
    } catch (err) {
      // Out of descriptors (EMFILE) is the likely cause; the check is a safety net, not worth dying for.
      logger.warn(`could not check the threads' namespaces: ${(err as Error).message}`);
    }
  }
}
