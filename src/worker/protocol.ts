// Messages between the main thread and the pinned workers that hold the listeners.
import type { EngineSettings, IngressListen, TenantSpec } from "../config/types.ts";
import type { WorkerFaults } from "../faults.ts";
import type { AttachMaterial } from "./tenant-group.ts";
import type { IngressTenant } from "./ingress.ts";

export interface WorkerOptions {
  accessLog: boolean;
  /** --verbose: workers send their (rate-limited) debug lines too. */
  debug?: boolean;
  logFormat: "text" | "json";
  /** When a tenant is re-attached with a new spec, how long its old listeners' requests may finish. */
  replaceGraceMs: number;
  /** Fault injection for tests (src/faults.ts): set only for first-generation workers of a source run. */
  faults?: WorkerFaults;
  /** Limits and timeouts of the HTTP engine. */
  engine: EngineSettings;
  /** Counters shared by every worker (see shared-counts.ts). */
  counts: SharedArrayBuffer;
  /** This worker's own figures (engine/stats.ts W_*, WORKER_HEADER doubles), read by the main thread. */
  stats: SharedArrayBuffer;
  /** Its tenant counters so far: chunk k holds slots k*SLOTS_PER_CHUNK.., Stat.COUNT doubles each. */
  statsChunks: SharedArrayBuffer[];
}

export type ToWorker =
  | { type: "init"; options: WorkerOptions }
  /**
   * Listen on every address of `spec` inside the namespace open at `nsFd` (an fd of this process);
   * `material`: what the main thread read from files (the https:// listeners' pair, an upstream CA).
   * `exclusive`: no other worker listens for this tenant, so an address held by any socket but the
   * tenant's own old listeners is refused rather than shared (see window.ts). False where this daemon's
   * other workers hold it, or where the previous generation does during an upgrade (control/successor.ts).
   * `migrate`: listeners of another generation close soon: set tcp_migrate_req in the namespace.
   */
  | { type: "attach"; id: number; spec: TenantSpec; nsFd: number; slot: number; material?: AttachMaterial; exclusive?: boolean; migrate?: boolean }
  /** Stop accepting for tenant `name`; close its connections after `graceMs`. */
  | { type: "detach"; id: number; name: string; graceMs: number }
  /** Stop every listener; answer when in-flight requests are done or `graceMs` has passed. */
  | { type: "stop"; id: number; graceMs: number }
  /** Another chunk of tenant counters (sent before the first attach that needs it). */
  | { type: "stats-chunk"; chunk: number; sab: SharedArrayBuffer }
  /** Ingress: listen on these host addresses (HTTP by Host, or TLS by SNI); answered done or failed. */
  | { type: "ingress-listen"; id: number; listen: IngressListen[] }
  /** Ingress: add or replace a tenant's hosts and backends (or mark them down: 503). */
  | { type: "ingress-set"; id: number; tenant: IngressTenant }
  /** Ingress: the tenant is gone; its hosts are unknown from now on. */
  | { type: "ingress-drop"; id: number; name: string }
  /** Several of the above in order: one message instead of one per tenant (start-up sends thousands). */
  | { type: "batch"; messages: ToWorker[] };

/** Why an attach (or an ingress listen) did not happen: the message, an errno-like code, the listener at fault. */
export interface AttachFailure {
  message: string;
  code: string;
  listen?: string;
  /** The address is another socket's: inodes of the sockets listening there (the main thread finds their process). */
  holders?: number[];
}

export type FromWorker =
  /** Started; `tid` is its thread's id (the main thread knows when that thread is really gone). */
  | { type: "ready"; tid: number }
  | { type: "done"; id: number }
  | { type: "failed"; id: number; message: string; code: string; listen?: string; holders?: number[] }
  /**
   * The worker could not return to its own namespace: it must never be used again. It has stopped
   * accepting and dialing, and lets its exchanges in flight finish for a moment.
   */
  | { type: "fatal"; message: string }
  /** After "fatal": its exchanges are done; terminate it. */
  | { type: "drained" }
  /** A line for the main thread's log (workers rate-limit what a tenant can cause). */
  | { type: "log"; level: "warn" | "info" | "debug"; message: string }
  /** The answers a batch produced at once, in order. */
  | { type: "batch"; messages: FromWorker[] };
