// The Prometheus text exposition (format 0.0.4) of a snapshot. Written by hand: the values already sit in typed
// arrays, and a registry library would rebuild label maps for 10,000 tenants x 20 series on every scrape.
import { DURATION_BUCKETS, LOCAL_REASONS, Stat } from "../engine/stats.ts";
import { type Snapshot, type TenantFigures, totals } from "./snapshot.ts";

export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** The label value of the aggregated series when there are more tenants than metrics_tenant_limit. */
export const ALL_TENANTS = "_all";

/** Per-tenant counter families: name, help, counter offset (names echo haproxy_frontend_* where one maps). */
const TENANT_COUNTERS: [name: string, help: string, stat: Stat][] = [
  ["nsproxy_tenant_bytes_in_total", "Bytes received from the tenant's clients.", Stat.BytesIn],
  ["nsproxy_tenant_bytes_out_total", "Bytes sent to the tenant's clients.", Stat.BytesOut],
  ["nsproxy_tenant_connections_total", "Client connections accepted.", Stat.ConnAccepted],
  ["nsproxy_tenant_connections_refused_total", "Client connections refused because the tenant had max_connections open.", Stat.ConnRefusedCap],
  ["nsproxy_tenant_ingress_connections_refused_total", "Ingress connections refused because the tenant had ingress_max_connections open.", Stat.IngressRefusedCap],
  ["nsproxy_tenant_upstream_connect_failures_total", "Upstream connections that could not be made (refused, unreachable, TLS, connect timeout).", Stat.UpstreamConnectFailures],
  ["nsproxy_tenant_tls_handshake_failures_total", "TLS handshakes that failed on the tenant's https:// listeners.", Stat.TlsHandshakeFailures],
  ["nsproxy_tenant_upstream_timeouts_total", "Upstream response heads that did not arrive within upstream_timeout.", Stat.UpstreamTimeouts],
];

function num(x: number): string {
  return Number.isFinite(x) ? String(x) : x > 0 ? "+Inf" : x < 0 ? "-Inf" : "NaN";
}

/** Tenant names are [A-Za-z0-9._-]: no escaping needed, but the label syntax is the format's. */
function tenantLabel(name: string): string {
  return `tenant="${name}"`;
}

