// Who listens where, by namespace identity: the check at attach that two tenants never share an address in one namespace.
import { hostsOverlap } from "../config/overlap.ts";
import type { TenantSpec } from "../config/types.ts";

/**
 * The desired-state check compares namespaces as they are when a tenant is added; a namespace that
 * appears later, or is replaced, can make two accepted tenants name one namespace. So every attach
 * claims its addresses under the identity (dev:ino) it actually opened, before any worker binds: the
 * first claim stands, a later overlapping one fails with the owner's name. A claim lasts while the
 * tenant listens (or is attaching), and goes when it fails, is removed, or loses its namespace.
 */
export class ListenClaims {
  private readonly byIdentity = new Map<string, Map<string, TenantSpec>>();
  private readonly identityOf = new Map<string, string>();

  /** Claim `spec`'s addresses in namespace `identity` (dropping its previous claim): undefined, or why not. */
  claim(spec: TenantSpec, identity: string): string | undefined {
    this.release(spec.name);
    const holders = this.byIdentity.get(identity);
    for (const other of holders?.values() ?? []) {
      for (const l of spec.listen) {
        const m = other.listen.find((m) => m.port === l.port && hostsOverlap(m.host, l.host));
        if (!m) continue;
        const alias = other.netns === spec.netns ? "" : ` (${spec.netns} is the namespace ${other.netns} names)`;
        return `tenant '${other.name}' already listens on ${m.text} in this namespace${alias}; ${l.text} is refused`;
      }
    }
    if (spec.listen.length === 0) return undefined;
    if (holders) holders.set(spec.name, spec);
    else this.byIdentity.set(identity, new Map([[spec.name, spec]]));
    this.identityOf.set(spec.name, identity);
    return undefined;
  }

  release(name: string): void {
    const identity = this.identityOf.get(name);
    if (identity === undefined) return;
    this.identityOf.delete(name);
    const holders = this.byIdentity.get(identity)!;
    holders.delete(name);
    if (holders.size === 0) this.byIdentity.delete(identity);
  }
}
