// A live tenant as the admin API shows it (GET /v1/tenants): its spec, its state, its ingress and certificate.
import type { TenantView } from "../admin/types.ts";
import type { PairState } from "../tls/pairs.ts";
import type { Tenant } from "./tenant.ts";

export function tenantView(t: Tenant, pair: PairState | undefined): TenantView {
  const s = t.spec;
  const v: TenantView = {
    name: s.name,
    netns: s.netns,
    listen: s.listen.map((l) => l.text),
    upstream: s.upstream?.text ?? "",
    state: t.state,
    ...(t.state !== "serving" && t.error ? { error: t.error } : {}),
    source: s.source ?? "config",
    headers: s.headers,
    tenant_header: s.tenantHeader,
    upstream_timeout_ms: s.upstreamTimeoutMs,
    max_connections: s.maxConnections,
    mode: s.mode ?? "http",
  };
  if (s.owner) v.owner = s.owner;
  if (s.proxyProtocol) v.upstream_proxy_protocol = s.proxyProtocol;
  if (s.ingress) {
    v.ingress = {
      hosts: s.ingress.hosts,
      ...(s.ingress.backend ? { backend: s.ingress.backend.text } : {}),
      ...(s.ingress.tlsBackend ? { tls_backend: s.ingress.tlsBackend.text } : {}),
      ...(t.ingressDown ? { down: t.ingressDown } : {}),
    };
  }
  if (s.tls) {
    const served = pair?.served;
    v.tls = {
      cert: s.tls.cert,
      key: s.tls.key,
      ...(served ? { not_after: served.notAfter.toISOString(), days_left: Math.floor((served.notAfter.getTime() - Date.now()) / 86_400_000) } : {}),
      ...(pair?.error ? { error: pair.error } : {}),
    };
  }
  return v;
}