export function exposition(s: Snapshot): string {
  const aggregated = s.tenants.length > s.tenantLimit;
  const rows: TenantFigures[] = aggregated ? [{ name: ALL_TENANTS, ...totals(s) }] : s.tenants;
  const out: string[] = [];
  const family = (name: string, type: "counter" | "gauge" | "histogram", help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);

  family("nsproxy_tenant_http_responses_total", "counter", "Responses from the upstream passed to the tenant's clients, by status class.");
  for (const t of rows) {
    const l = tenantLabel(t.name);
    for (let c = 0; c < 5; c++) out.push(`nsproxy_tenant_http_responses_total{${l},code="${c + 1}xx"} ${num(t.counters[Stat.Resp1xx + c]!)}`);
  }
  family("nsproxy_tenant_local_responses_total", "counter", "Responses nsproxy wrote itself (refused or failed requests), by status and reason.");
  for (const t of rows) {
    const l = tenantLabel(t.name);
    LOCAL_REASONS.forEach(([status, reason], i) => out.push(`nsproxy_tenant_local_responses_total{${l},code="${status}",reason="${reason}"} ${num(t.counters[Stat.Local + i]!)}`));
  }
  for (const [name, help, stat] of TENANT_COUNTERS) {
    family(name, "counter", help);
    for (const t of rows) out.push(`${name}{${tenantLabel(t.name)}} ${num(t.counters[stat]!)}`);
  }
  family("nsproxy_tenant_current_connections", "gauge", "Client connections open now.");
  for (const t of rows) out.push(`nsproxy_tenant_current_connections{${tenantLabel(t.name)}} ${t.open}`);
  family("nsproxy_tenant_ingress_current_connections", "gauge", "Ingress connections routed to the tenant open now.");
  for (const t of rows) out.push(`nsproxy_tenant_ingress_current_connections{${tenantLabel(t.name)}} ${t.ingressOpen}`);

  family("nsproxy_metrics_tenant_series_aggregated", "gauge", `1 when there are more tenants than metrics_tenant_limit and per-tenant series are summed into tenant="${ALL_TENANTS}".`);
  out.push(`nsproxy_metrics_tenant_series_aggregated ${aggregated ? 1 : 0}`);
  family("nsproxy_metrics_tenant_limit", "gauge", "metrics_tenant_limit: the most tenants with series of their own.");
  out.push(`nsproxy_metrics_tenant_limit ${s.tenantLimit}`);

  family("nsproxy_tenants", "gauge", "Tenants by state.");
  for (const state of ["serving", "waiting", "failed"] as const) out.push(`nsproxy_tenants{state="${state}"} ${s.states[state]}`);
  family("nsproxy_attach_failures_total", "counter", "Attempts to listen inside a tenant's namespace that failed (each is retried).");
  out.push(`nsproxy_attach_failures_total ${s.attachFailures}`);
  family("nsproxy_worker_replacements_total", "counter", "Workers that died or could not return to their namespace and were replaced.");
  out.push(`nsproxy_worker_replacements_total ${s.workerReplacements}`);
  family("nsproxy_descriptors_open", "gauge", "File descriptors open in the process.");
  out.push(`nsproxy_descriptors_open ${num(s.descriptorsOpen)}`);
  family("nsproxy_descriptors_limit", "gauge", "RLIMIT_NOFILE in force.");
  out.push(`nsproxy_descriptors_limit ${num(s.descriptorsLimit)}`);
  family("nsproxy_connections_refused_descriptors_total", "counter", "Client connections refused because the descriptor budget was spent.");
  out.push(`nsproxy_connections_refused_descriptors_total ${s.refusedAtDescriptorLimit}`);
  family("nsproxy_descriptors_share", "gauge", "The most descriptors each direction's connections may hold (the budget split when ingress is on).");
  for (const dir of ["egress", "ingress"] as const) out.push(`nsproxy_descriptors_share{direction="${dir}"} ${num(s.shares[dir])}`);
  family("nsproxy_ingress_connections_refused_descriptors_total", "counter", "Ingress connections refused because ingress's share of the descriptor budget was spent.");
  out.push(`nsproxy_ingress_connections_refused_descriptors_total ${s.ingressRefusedAtDescriptorLimit}`);
  family("nsproxy_connections_shed_total", "counter", "Idle connections closed because the descriptor limit was lowered below what was open.");
  out.push(`nsproxy_connections_shed_total ${s.shed}`);
  family("nsproxy_ingress_current_connections", "gauge", "Ingress client connections open now, routed to a tenant or not yet.");
  out.push(`nsproxy_ingress_current_connections ${s.ingressOpen}`);
  family("nsproxy_ingress_unrouted_total", "counter", "Ingress requests (404) and TLS connections (closed) that no tenant's ingress_hosts matched.");
  out.push(`nsproxy_ingress_unrouted_total ${s.ingressUnrouted}`);
  family("nsproxy_worker_event_loop_delay_seconds", "gauge", "How late each worker's last timer tick ran.");
  s.loopDelay.forEach((d, i) => out.push(`nsproxy_worker_event_loop_delay_seconds{worker="${i}"} ${num(d)}`));

  family("nsproxy_request_duration_seconds", "histogram", "Time from a request head to its response head (nsproxy's own answers included), all tenants.");
  let cumulative = 0;
  DURATION_BUCKETS.forEach((le, i) => {
    cumulative += s.histogram.buckets[i]!;
    out.push(`nsproxy_request_duration_seconds_bucket{le="${le}"} ${cumulative}`);
  });
  cumulative += s.histogram.buckets[DURATION_BUCKETS.length]!;
  out.push(`nsproxy_request_duration_seconds_bucket{le="+Inf"} ${cumulative}`);
  out.push(`nsproxy_request_duration_seconds_sum ${num(s.histogram.sum)}`);
  out.push(`nsproxy_request_duration_seconds_count ${s.histogram.count}`);
  return `${out.join("\n")}\n`;
}
