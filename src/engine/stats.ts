// What the engine counts, as offsets into plain Float64Arrays: counting is an indexed add, with no allocation on the request path.

/** Per-tenant counters, one Float64Array of Stat.COUNT per tenant per worker (summed across workers at scrape). */
export const enum Stat {
  /** Responses from the upstream, by status class. */
  Resp1xx,
  Resp2xx,
  Resp3xx,
  Resp4xx,
  Resp5xx,
  /** Bytes received from the tenant's clients, and sent to them. */
  BytesIn,
  BytesOut,
  ConnAccepted,
  /** Connections refused because the tenant had max_connections open. */
  ConnRefusedCap,
  /** Upstream connections that could not be made (refused, unreachable, TLS, connect timeout). */
  UpstreamConnectFailures,
  /** Upstream response heads that did not arrive within upstream_timeout. */
  UpstreamTimeouts,
  /** TLS handshakes that failed on an https:// listener (a tenant can cause millions: counted, not logged). */
  TlsHandshakeFailures,
  /** Ingress connections refused because the tenant had ingress_max_connections open (503, or closed for sni://). */
  IngressRefusedCap,
  /** Responses nsproxy wrote itself, one counter per reason (see LOCAL_REASONS). */
  Local,
  COUNT = Local + 11,
}

/** Why nsproxy answered a request itself: status and a label, in the order of their counters after Stat.Local. */
export const LOCAL_REASONS: readonly (readonly [status: number, reason: string])[] = [
  [400, "bad_request"],
  [405, "method_not_allowed"],
  [408, "request_timeout"],
  [414, "uri_too_long"],
  [431, "header_too_large"],
  [501, "transfer_coding"],
  [502, "bad_gateway"],
  [503, "over_capacity"],
  [504, "gateway_timeout"],
  [505, "http_version"],
  [500, "other"],
];

const LOCAL_INDEX = new Map(LOCAL_REASONS.map(([status], i) => [status, Stat.Local + i]));

/** The counter for a response nsproxy wrote itself with `status`. */
export function localStat(status: number): number {
  return LOCAL_INDEX.get(status) ?? Stat.Local + LOCAL_REASONS.length - 1;
}

/** Upper bounds (seconds) of the request-duration histogram: time from request head to response head. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/**
 * A worker's own figures, at the start of its Float64Array (tenant slots follow at WORKER_HEADER):
 * [0] event-loop delay of the last sweep (s), [1] connections refused at the descriptor budget,
 * [2 .. 2+B] histogram counts per bucket (the last one is +Inf), then the sum of durations and the count.
 */
export const W_LOOP_DELAY = 0;
export const W_FD_REFUSED = 1;
export const W_HIST = 2;
export const W_HIST_SUM = W_HIST + DURATION_BUCKETS.length + 1;
export const W_HIST_COUNT = W_HIST_SUM + 1;
/** Ingress requests and TLS connections no tenant took (unknown Host or server name, no SNI). */
export const W_INGRESS_UNROUTED = W_HIST_COUNT + 1;
/** Ingress connections refused at the descriptor budget (also counted in W_FD_REFUSED). */
export const W_INGRESS_FD_REFUSED = W_INGRESS_UNROUTED + 1;
/** Connections closed because the descriptor limit was lowered below what was open. */
export const W_SHED = W_INGRESS_FD_REFUSED + 1;
export const WORKER_HEADER = 32;

/** Tenant counters live in chunks of this many slots, one SharedArrayBuffer each, made as tenants arrive. */
export const SLOTS_PER_CHUNK = 1024;

/** Count one request duration (seconds) into a worker's histogram. */
export function observeDuration(w: Float64Array, seconds: number): void {
  let i = 0;
  while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
  w[W_HIST + i] = w[W_HIST + i]! + 1;
  w[W_HIST_SUM] = w[W_HIST_SUM]! + seconds;
  w[W_HIST_COUNT] = w[W_HIST_COUNT]! + 1;
}
