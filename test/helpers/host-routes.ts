// A HostRouter holding 10,000 tenants (an exact and a wildcard pattern each) and Host lists of every kind against it:
// the unit test checks each routes right, bench/host-router.ts times them.
import { HostRouter } from "../../src/engine/host-router.ts";

export const TENANTS = 10_000;

export interface HostKind {
  what: string;
  hosts: string[];
  /** The tenant index the i-th host must route to, or undefined for a miss. */
  want: (i: number) => number | undefined;
}

export function fullRouter(): { router: HostRouter<number>; kinds: HostKind[] } {
  const router = new HostRouter<number>();
  for (let i = 0; i < TENANTS; i++) router.claim(`t${i}`, [`t${i}.example.com`, `*.t${i}.example.com`], i);
  const many = (f: (i: number) => string) => Array.from({ length: 1000 }, (_, i) => f(i));
  const kinds: HostKind[] = [
    { what: "exact", hosts: many((i) => `t${(i * 7) % TENANTS}.example.com`), want: (i) => (i * 7) % TENANTS },
    { what: "exact, Host with port and capitals", hosts: many((i) => `T${(i * 7) % TENANTS}.Example.com:8443`), want: (i) => (i * 7) % TENANTS },
    { what: "wildcard, 1 label deep", hosts: many((i) => `www.t${(i * 13) % TENANTS}.example.com`), want: (i) => (i * 13) % TENANTS },
    { what: "wildcard, 4 labels deep", hosts: many((i) => `a.b.c.api.t${(i * 13) % TENANTS}.example.com`), want: (i) => (i * 13) % TENANTS },
    { what: "miss", hosts: many((i) => `www.u${i}.example.org`), want: () => undefined },
    { what: "worst case: 127 labels, a miss", hosts: many((i) => `${"a.".repeat(125)}${i}x`), want: () => undefined },
  ];
  return { router, kinds };
}
