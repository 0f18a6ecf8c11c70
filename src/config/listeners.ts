// Refuses two listeners on overlapping addresses in one namespace (however it is named): with SO_REUSEPORT both binds
// would succeed and the kernel would split connections between the tenants instead of failing.
import { type At, Invalid } from "./layer.ts";
import type { TenantSpec } from "./types.ts";

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

/** A listen host as the kernel compares binds: dotted IPv4, or canonical [IPv6]; an IPv4-mapped IPv6 address is its IPv4 one. */
function bindHost(host: string): string {
  const c = canonicalHost(host);
  const mapped = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/.exec(c);
  if (!mapped) return c;
  const hi = parseInt(mapped[1]!, 16);
  const lo = parseInt(mapped[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** One address however written ("::1" and "0:0::1"; "::ffff:127.0.0.1" and "127.0.0.1"). */
export function sameHost(a: string, b: string): boolean {
  return bindHost(a) === bindHost(b);
}

/**
 * Whether two listeners on one port in one namespace would take each other's connections: the same
 * address, or either is the wildcard of the other's family. [::] covers IPv4 too: nsproxy's listeners
 * (Bun.listen and Deno.listen alike) are dual-stack (IPV6_V6ONLY 0, as `ss -lte` shows), so [::]:P
 * receives 127.0.0.1:P unless a more specific listener takes it, and the kernel refuses to bind
 * 127.0.0.1:P beside it without SO_REUSEPORT.
 */
export function hostsOverlap(a: string, b: string): boolean {
  const x = bindHost(a);
  const y = bindHost(b);
  if (x === y || x === "[::]" || y === "[::]") return true;
  const v4 = !x.startsWith("[") && !y.startsWith("[");
  return v4 && (x === "0.0.0.0" || y === "0.0.0.0");
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
