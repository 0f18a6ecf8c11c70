// HostRouter: exact before wildcard, longest wildcard, what a Host value may carry (case, port, trailing dot, IP
// literals), claims and their conflicts, and the patterns refused. Ends with route() timed at 10,000 tenants (printed,
// not asserted).
import { describe, expect, test } from "bun:test";
import { fullRouter } from "../../test/helpers/host-routes.ts";
import { HostClaimError, HostRouter, hostNameProblem, normalizePattern } from "./host-router.ts";

const owner = (r: HostRouter<unknown>, host: string) => r.route(host)?.owner;

function router(): HostRouter<string> {
  const r = new HostRouter<string>();
  r.claim("acme", ["acme.example.com", "*.acme.example.com"], "10.0.0.1:3000");
  r.claim("shop", ["shop.acme.example.com"], "10.0.0.2:3000");
  r.claim("eu", ["*.eu.acme.example.com"], "10.0.0.3:3000");
  r.claim("root", ["*.example.com"], "10.0.0.4:3000");
  return r;
}

describe("route", () => {
  test("exact name, and its value", () => {
    expect(router().route("acme.example.com")).toEqual({ owner: "acme", value: "10.0.0.1:3000" });
    expect(router().route("shop.acme.example.com")).toEqual({ owner: "shop", value: "10.0.0.2:3000" });
  });

  test("an exact name beats a wildcard covering it", () => {
    const r = router();
    expect(owner(r, "shop.acme.example.com")).toBe("shop");
    expect(owner(r, "cart.acme.example.com")).toBe("acme");
  });

  test("a wildcard matches at any depth below its domain, the longest one winning", () => {
    const r = router();
    expect(owner(r, "a.acme.example.com")).toBe("acme");
    expect(owner(r, "x.y.acme.example.com")).toBe("acme");
    expect(owner(r, "a.shop.acme.example.com")).toBe("acme"); // shop holds the exact name only
    expect(owner(r, "paris.eu.acme.example.com")).toBe("eu");
    expect(owner(r, "a.b.paris.eu.acme.example.com")).toBe("eu");
    expect(owner(r, "other.example.com")).toBe("root");
    expect(owner(r, "a.b.other.example.com")).toBe("root");
  });

  test("a wildcard never matches its own domain", () => {
    const r = router();
    expect(owner(r, "eu.acme.example.com")).toBe("acme"); // *.acme, not *.eu.acme
    expect(owner(r, "example.com")).toBeUndefined();
    expect(owner(r, "com")).toBeUndefined();
  });

  test("no match", () => {
    const r = router();
    expect(r.route("example.org")).toBeUndefined();
    expect(r.route("acme.example.com.evil.test")).toBeUndefined();
    expect(r.route("notacme.example.org")).toBeUndefined();
    expect(new HostRouter().route("a.example")).toBeUndefined();
  });

  test("case, port and trailing dot are ignored", () => {
    const r = router();
    for (const h of ["ACME.Example.COM", "acme.example.com:8080", "acme.example.com.", "Acme.Example.Com.:443", "acme.example.com:"]) {
      expect({ h, o: owner(r, h) }).toEqual({ h, o: "acme" });
    }
    expect(owner(r, "X.Y.ACME.EXAMPLE.COM:80")).toBe("acme");
  });

  test("IP literals never route, not even through a wildcard", () => {
    const r = router();
    r.claim("net", ["*.net", "*.in-addr.arpa"], "x");
    for (const h of ["[::1]:80", "[::1]", "[fe80::1%25eth0]:443", "[acme.example.com]:80", "127.0.0.1", "127.0.0.1:8080", "10.0.0.1", "::1", "1.2.3.4.5"]) {
      expect({ h, o: owner(r, h) }).toEqual({ h, o: undefined });
    }
    // A numeric label is fine anywhere but last (no top-level domain is numeric: RFC 3696 §2).
    expect(owner(r, "10.0.0.1.in-addr.arpa")).toBe("net");
    expect(owner(r, "1.2.3.4.net")).toBe("net");
  });

  test("what is not a host name routes nowhere, even under a claimed wildcard", () => {
    const r = router();
    for (const h of [
      "",
      ".",
      ":80",
      "a..acme.example.com",
      ".acme.example.com",
      "a_b.acme.example.com",
      "a b.acme.example.com",
      "a/b.acme.example.com",
      "user@a.acme.example.com",
      "a.acme.example.com:http",
      "a.acme.example.com:80:80",
      "a.acme.example.com..",
      "\u212Acme.example.com", // the Kelvin sign lower-cases to "k"
      "\u0130.acme.example.com",
      `${"a".repeat(64)}.acme.example.com`,
    ]) {
      expect({ h, o: owner(r, h) }).toEqual({ h, o: undefined });
    }
  });
});

