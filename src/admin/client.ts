// The admin API's client, over the daemon's unix socket (the runtime's fetchUnix: Bun's `unix` option, a Deno HttpClient).
import { EXIT, NsproxyError } from "../errors.ts";
import { runtime } from "../runtime/index.ts";
import type { ErrorBody, PutResult, ReloadResult, StatsView, StatusView, TenantInput, TenantView, UpgradeResult } from "./types.ts";

/** Nothing listens on the admin socket: it is missing, or left behind by a daemon that is gone. */
export class DaemonNotRunning extends NsproxyError {
  constructor(
    readonly socket: string,
    options: { cause?: unknown } = {},
  ) {
    super(`daemon not running at ${socket}`, { exitCode: EXIT.runtime, cause: options.cause });
    this.name = "DaemonNotRunning";
  }
}

/** The daemon answered with an ErrorBody: its message, its status, and the request field at fault. */
export class AdminRequestError extends NsproxyError {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message, { exitCode: status === 400 || status === 409 ? EXIT.usage : EXIT.runtime });
    this.name = "AdminRequestError";
  }
}

// Error codes Bun's fetch gives when nothing accepts on the socket path.
const NOT_RUNNING = new Set(["ENOENT", "ECONNREFUSED", "FailedToOpenSocket", "ConnectionRefused"]);

/** A reload attaches every new tenant before it answers; a daemon that says nothing for this long is stuck. */
const DEFAULT_TIMEOUT_MS = 60_000;

/** How often a write refused during an upgrade is tried again. */
const RETRY_MS = 100;

export class AdminClient {
  constructor(
    readonly socketPath: string,
    private readonly timeoutMs = DEFAULT_TIMEOUT_MS,
  ) {}

  status(): Promise<StatusView> {
    return this.request("GET", "/v1/status");
  }

  /** Every tenant's counters and last-second rates (GET /v1/stats), for `nsproxy top`. */
  stats(): Promise<StatsView> {
    return this.request("GET", "/v1/stats");
  }

  tenants(): Promise<TenantView[]> {
    return this.request("GET", "/v1/tenants");
  }

  putTenant(name: string, input: TenantInput): Promise<PutResult> {
    return this.request("PUT", tenantPath(name), input);
  }

  /** False when the daemon has no such tenant (404). With `owner`, only while the tenant is that owner's (else a 409). */
  async deleteTenant(name: string, owner?: string): Promise<boolean> {
    try {
      await this.request("DELETE", `${tenantPath(name)}${owner === undefined ? "" : `?owner=${encodeURIComponent(owner)}`}`);
      return true;
    } catch (e) {
      if (e instanceof AdminRequestError && e.status === 404) return false;
      throw e;
    }
  }

  reload(): Promise<ReloadResult> {
    return this.request("POST", "/v1/reload");
  }

  /** Start a successor and wait until it serves (POST /v1/upgrade); the old daemon then drains and exits. */
  upgrade(binary?: string): Promise<UpgradeResult> {
    return this.request("POST", "/v1/upgrade", binary === undefined ? {} : { binary });
  }

  /**
   * A write refused with 503 ("upgrade in progress") is sent again until the upgrade is over: by then
   * the socket is the successor's (it read the tenants directory before the refusals began) or the old
   * daemon's again (the upgrade failed). Either way the write is applied once, by the daemon that stays.
   */
  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      try {
        return await this.requestOnce<T>(method, path, body);
      } catch (e) {
        if (!(e instanceof AdminRequestError && e.status === 503 && method !== "GET" && path !== "/v1/upgrade") || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }

  private async requestOnce<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await runtime.fetchUnix(this.socketPath, `http://localhost${path}`, {
        method,
        headers: body === undefined ? undefined : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      throw this.connectError(e);
    }
    const text = await res.text();
    if (!res.ok) throw replyError(res.status, text, `${method} ${path}`);
    if (text === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new NsproxyError(`admin API ${method} ${path}: the daemon at ${this.socketPath} answered HTTP ${res.status} with a body that is not JSON`);
    }
  }

  private connectError(e: unknown): NsproxyError {
    const code = (e as { code?: string })?.code ?? "";
    if (NOT_RUNNING.has(code)) return new DaemonNotRunning(this.socketPath, { cause: e });
    if (code === "EACCES" || code === "EPERM") {
      return new NsproxyError(`permission denied on the admin socket ${this.socketPath}: run as root or as the socket's owner`, { cause: e });
    }
    const name = (e as { name?: string })?.name;
    if (name === "TimeoutError") {
      return new NsproxyError(`the daemon at ${this.socketPath} did not answer within ${this.timeoutMs / 1000} s`, { cause: e });
    }
    return new NsproxyError(`cannot reach the daemon at ${this.socketPath}: ${code || (e as Error)?.message || String(e)}`, { cause: e });
  }
}

function tenantPath(name: string): string {
  return `/v1/tenants/${encodeURIComponent(name)}`;
}

function replyError(status: number, text: string, what: string): NsproxyError {
  let body: Partial<ErrorBody> | undefined;
  try {
    body = JSON.parse(text);
  } catch {
    // Not an ErrorBody: report the status alone.
  }
  if (body && typeof body.error === "string") {
    return new AdminRequestError(status, body.error, typeof body.field === "string" ? body.field : undefined);
  }
  return new AdminRequestError(status, `admin API ${what}: HTTP ${status}`);
}
