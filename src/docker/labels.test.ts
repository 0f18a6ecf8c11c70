// Unit tests of container labels as a tenant table: the image's labels dropped, each key validated as `tenant add` validates.
import { describe, expect, test } from "bun:test";
import { loadLayered } from "../config/load.ts";
import { containerTenant, enabled, LabelError, ownLabels, tenantNameOf } from "./labels.ts";

const loaded = loadLayered({ flags: { listen: ["127.0.0.1:8080"], upstream: "http://127.0.0.1:9000" } });

function refusal(labels: Record<string, string>): { label?: string; message: string } {
  try {
    containerTenant("web", "/proc/1/ns/net", labels, loaded);
  } catch (e) {
    if (e instanceof LabelError) return { label: e.label, message: e.message };
    throw e;
  }
  throw new Error("accepted");
}

describe("ownLabels", () => {
  test("a label whose key and value are the image's is the image's: dropped and named; a changed value is the operator's", () => {
    const image = { "nsproxy.enable": "true", "nsproxy.header.X-Plan": "gold", "org.opencontainers.image.title": "x" };
    const container = { ...image, "nsproxy.header.X-Plan": "silver", "nsproxy.header.X-Tier": "1" };
    const { own, ignored } = ownLabels(container, image);
    expect(own).toEqual({ "nsproxy.header.X-Plan": "silver", "nsproxy.header.X-Tier": "1" });
    expect(ignored).toEqual(["nsproxy.enable"]);
    expect(enabled(own)).toBe(false);
  });

  test("only nsproxy.enable=true (any case) opts in", () => {
    expect(enabled({ "nsproxy.enable": "TRUE" })).toBe(true);
    expect(enabled({ "nsproxy.enable": "yes" })).toBe(false);
    expect(enabled({})).toBe(false);
  });
});

describe("containerTenant", () => {
  test("every tenant key as a label: lists split on commas, headers one label each, defaults filled in", () => {
    const spec = containerTenant("web", "/proc/42/ns/net", {
      "nsproxy.enable": "true",
      "nsproxy.listen": "127.0.0.1:80, 127.0.0.1:81",
      "nsproxy.header.X-Plan": "gold",
      "nsproxy.max_connections": "50",
      "nsproxy.upstream_insecure": "false",
      "nsproxy.ingress_hosts": "web.example.com,*.web.example.com",
      "nsproxy.ingress_backend": "127.0.0.1:3000",
      "com.example.other": "ignored",
    }, loaded);
    expect(spec.name).toBe("web");
    expect(spec.netns).toBe("/proc/42/ns/net");
    expect(spec.source).toBe("container");
    expect(spec.listen.map((l) => l.text)).toEqual(["127.0.0.1:80", "127.0.0.1:81"]);
    expect(spec.upstream!.text).toBe("http://127.0.0.1:9000");
    expect(spec.maxConnections).toBe(50);
    expect(spec.headers).toEqual({ "X-Plan": "gold" });
    expect(spec.ingress?.hosts).toEqual(["web.example.com", "*.web.example.com"]);
  });

  test("a bad value, an unknown key, the namespace or a protected header: refused naming the label", () => {
    expect(refusal({ "nsproxy.max_connections": "lots" }).label).toBe("nsproxy.max_connections");
    expect(refusal({ "nsproxy.upstream": "ftp://x" }).label).toBe("nsproxy.upstream");
    const typo = refusal({ "nsproxy.upstrem": "http://127.0.0.1:1" });
    expect(typo.label).toBe("nsproxy.upstrem");
    expect(typo.message).toContain("did you mean 'upstream'");
    expect(refusal({ "nsproxy.netns": "/run/netns/other" }).label).toBe("nsproxy.netns");
    expect(refusal({ "nsproxy.header.X-Nsproxy-Tenant": "someone-else" }).label).toBe("nsproxy.header.X-Nsproxy-Tenant");
    expect(refusal({ "nsproxy.upstream_insecure": "maybe" }).label).toBe("nsproxy.upstream_insecure");
  });
});

describe("tenantNameOf", () => {
  test("nsproxy.tenant names the tenant, else the container's name; either must be a valid tenant name, and the label is no tenant key", () => {
    expect(tenantNameOf("web-7f3a", { "nsproxy.tenant": "shop" })).toBe("shop");
    expect(tenantNameOf("web-7f3a", {})).toBe("web-7f3a");
    const bad = (name: string, labels: Record<string, string>) => {
      try {
        tenantNameOf(name, labels);
      } catch (e) {
        if (e instanceof LabelError) return { label: e.label, message: e.message };
      }
      throw new Error("accepted");
    };
    expect(bad("web", { "nsproxy.tenant": "../etc" })).toEqual({ label: "nsproxy.tenant", message: '"../etc" is not a valid tenant name ([A-Za-z0-9][A-Za-z0-9._-]{0,63})' });
    expect(bad("web", { "nsproxy.tenant": "" }).label).toBe("nsproxy.tenant");
    expect(bad("x".repeat(65), {}).label).toBeUndefined();
    expect(containerTenant("shop", "/proc/1/ns/net", { "nsproxy.tenant": "shop" }, loaded).name).toBe("shop");
  });
});
