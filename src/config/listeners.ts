// Refuses two listeners on overlapping addresses in one namespace (however it is named): with SO_REUSEPORT both binds
// would succeed and the kernel would split connections between the tenants instead of failing.
import { type At, Invalid } from "./layer.ts";
import { hostsOverlap, sameHost } from "./overlap.ts";
import type { TenantSpec } from "./types.ts";

export { canonicalHost } from "./overlap.ts";

/**
 * `whereOf` says where a tenant's listen addresses were configured, for the error's file:line or flag.
 * `namespaceOf` names the namespace a path is (its nsfs dev:ino when it can be told now): two paths of
 * one namespace are one namespace.
 */
export function checkListeners(tenants: TenantSpec[], whereOf: (tenant: string) => At, namespaceOf: (path: string) => string = (p) => p): void {
  const seen = new Map<string, { tenant: string; netns: string; host: string; text: string }[]>();
  for (const t of tenants) {
    const ns = namespaceOf(t.netns);
    for (const l of t.listen) {
      const key = `${ns}\0${l.port}`;
      const bucket = seen.get(key) ?? [];
      const first = bucket.find((b) => (b.tenant === t.name ? sameHost(b.host, l.host) : hostsOverlap(b.host, l.host)));
      if (!first) {
        bucket.push({ tenant: t.name, netns: t.netns, host: l.host, text: l.text });
        seen.set(key, bucket);
        continue;
      }
      const what =
        first.tenant === t.name
          ? `tenant '${t.name}' lists ${l.text} twice`
          : `tenants '${first.tenant}' and '${t.name}' both listen on ${l.text}${sameHost(first.host, l.host) ? "" : ` (${first.text} covers it)`}`;
      const where = first.netns === t.netns ? t.netns : `${t.netns}, the namespace '${first.tenant}' names ${first.netns}`;
      throw new Invalid(`${what} in ${where}; each address may be used once per namespace`, whereOf(t.name));
    }
  }
}

/** Two tenants may not claim one ingress host: a request for it could go to either. Exact names and wildcards are separate claims. */
export function checkIngressHosts(tenants: TenantSpec[], whereOf: (tenant: string) => At): void {
  const owner = new Map<string, string>();
  for (const t of tenants) {
    for (const h of t.ingress?.hosts ?? []) {
      const first = owner.get(h);
      if (first === undefined) {
        owner.set(h, t.name);
        continue;
      }
      throw new Invalid(`ingress host ${h} is claimed by tenants '${first}' and '${t.name}'; each host may belong to one tenant`, whereOf(t.name));
    }
  }
}
