// The control plane's one error shape: what kind of refusal it is, never how a transport spells it (admin/server.ts maps it).
export type ControlErrorKind =
  /** The request itself is wrong (a bad key, a listen address another tenant holds in that namespace). */
  | "invalid"
  /** The request clashes with state it may not change (a config-declared tenant, an ingress host another tenant holds). */
  | "conflict"
  /** A reload whose new configuration is invalid: the running one stays. */
  | "rejected"
  /** Not now: an upgrade is in progress (a write is refused so that it is applied once, by the generation that stays). */
  | "unavailable"
  /** An upgrade whose successor failed: this daemon keeps serving. */
  | "failed";

export class ControlError extends Error {
  constructor(
    readonly kind: ControlErrorKind,
    message: string,
    /** The request field at fault, when there is one: "listen", "headers.X-Plan", … */
    readonly field?: string,
  ) {
    super(message);
    this.name = "ControlError";
  }
}
