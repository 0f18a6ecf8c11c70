// Unit tests of the rules that keep wanted tenants apart, and of which source wins a name.
import { describe, expect, test } from "bun:test";
import type { Loaded } from "../config/load.ts";
import { clashOf, DesiredTenants } from "./desired.ts";
import { spec } from "../../test/helpers/tenant-spec.ts";

describe("clashOf", () => {
  test("one address in one namespace is one tenant's: a conflict on listen naming the owner", () => {
    const other = spec("acme");
    const mine = spec("globex", { netns: "/run/netns/acme" });
    expect(clashOf(mine, [other])).toEqual({ field: "listen", message: "tenant 'acme' already listens on 127.0.0.1:8080 in /run/netns/acme" });
  });

  test("the same address in another namespace, or another port, is no clash; nor is a tenant with itself", () => {
    expect(clashOf(spec("globex"), [spec("acme")])).toBeUndefined();
    const port = spec("globex", { netns: "/run/netns/acme", listen: [{ host: "127.0.0.1", port: 8081, text: "127.0.0.1:8081" }] });
    expect(clashOf(port, [spec("acme")])).toBeUndefined();
    expect(clashOf(spec("acme"), [spec("acme")])).toBeUndefined();
  });

  test("an IPv6 address spelt two ways is one address", () => {
    const v6 = (name: string, host: string) => spec(name, { netns: "/run/netns/x", listen: [{ host, port: 80, text: `[${host}]:80` }] });
    expect(clashOf(v6("b", "0:0:0:0:0:0:0:1"), [v6("a", "::1")])?.field).toBe("listen");
  });

  test("two paths of one namespace are one namespace: the clash is by what the kernel sees, not by the path string", () => {
    // /run/netns/B, /var/run/netns/B and /proc/42/ns/net of a process inside B: one nsfs inode.
    const table: Record<string, string> = { "/run/netns/B": "4:4026532400", "/var/run/netns/B": "4:4026532400", "/proc/42/ns/net": "4:4026532400", "/run/netns/C": "4:4026532500" };
    const namespaceOf = (p: string) => table[p] ?? `path:${p}`;
    const b = spec("b", { netns: "/run/netns/B" });
    for (const alias of ["/var/run/netns/B", "/proc/42/ns/net"]) {
      expect(clashOf(spec("alias", { netns: alias }), [b], namespaceOf)).toEqual({
        field: "listen",
        message: `tenant 'b' already listens on 127.0.0.1:8080 in /run/netns/B (the namespace ${alias} names too)`,
      });
    }
    expect(clashOf(spec("c", { netns: "/run/netns/C" }), [b], namespaceOf)).toBeUndefined();
    // Not there yet: only the same path clashes (the reconciler checks again when both are attached).
    expect(clashOf(spec("later", { netns: "/run/netns/D" }), [spec("d", { netns: "/run/netns/E" })], namespaceOf)).toBeUndefined();
  });

  test("a wildcard covers every address of its family on its port, and [::] (dual-stack, as nsproxy listens) covers IPv4 too", () => {
    const at = (name: string, host: string, port = 8300) => spec(name, { netns: "/run/netns/x", listen: [{ host, port, text: host.includes(":") ? `[${host}]:${port}` : `${host}:${port}` }] });
    const clash = (a: string, b: string, port?: number) => clashOf(at("w2", b, port), [at("w1", a)])?.message;
    expect(clash("0.0.0.0", "127.0.0.1")).toBe("tenant 'w1' already listens on 0.0.0.0:8300 in /run/netns/x, which covers 127.0.0.1:8300");
    expect(clash("127.0.0.1", "0.0.0.0")).toBe("tenant 'w1' already listens on 127.0.0.1:8300 in /run/netns/x, which covers 0.0.0.0:8300");
    expect(clash("::", "::1")).toContain("tenant 'w1' already listens on [::]:8300");
    expect(clash("::1", "::")).toContain("tenant 'w1'");
    expect(clash("::", "127.0.0.1")).toContain("tenant 'w1'");
    expect(clash("0.0.0.0", "::")).toContain("tenant 'w1'");
    expect(clash("::ffff:127.0.0.1", "127.0.0.1")).toContain("tenant 'w1'");
    expect(clash("::ffff:127.0.0.1", "0.0.0.0")).toContain("tenant 'w1'");
    // Different addresses of one family, a specific IPv6 address beside 0.0.0.0, another port: no clash.
    expect(clash("127.0.0.1", "127.0.0.2")).toBeUndefined();
    expect(clash("0.0.0.0", "::1")).toBeUndefined();
    expect(clash("::1", "127.0.0.1")).toBeUndefined();
    expect(clash("0.0.0.0", "127.0.0.1", 8301)).toBeUndefined();
  });

  test("the namespace is looked at only when the addresses could clash", () => {
    const looked: string[] = [];
    const namespaceOf = (p: string) => (looked.push(p), p);
    clashOf(spec("globex", { listen: [{ host: "127.0.0.1", port: 9, text: "127.0.0.1:9" }] }), [spec("acme")], namespaceOf);
    expect(looked).toEqual([]);
    clashOf(spec("globex"), [spec("acme")], namespaceOf);
    expect(looked.sort()).toEqual(["/run/netns/acme", "/run/netns/globex"]);
  });

  test("an ingress host another tenant holds is a conflict on ingress_hosts, checked after the listeners", () => {
    const ingress = (hosts: string[]) => ({ hosts });
    const owner = spec("acme", { ingress: ingress(["a.example", "b.example"]) });
    expect(clashOf(spec("globex", { ingress: ingress(["b.example"]) }), [owner])).toEqual({ field: "ingress_hosts", message: "ingress host b.example already belongs to tenant 'acme'" });
    const both = spec("globex", { netns: "/run/netns/acme", ingress: ingress(["a.example"]) });
    expect(clashOf(both, [owner])?.field).toBe("listen");
    expect(clashOf(spec("globex", { ingress: ingress(["c.example"]) }), [owner])).toBeUndefined();
  });
});