describe("claim", () => {
  test("exact vs exact, and wildcard vs wildcard, conflict; the error names the pattern and the owner", () => {
    const r = router();
    let err: unknown;
    try {
      r.claim("intruder", ["new.example.net", "ACME.example.com."], "x");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HostClaimError);
    const e = err as HostClaimError;
    expect([e.pattern, e.owner, e.claimant]).toEqual(["acme.example.com", "acme", "intruder"]);
    expect(e.message).toBe('ingress host "acme.example.com" is already claimed by tenant "acme"');
    expect(() => r.claim("intruder", ["*.ACME.example.com"], "x")).toThrow('ingress host "*.acme.example.com" is already claimed by tenant "acme"');
  });

  test("a refused claim changes nothing, not even the claimant's earlier claims", () => {
    const r = router();
    r.claim("intruder", ["mine.example.net"], "v1");
    expect(() => r.claim("intruder", ["other.example.net", "acme.example.com"], "v2")).toThrow(HostClaimError);
    expect(r.route("mine.example.net")).toEqual({ owner: "intruder", value: "v1" });
    expect(r.route("other.example.net")).toBeUndefined();
    expect(() => r.claim("intruder", ["other.example.net", "bad_name.example"], "v2")).toThrow(/"_" is not allowed/);
    expect(r.route("mine.example.net")).toEqual({ owner: "intruder", value: "v1" });
    expect(r.patternsOf("intruder")).toEqual(["mine.example.net"]);
  });

  test("an exact name and a wildcard covering it are not a conflict, in either order", () => {
    const r = new HostRouter<number>();
    r.claim("a", ["*.example.com"], 1);
    r.claim("b", ["b.example.com", "*.b.example.com"], 2);
    r.claim("c", ["c.example.org"], 3);
    r.claim("d", ["*.c.example.org", "*.org"], 4);
    expect([owner(r, "b.example.com"), owner(r, "x.b.example.com"), owner(r, "x.example.com")]).toEqual(["b", "b", "a"]);
    expect([owner(r, "c.example.org"), owner(r, "x.c.example.org"), owner(r, "example.org")]).toEqual(["c", "d", "d"]);
  });

  test("claiming again replaces the owner's patterns and value (set semantics)", () => {
    const r = router();
    r.claim("acme", ["acme.example.net", "acme.example.net", "ACME.example.net."], "10.0.0.9:3000");
    expect(r.patternsOf("acme")).toEqual(["acme.example.net"]);
    expect(r.route("acme.example.net")).toEqual({ owner: "acme", value: "10.0.0.9:3000" });
    expect(owner(r, "acme.example.com")).toBe("root");
    expect(owner(r, "a.acme.example.com")).toBe("root"); // *.example.com now
    expect(r.ownerOf("*.acme.example.com")).toBeUndefined();
    // Now free for someone else.
    r.claim("newco", ["acme.example.com"], "x");
    expect(owner(r, "acme.example.com")).toBe("newco");
  });

  test("an owner re-claiming a pattern it holds is no conflict", () => {
    const r = router();
    r.claim("acme", ["*.acme.example.com", "acme.example.com", "more.example.net"], "v2");
    expect(r.route("x.acme.example.com")).toEqual({ owner: "acme", value: "v2" });
    expect(owner(r, "more.example.net")).toBe("acme");
  });

  test("claiming nothing holds nothing", () => {
    const r = router();
    r.claim("acme", [], "v");
    expect(owner(r, "acme.example.com")).toBe("root");
    expect(r.patternsOf("acme")).toEqual([]);
  });

  test("release", () => {
    const r = router();
    r.release("eu");
    expect(owner(r, "paris.eu.acme.example.com")).toBe("acme");
    r.release("acme");
    expect(owner(r, "acme.example.com")).toBe("root");
    expect(owner(r, "x.acme.example.com")).toBe("root");
    expect(owner(r, "shop.acme.example.com")).toBe("shop");
    r.release("acme");
    r.release("never-claimed");
    expect(r.ownerOf("shop.acme.example.com")).toBe("shop");
  });

  test("ownerOf", () => {
    const r = router();
    expect(r.ownerOf("acme.example.com")).toBe("acme");
    expect(r.ownerOf("*.ACME.example.com.")).toBe("acme");
    expect(r.ownerOf("x.acme.example.com")).toBeUndefined(); // a pattern, not a route
    expect(r.ownerOf("*.*.x")).toBeUndefined();
    expect(r.ownerOf("*.eu.acme.example.com")).toBe("eu");
  });

  test("route() hands out one frozen object per claim", () => {
    const r = router();
    const a = r.route("acme.example.com")!;
    expect(r.route("x.acme.example.com")).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
  });
});

