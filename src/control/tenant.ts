// A live tenant as the main thread tracks it: its spec, its state, and what its attach holds.
import type { TenantState } from "../admin/types.ts";
import type { TenantSpec } from "../config/types.ts";

export interface Tenant {
  spec: TenantSpec;
  state: TenantState;
  error?: string;
  /** dev:ino of the namespace it is attached to, while serving. */
  identity?: string;
  attempts: number;
  retry?: ReturnType<typeof setTimeout>;
  /** Bumped on every change or removal: the outcome of an attach started for an older generation is ignored. */
  generation: number;
  /** The certificate pair it uses (key of CertificatePairs.pairs), while it has https:// listeners. */
  pair?: string;
  /** Ingress: the namespace fd the workers connect through now (kept open while they may use it). */
  ingressFd?: number;
  /** Why its ingress hosts answer 503 now (namespace missing or gone). */
  ingressDown?: string;
  /** Ingress updates of this tenant, one after another: an fd is closed only once every worker has let it go. */
  ingressChain?: Promise<void>;
}

export interface ApplyResult {
  added: string[];
  removed: string[];
  replaced: string[];
  unchanged: number;
}

/** What is served, without where it was declared: two specs equal here need no re-attach. */
export function sameSpec(a: TenantSpec, b: TenantSpec): boolean {
  const { source: _a, owner: _oa, ...ra } = a;
  const { source: _b, owner: _ob, ...rb } = b;
  return JSON.stringify(ra) === JSON.stringify(rb);
}