describe("DesiredTenants.all", () => {
  test("a name is the config's first, then the tenants directory's, then discovery's", () => {
    const declared = spec("acme", { source: "config" });
    const loaded = { config: { tenants: [declared], discover: [] }, defaults: {} } as unknown as Loaded;
    const d = new DesiredTenants(loaded);
    d.stored.set("acme", spec("acme", { source: "tenants-dir" }));
    d.stored.set("globex", spec("globex", { source: "tenants-dir" }));
    d.discovered.set("globex", spec("globex", { source: "discover" }));
    d.discovered.set("initech", spec("initech", { source: "discover" }));
    expect(d.all().map((s) => `${s.name}:${s.source}`)).toEqual(["acme:config", "globex:tenants-dir", "initech:discover"]);
    expect(d.explicit("acme")).toBe(declared);
    expect(d.explicit("globex")).toBeUndefined();
  });
});

describe("DesiredTenants.dropOrphans", () => {
  test("an owned tenant whose namespace is gone is removed, file and all; others stay", async () => {
    const { mkdtempSync, existsSync, rmSync } = await import("node:fs");
    const { writeTenantFile } = await import("../store/tenants-dir.ts");
    const dir = mkdtempSync("/tmp/nsproxy-orphans-");
    try {
      const loaded = { config: { tenants: [], discover: [], tenantsDir: dir }, defaults: {} } as unknown as Loaded;
      const d = new DesiredTenants(loaded);
      for (const [name, owner] of [["pod-gone", "cni:aaa"], ["pod-here", "cni:bbb"], ["hand-gone", undefined]] as const) {
        writeTenantFile(dir, name, { netns: `/run/netns/${name}`, ...(owner ? { owner } : {}) });
        d.stored.set(name, spec(name, { source: "tenants-dir", ...(owner ? { owner } : {}) }));
      }
      const gone = (netns: string) => netns.endsWith("-gone");
      expect(d.dropOrphans(gone)).toEqual(["pod-gone"]);
      expect([...d.stored.keys()].sort()).toEqual(["hand-gone", "pod-here"]);
      expect(existsSync(`${dir}/pod-gone.toml`)).toBe(false);
      expect(existsSync(`${dir}/hand-gone.toml`)).toBe(true);
      expect(d.dropOrphans(gone)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("namespaceGone: a missing file in a directory that is there; never a missing directory", async () => {
    const { namespaceGone } = await import("./desired.ts");
    expect(namespaceGone("/proc/self/ns/net")).toBe(false);
    expect(namespaceGone("/tmp/nsproxy-no-such-netns-file")).toBe(true);
    expect(namespaceGone("/nsproxy-no-such-dir/netns-1")).toBe(false);
    expect(namespaceGone("/proc/999999999/ns/net")).toBe(true);
  });
});