describe("normalizePattern", () => {
  test("normalized", () => {
    expect(normalizePattern("ACME.Example.com")).toBe("acme.example.com");
    expect(normalizePattern("*.Acme.Example.com.")).toBe("*.acme.example.com");
    expect(normalizePattern("localhost")).toBe("localhost");
    expect(normalizePattern("*.test")).toBe("*.test");
    expect(normalizePattern("xn--bcher-kva.example")).toBe("xn--bcher-kva.example");
    expect(normalizePattern("3com.example")).toBe("3com.example");
  });

  const refused: [string, string][] = [
    ["*.*.x", 'ingress host "*.*.x": only one leading "*." label is allowed, like "*.acme.example.com"'],
    ["a.*.example.com", 'ingress host "a.*.example.com": only one leading "*." label is allowed, like "*.acme.example.com"'],
    ["*", 'ingress host "*": a wildcard needs a domain after "*.", like "*.acme.example.com" (there is no catch-all)'],
    ["*.", 'ingress host "*.": a wildcard needs a domain after "*.", like "*.acme.example.com" (there is no catch-all)'],
    ["f*.example.com", 'ingress host "f*.example.com": "*" stands for whole labels only, as the first label: "*.acme.example.com"'],
    ["*acme.example.com", 'ingress host "*acme.example.com": "*" stands for whole labels only, as the first label: "*.acme.example.com"'],
    ["", 'ingress host "": empty'],
    [".", 'ingress host ".": empty'],
    ["acme.example.com:443", 'ingress host "acme.example.com:443": a host pattern has no port (it matches on every ingress listener)'],
    ["10.0.0.5", 'ingress host "10.0.0.5": an IP address, not a host name (route by name)'],
    ["[::1]", 'ingress host "[::1]": an IP address, not a host name (route by name)'],
    ["fe80::1", 'ingress host "fe80::1": an IP address, not a host name (route by name)'],
    ["https://acme.example.com", 'ingress host "https://acme.example.com": a host name, not a URL, like "acme.example.com"'],
    ["acme.example.com/api", 'ingress host "acme.example.com/api": a host name, not a URL, like "acme.example.com"'],
    ["acme_corp.example.com", 'ingress host "acme_corp.example.com": "_" is not allowed (letters, digits, "-" and "." only)'],
    [" acme.example.com", 'ingress host " acme.example.com": U+0020 is not allowed (letters, digits, "-" and "." only)'],
    ["bücher.example", 'ingress host "bücher.example": U+00FC is not allowed (letters, digits, "-" and "." only; write an internationalized name in its xn-- form)'],
    ["acme..example.com", 'ingress host "acme..example.com": empty label at offset 5'],
    [".acme.example.com", 'ingress host ".acme.example.com": empty label at offset 0'],
    ["acme.example.com..", 'ingress host "acme.example.com..": ends with an empty label'],
    ["-acme.example.com", 'ingress host "-acme.example.com": label "-acme" starts or ends with "-"'],
    [`${"a".repeat(64)}.com`, `ingress host "${"a".repeat(64)}.com": label "${"a".repeat(64)}" is longer than 63 bytes`],
    [`${"a.".repeat(127)}ab`, `ingress host "${"a.".repeat(127)}ab": longer than 253 bytes`],
  ];
  for (const [p, message] of refused) {
    test(`refused: ${JSON.stringify(p)}`, () => expect(() => normalizePattern(p)).toThrow(message));
  }

  test("a name of 253 bytes is the longest", () => {
    const n = `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(61)}`;
    expect(n.length).toBe(253);
    expect(normalizePattern(n)).toBe(n);
    expect(hostNameProblem(`${n}d`)).toBe("longer than 253 bytes");
  });
});

describe("10,000 tenants", () => {
  test("every kind of Host routes right against a full router; a claim there is refused as against an empty one", () => {
    const { router, kinds } = fullRouter();
    expect(() => router.claim("late", ["t9999.example.com"], 0)).toThrow(HostClaimError);
    for (const { hosts, want } of kinds) hosts.forEach((h, i) => expect(router.route(h)?.value).toBe(want(i)));
  });
});
