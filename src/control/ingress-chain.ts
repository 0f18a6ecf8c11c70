// Ingress namespace descriptors handed to the workers: one tenant's updates in order, an fd closed only once no worker can use it.
import type { Namespaces, Workers } from "./seams.ts";
import type { Tenant } from "./tenant.ts";

export class IngressChain {
  constructor(
    private readonly workers: Workers,
    private readonly namespaces: Pick<Namespaces, "close">,
    /** Whether `t` is still the live tenant of its name (not removed or replaced by another record). */
    private readonly live: (t: Tenant) => boolean,
  ) {}

  /**
   * Point every worker's ingress entry for `t` at namespace fd `fd` (-1 with `down`: its hosts answer
   * 503). Updates of one tenant run in order, and the fd they replace is closed only after every worker
   * acknowledged the new one: a closed fd number could be reused for another tenant's namespace.
   */
  update(t: Tenant, fd: number, down?: string): Promise<void> {
    return this.queue(t, async () => {
      const before = t.ingressFd;
      if (!this.live(t)) {
        // Removed meanwhile (its drop is queued after this): this fd was never given out.
        if (fd >= 0) this.namespaces.close(fd);
        return;
      }
      await this.workers.ingressSet(t.spec, fd, fd >= 0 ? undefined : down);
      t.ingressFd = fd >= 0 ? fd : undefined;
      t.ingressDown = fd >= 0 ? undefined : down;
      if (before !== undefined && before !== fd) this.namespaces.close(before);
    });
  }

  /** The tenant's hosts are gone from every worker; then its fd is closed. */
  remove(t: Tenant): Promise<void> {
    return this.queue(t, async () => {
      await this.workers.ingressDrop(t.spec.name);
      if (t.ingressFd !== undefined) this.namespaces.close(t.ingressFd);
      t.ingressFd = undefined;
      t.ingressDown = undefined;
    });
  }

  /** Worker `index` was replaced: give it `t`'s entry as the others have it. */
  resend(t: Tenant, index: number): Promise<void> {
    return this.queue(t, () => this.workers.ingressSet(t.spec, t.ingressFd ?? -1, t.ingressDown ?? (t.ingressFd === undefined ? "not attached yet" : undefined), index));
  }

  /** Run `step` after every ingress update of `t` queued before it (whether those succeeded or not). */
  private queue(t: Tenant, step: () => Promise<void>): Promise<void> {
    t.ingressChain = (t.ingressChain ?? Promise.resolve()).then(step, step);
    return t.ingressChain;
  }
}
