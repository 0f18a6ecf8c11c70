// The admin interface's contract: JSON shapes of /v1 and what the daemon must provide to serve them.
import type { StoredSettings } from "../config/settings.ts";
import type { TenantStats as MetricsTenantStats } from "../metrics/rates.ts";
import type { UpgradeResult } from "../control/handover.ts";

export type { UpgradeResult };

export type TenantState = "serving" | "waiting" | "failed";

/** Where a tenant comes from; only "tenants-dir" tenants can be changed through the admin interface. */
export type TenantSource = "config" | "flag" | "tenants-dir" | "discover" | "container";

export interface TenantView {
  name: string;
  netns: string;
  listen: string[];
  upstream: string;
  state: TenantState;
  /** Present when state is not "serving": why, with the errno name. */
  error?: string;
  source: TenantSource;
  /** Who added it ("cni:CONTAINER-ID"): it goes when its namespace file does. */
  owner?: string;
  headers: Record<string, string>;
  tenant_header: string;
  upstream_timeout_ms: number;
  max_connections: number;
  mode: "http" | "tcp";
  /** Ingress hosts and the backends inside the namespace they reach, when set. */
  ingress?: { hosts: string[]; backend?: string; tls_backend?: string; down?: string };
  /** upstream_proxy_protocol when set. */
  upstream_proxy_protocol?: "v2";
  /** Tenants with https:// listeners: the pair served now (files as resolved for this tenant). */
  tls?: {
    cert: string;
    key: string;
    /** The certificate served now: its expiry (ISO 8601) and days left; absent until a pair loaded. */
    not_after?: string;
    days_left?: number;
    /** Why the files on disk are not served (the previous pair still is, when there was one). */
    error?: string;
  };
}

export interface StatusView {
  version: string;
  pid: number;
  uptime_seconds: number;
  workers: number;
  config: string | null;
  tenants_dir: string;
  admin_socket: string;
  tenants: { total: number; serving: number; waiting: number; failed: number };
  /**
   * All tenants together: requests/s over the last second, client connections open now (both directions;
   * ingress_connections of them on ingress listeners, routed or not), descriptors.
   */
  /** 1 for a daemon started by hand, one more for each upgrade since; absent from daemons that predate upgrades. */
  generation?: number;
  /** When this generation took over from the previous one (ISO 8601), null for the first. */
  last_upgrade?: string | null;
  totals?: { requests_per_second: number; open_connections: number; ingress_connections?: number; descriptors_open: number; descriptors_limit: number };
}

/**
 * Body of PUT /v1/tenants/NAME: the same keys as a [tenants.NAME] table (and as a tenants-dir file).
 * Unset listen/upstream/… take the daemon's defaults.
 */
export type TenantInput = StoredSettings & {
  netns: string;
  owner?: string;
  headers?: Record<string, string>;
};

/** GET /v1/stats: one sample of every tenant's counters, and rates over the last second. */
export interface StatsView {
  /** Milliseconds since the epoch when the sample was taken. */
  time: number;
  tenants: TenantStats[];
}

/** One tenant's row of GET /v1/stats (the metrics compute it). */
export type TenantStats = MetricsTenantStats<TenantState>;

export interface PutResult {
  result: "created" | "replaced" | "unchanged";
  tenant: TenantView;
}

export interface ReloadResult {
  result: "reloaded";
  added: string[];
  removed: string[];
  replaced: string[];
  unchanged: number;
  /** Tenants-dir files that could not be read or were invalid, skipped (the rest loaded). */
  skipped: { file: string; error: string }[];
}

/** JSON body of every error response. */
export interface ErrorBody {
  error: string;
  /** The request field at fault, for 400s: "listen", "headers.X-Plan", … */
  field?: string;
}

/** An error of the admin app's own (a bad path or body), with its status code; the daemon's refusals are ControlErrors. */
export class AdminError extends Error {
  constructor(
    readonly status: 400 | 404 | 409 | 500,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = "AdminError";
  }
}

/** What the daemon exposes to the admin app (and what tests fake). */
export interface DaemonControl {
  status(): StatusView;
  tenants(): TenantView[];
  /** Validate, store in the tenants directory, apply. Throws ControlError "invalid" (with field) or "conflict" (not a tenants-dir tenant, a host taken). */
  putTenant(name: string, input: unknown): Promise<PutResult>;
  /** Remove from the tenants directory and detach. False when there is no such tenant. Throws ControlError "conflict" for config/flag/discovered tenants. */
  deleteTenant(name: string, owner?: string): Promise<boolean>;
  /** Same as SIGHUP. Throws ControlError "rejected" when the new configuration is invalid (the old one keeps running). */
  reload(): Promise<ReloadResult>;
  /**
   * Start a successor (this program, or `binary`) that takes over every listener; resolves once it serves
   * and this daemon starts draining. Throws ControlError "unavailable" (one is under way) or "failed".
   */
  upgrade?(binary?: string): Promise<UpgradeResult>;
  /** An upgrade is under way or done (this daemon is draining): answers close their connection. */
  upgrading?(): boolean;
  /** Prometheus text exposition of every counter (GET /metrics); absent in fakes that do not serve it. */
  metrics?(): string;
  /** Per-tenant counters and rates for `nsproxy top` (GET /v1/stats). */
  stats?(): StatsView;
}

export { DEFAULT_ADMIN_SOCKET, DEFAULT_TENANTS_DIR } from "../config/settings.ts";
