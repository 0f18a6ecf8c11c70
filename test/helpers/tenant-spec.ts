// A resolved tenant spec with the built-in defaults, for unit tests of the control plane (no config file read).
import type { TenantSpec } from "../../src/config/types.ts";

export function spec(name: string, extra: Partial<TenantSpec> = {}): TenantSpec {
  return {
    name,
    netns: `/run/netns/${name}`,
    listen: [{ host: "127.0.0.1", port: 8080, text: "127.0.0.1:8080" }],
    upstream: { origin: "http://127.0.0.1:9000", prefix: "", text: "http://127.0.0.1:9000" },
    tenantHeader: "X-Nsproxy-Tenant",
    headers: {},
    upstreamTimeoutMs: 30_000,
    maxConnections: 1000,
    ingressMaxConnections: 1000,
    ...extra,
  };
}
