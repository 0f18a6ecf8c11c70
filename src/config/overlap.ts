// When two listen addresses on one port are one address to the kernel: spellings, IPv4-mapped forms, wildcards. No imports: workers use it too.

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
