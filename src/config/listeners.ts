// Refuses two listeners on one address in one namespace: with SO_REUSEPORT both binds would succeed and the kernel
// would split connections between the tenants instead of failing.
import { type At, Invalid } from "./layer.ts";
import type { TenantSpec } from "./types.ts";

/** `whereOf` says where a tenant's listen addresses were configured, for the error's file:line or flag. */
export function checkListeners(tenants: TenantSpec[], whereOf: (tenant: string) => At): void {
  const seen = new Map<string, { tenant: string; text: string }>();
  for (const t of tenants) {
    for (const l of t.listen) {
      const id = `${t.netns}\0${canonicalHost(l.host)}\0${l.port}`;
      const first = seen.get(id);
      if (!first) {
        seen.set(id, { tenant: t.name, text: l.text });
        continue;
      }
      const what =
        first.tenant === t.name
          ? `tenant '${t.name}' lists ${l.text} twice`
          : `tenants '${first.tenant}' and '${t.name}' both listen on ${l.text}`;
      throw new Invalid(`${what} in ${t.netns}; each address may be used once per namespace`, whereOf(t.name));
    }
  }
}

/** "::1" and "0:0:0:0:0:0:0:1" are one address; URL's parser already knows the canonical IPv6 form. */
export function canonicalHost(host: string): string {
  if (!host.includes(":")) return host;
  try {
    return new URL(`http://[${host}]/`).hostname;
  } catch {
    // Zone ids ("fe80::1%eth0") are not URL syntax; compare those as written.
    return host.toLowerCase();
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
